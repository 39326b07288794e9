"""Memory bounded for any input size: the episode sampler works in chunks (and streams), the greedy cover of a
one-parameter distance needs no N x N matrix; both give exactly what the unbounded versions gave."""

import dataclasses
import tracemalloc

import numpy as np
import pytest

from cmdp_envs.meta.covering import greedy_cover
from cmdp_envs.meta.oracles import DistanceCheck
from cmdp_envs.tabular import WORKING_MEMORY, EpisodeSampler, cumulative_distribution, solve_cmdp

MiB = 2**20


class UnchunkedSampler:
    """The sampler as it was before chunking (cmdp-envs 0.1.0), kept as the reference stream: all ``n`` episodes
    in one ``(n, width)`` step."""

    def __init__(self, cmdp, policies, horizon):
        policies = np.asarray(policies, dtype=np.float64)
        if policies.ndim == 2:
            policies = policies[None]
        self.cmdp, self.horizon, self.n_policies = cmdp, horizon, policies.shape[0]
        S, A = cmdp.n_states, cmdp.n_actions
        joint = (np.clip(policies, 0.0, None)[:, :, :, None] * cmdp.P[None]).reshape(self.n_policies * S, A * S)
        support = joint > 0
        width = max(int(support.sum(axis=1).max()), 1)
        order = np.argsort(~support, axis=1, kind="stable")[:, :width]
        probabilities = np.take_along_axis(joint, order, axis=1)
        self.cumulative = cumulative_distribution(probabilities / probabilities.sum(axis=1, keepdims=True))
        self.action, self.next_state = order // S, order % S
        self.mu_cumulative = cumulative_distribution(cmdp.mu)

    def _members(self, n, rng, weights):
        if weights is None:
            weights = np.full(self.n_policies, 1.0 / self.n_policies)
        weights = np.asarray(weights, dtype=np.float64)
        if self.n_policies == 1:
            return np.zeros(n, dtype=np.intp)
        member = np.searchsorted(np.cumsum(weights), rng.random(n) * weights.sum(), side="right")
        return np.minimum(member, self.n_policies - 1)

    def _steps(self, member, rng):
        n = len(member)
        state = np.searchsorted(self.mu_cumulative, rng.random(n), side="right")
        for _ in range(self.horizon):
            row = member * self.cmdp.n_states + state
            outcome = (rng.random(n)[:, None] >= self.cumulative[row]).sum(axis=1)
            yield state, self.action[row, outcome]
            state = self.next_state[row, outcome]

    def sample(self, n, seed, weights=None, gamma=None):
        gamma = self.cmdp.gamma if gamma is None else gamma
        rng = np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed
        member = self._members(n, rng, weights)
        reward_return, cost_return, discount = np.zeros(n), np.zeros(n), 1.0
        for state, action in self._steps(member, rng):
            reward_return += discount * self.cmdp.r[state, action]
            cost_return += discount * self.cmdp.c[state, action]
            discount *= gamma
        return reward_return, cost_return, member

    def sample_trajectories(self, n, seed, weights=None):
        rng = np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed
        member = self._members(n, rng, weights)
        steps = list(self._steps(member, rng))
        states = np.stack([s for s, _ in steps], axis=1).reshape(n, self.horizon)
        actions = np.stack([a for _, a in steps], axis=1).reshape(n, self.horizon)
        return states, actions, member


@pytest.fixture(scope="module")
def gridworld(paper_family):
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    optimal = solve_cmdp(cmdp).policy
    uniform = np.full_like(optimal, 0.25)
    return cmdp, optimal, np.stack([optimal, uniform, 0.5 * (optimal + uniform)])


@pytest.mark.parametrize("n", [0, 1, 17, 1000, 4096, 5200])
def test_requests_the_algorithms_make_draw_the_unchunked_stream(gridworld, n):
    cmdp, optimal, stack = gridworld
    for policies, weights in ((optimal, None), (stack, None), (stack, [0.2, 0.3, 0.5])):
        sampler, reference = EpisodeSampler(cmdp, policies, 100), UnchunkedSampler(cmdp, policies, 100)
        assert sampler.chunk_episodes >= 5200, "the 49-state gridworld's requests fit in one chunk"
        for gamma in (None, 1.0):
            batch = sampler.sample(n, seed=n, weights=weights, gamma=gamma)
            reward_return, cost_return, member = reference.sample(n, seed=n, weights=weights, gamma=gamma)
            assert np.array_equal(batch.reward_return, reward_return)
            assert np.array_equal(batch.cost_return, cost_return)
            assert np.array_equal(batch.policy_index, member) and batch.policy_index.dtype == np.intp
        ours, theirs = np.random.default_rng(3), np.random.default_rng(3)
        trajectories = sampler.sample_trajectories(n, seed=ours, weights=weights)
        states, actions, member = reference.sample_trajectories(n, seed=theirs, weights=weights)
        assert np.array_equal(trajectories.states, states) and np.array_equal(trajectories.actions, actions)
        assert np.array_equal(trajectories.rewards, cmdp.r[states, actions])
        assert np.array_equal(trajectories.costs, cmdp.c[states, actions])
        assert np.array_equal(trajectories.policy_index, member)
        assert ours.random() == theirs.random(), "a passed Generator advances exactly as before"


def test_chunked_sampling_is_deterministic_and_streams_the_same_episodes(gridworld):
    cmdp, _, stack = gridworld
    sampler = EpisodeSampler(cmdp, stack, horizon=20, working_memory=MiB // 4)
    n = 5 * sampler.chunk_episodes + 123
    batch = sampler.sample(n, seed=9, weights=[0.5, 0.25, 0.25])
    again = sampler.sample(n, seed=9, weights=[0.5, 0.25, 0.25])
    for field in ("reward_return", "cost_return", "policy_index"):
        assert np.array_equal(getattr(batch, field), getattr(again, field))
    chunks = list(sampler.sample_chunks(n, seed=9, weights=[0.5, 0.25, 0.25]))
    assert [len(c.reward_return) for c in chunks] == [sampler.chunk_episodes] * 5 + [123]
    for field in ("reward_return", "cost_return", "policy_index"):
        assert np.array_equal(np.concatenate([getattr(c, field) for c in chunks]), getattr(batch, field))
    # Trajectories run through the same chunks from the same stream: the same episodes.
    trajectories = sampler.sample_trajectories(n, seed=9, weights=[0.5, 0.25, 0.25])
    reward_return, discount = np.zeros(n), 1.0
    for t in range(20):
        reward_return += discount * trajectories.rewards[:, t]
        discount *= cmdp.gamma
    assert np.array_equal(reward_return, batch.reward_return)
    assert np.array_equal(trajectories.policy_index, batch.policy_index)
    # Each member's share is right across chunk boundaries.
    assert abs(np.mean(batch.policy_index == 0) - 0.5) <= 4 * np.sqrt(0.25 / n)
    with pytest.raises(ValueError, match="weights must be 3"):
        sampler.sample_chunks(10, seed=0, weights=[1.0])
    with pytest.raises(ValueError, match="working_memory"):
        EpisodeSampler(cmdp, stack, horizon=20, working_memory=0)


def _peak_bytes(function):
    tracemalloc.start()
    try:
        result = function()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("members", [1, 3])
def test_sampling_memory_stays_within_the_budget_plus_the_output(gridworld, members):
    cmdp, optimal, stack = gridworld
    policies = optimal if members == 1 else stack
    budget = 4 * MiB
    sampler = EpisodeSampler(cmdp, policies, horizon=3, working_memory=budget)
    n = 300_000
    batch, peak = _peak_bytes(lambda: sampler.sample(n, seed=0))
    output = batch.reward_return.nbytes + batch.cost_return.nbytes + batch.policy_index.nbytes
    assert peak - output < budget
    trajectories, peak = _peak_bytes(lambda: sampler.sample_trajectories(n, seed=0))
    output = sum(getattr(trajectories, f).nbytes for f in ("states", "actions", "rewards", "costs", "policy_index"))
    assert peak - output < budget
    assert WORKING_MEMORY == 64 * MiB and EpisodeSampler(cmdp, policies, 3).chunk_episodes > sampler.chunk_episodes


def test_streaming_many_episodes_takes_bounded_memory(gridworld):
    cmdp, optimal, _ = gridworld
    budget = MiB
    sampler = EpisodeSampler(cmdp, optimal, horizon=2, working_memory=budget)

    def stream_mean(n):
        total = 0.0
        for chunk in sampler.sample_chunks(n, seed=1, gamma=1.0):
            total += chunk.reward_return.sum()
        return total / n

    small, small_peak = _peak_bytes(lambda: stream_mean(10 * sampler.chunk_episodes))
    large, large_peak = _peak_bytes(lambda: stream_mean(100 * sampler.chunk_episodes))
    assert large_peak < budget and small_peak < budget
    assert large == pytest.approx(small, abs=0.5)


# -- greedy cover --------------------------------------------------------------------------------------------------

class MatrixCheck:
    """A check offering only ``matrix``: ``greedy_cover`` takes its N x N path, the reference."""

    def __init__(self, check):
        self.matrix = check.matrix


def _tasks(paper_family, values):
    default = paper_family.default_task
    return [dataclasses.replace(default, noise=float(v)) for v in values]


def test_interval_cover_equals_the_matrix_cover(paper_family):
    rng = np.random.default_rng(0)
    check = DistanceCheck(paper_family, parameter="noise")
    cases = 0
    for _ in range(150):
        n = int(rng.integers(1, 400))
        kind = rng.integers(3)
        if kind == 0:
            values = rng.normal(0.3, 0.03, n).clip(0, 0.5)
        elif kind == 1:  # a grid of multiples of eps: distances equal to eps up to round-off
            values = rng.integers(0, 40, n) * 0.01
        else:  # heavy ties
            values = rng.choice(rng.uniform(0, 0.5, 5), n)
        eps = float(rng.choice([0.0, 0.01, 0.02, 0.03, rng.uniform(0, 0.1)]))
        max_uncovered = float(rng.choice([0, 1, 0.3 * n * rng.random()]))
        tasks = _tasks(paper_family, values)
        cover = greedy_cover(tasks, check, eps, max_uncovered)
        assert cover == greedy_cover(tasks, MatrixCheck(check), eps, max_uncovered)
        cases += len(cover) > 1
    assert cases > 100
    with pytest.raises(ValueError, match="eps"):
        greedy_cover(_tasks(paper_family, [0.3]), check, -1.0, 0)


def test_interval_cover_needs_no_square_matrix(paper_family):
    n = 4000  # the matrix path holds N^2 float64 differences: 128 MB
    tasks = _tasks(paper_family, np.random.default_rng(1).normal(0.3, 0.03, n).clip(0, 0.5))
    cover, peak = _peak_bytes(lambda: greedy_cover(tasks, DistanceCheck(paper_family, parameter="noise"), 0.001,
                                                   max_uncovered=0.1 * n))
    assert peak < 4 * MiB
    assert len(cover) > 10


def test_sampled_advantages_stream_trajectory_chunks_and_add_up(paper_family):
    """Safe Meta-RL's estimates keep sums, not trajectories: within one chunk they equal the estimates from the whole
    sample bit for bit, and sums over two halves of a sample give the estimates of the whole."""
    from cmdp_envs.meta import estimators
    from cmdp_envs.tabular import EpisodeSampler, Trajectories

    cmdp = paper_family.tabular(paper_family.default_task)
    policy = np.random.default_rng(0).dirichlet(np.ones(4), cmdp.n_states)
    streamed = estimators.sampled_advantages(cmdp, policy, 1000, 100, seed=5)
    whole = EpisodeSampler(cmdp, policy, 100).sample_trajectories(1000, seed=5)
    direct = estimators.trajectory_advantages(cmdp, whole)
    for name in ("reward_advantage", "cost_advantage", "visitation", "cost_value"):
        assert np.array_equal(getattr(streamed, name), getattr(direct, name)), name
    halves = [Trajectories(**{f: getattr(whole, f)[part] for f in ("states", "actions", "rewards", "costs",
                                                                      "policy_index")})
              for part in (slice(0, 400), slice(400, 1000))]
    sums = [a + b for a, b in zip(*(estimators._advantage_sums(cmdp, half) for half in halves))]
    added = estimators._advantage_estimate(cmdp, sums)
    for name in ("reward_advantage", "cost_advantage", "visitation"):
        np.testing.assert_allclose(getattr(added, name), getattr(direct, name), rtol=1e-9, atol=1e-9)
    assert added.cost_value == pytest.approx(direct.cost_value, rel=1e-9)


def test_trajectory_chunks_concatenate_to_the_whole_sample(paper_family):
    from cmdp_envs.tabular import EpisodeSampler

    cmdp = paper_family.tabular(paper_family.default_task)
    sampler = EpisodeSampler(cmdp, np.full((cmdp.n_states, 4), 0.25), 20, working_memory=20_000)
    assert sampler.chunk_episodes < 300
    whole = sampler.sample_trajectories(300, seed=1)
    chunks = list(sampler.sample_trajectory_chunks(300, seed=1))
    assert len(chunks) > 1 and whole.states.shape == (300, 20)
    assert np.array_equal(np.concatenate([c.states for c in chunks]), whole.states)
    assert whole.policy_index.dtype == np.intp
