"""Exact evaluation, the occupancy-measure LP, the entropy-regularised solver, the CMDP distance and the batched
sampler."""

import dataclasses
import itertools

import gymnasium as gym
import numpy as np
import pytest
import scipy.stats

from cmdp_envs.families.gridworld import PAPER_TEST_NOISE_LEVELS
from cmdp_envs.tabular import (
    EpisodeSampler,
    InfeasibleCMDPError,
    TabularCMDP,
    evaluate_policy,
    minimum_cost_value,
    safest_actions,
    sample_episodes,
    solve_cmdp,
    solve_extended_cmdp,
    solve_regularised_cmdp,
    value_functions,
)

from conftest import Z, random_cmdp


def two_state_cmdp(cost_limit=10.0):
    # State 0: action 0 stays (r=1, c=1), action 1 moves to state 1 (r=0, c=0); state 1 is absorbing (r=0.5, c=0).
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[0, 1, 1] = P[1, :, 1] = 1.0
    r = np.array([[1.0, 0.0], [0.5, 0.5]])
    c = np.array([[1.0, 0.0], [0.0, 0.0]])
    return TabularCMDP(P=P, r=r, c=c, mu=np.array([1.0, 0.0]), gamma=0.5, cost_limit=cost_limit)


def test_evaluation_by_hand():
    cmdp = two_state_cmdp()
    stay = np.array([[1.0, 0.0], [1.0, 0.0]])
    move = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert evaluate_policy(cmdp, stay) == pytest.approx((2.0, 2.0))  # sum 0.5^t = 2
    assert evaluate_policy(cmdp, move) == pytest.approx((0.5, 0.0))  # 0 + 0.5 * 0.5 / (1 - 0.5)
    half = 0.5 * stay + 0.5 * move
    # V0 = 0.5 * (1 + 0.5 V0) + 0.5 * (0.5 * 1) -> V0 = 1; cost V0 = 0.5 (1 + 0.5 V0) -> 2/3
    assert evaluate_policy(cmdp, half) == pytest.approx((1.0, 2 / 3))


def test_lp_by_hand():
    # Staying in state 0 with probability p gives J_c = p / (1 - 0.5 p); with the cost limit 1 the optimum stays with
    # p = 2/3, where the constraint is tight, and its reward value equals the best episode-level mixture's, 1.25.
    cmdp = two_state_cmdp(cost_limit=1.0)
    solution = solve_cmdp(cmdp)
    assert solution.cost_value == pytest.approx(1.0)
    # p solves (1 - 0.5 p) (1 + 1) = ... closed form: J_c(p) = p / (1 - 0.5 p) = 1 -> p = 2/3.
    assert solution.policy[0, 0] == pytest.approx(2 / 3)
    assert solution.reward_value == pytest.approx(1.25)
    np.testing.assert_allclose(solution.occupancy.sum(), 1 / (1 - cmdp.gamma))


def test_value_functions_agree_with_evaluation_and_batches():
    rng = np.random.default_rng(0)
    cmdp = random_cmdp(rng, 6, 3, cost_limit=2.0)
    policies = rng.dirichlet(np.ones(3), size=(5, 6))
    V, Q = value_functions(cmdp, policies)
    batch_reward, batch_cost = evaluate_policy(cmdp, policies)
    for k in range(5):
        reward_value, cost_value = evaluate_policy(cmdp, policies[k])
        assert batch_reward[k] == pytest.approx(reward_value) and batch_cost[k] == pytest.approx(cost_value)
        assert cmdp.mu @ V[k, 0] == pytest.approx(reward_value)
        assert cmdp.mu @ V[k, 1] == pytest.approx(cost_value)
        np.testing.assert_allclose((policies[k] * Q[k]).sum(axis=-1), V[k], atol=1e-10)


def deterministic_values(cmdp):
    S, A = cmdp.n_states, cmdp.n_actions
    policies = np.zeros((A**S, S, A))
    for index, actions in enumerate(itertools.product(range(A), repeat=S)):
        policies[index, np.arange(S), actions] = 1.0
    return evaluate_policy(cmdp, policies)


@pytest.mark.parametrize("seed", range(6))
def test_lp_matches_brute_force_over_deterministic_policies_and_their_mixtures(seed):
    """A CMDP with one constraint has an optimal policy whose values are a mixture of two deterministic policies'
    values, so the best feasible mixture of any two deterministic policies is exactly the LP optimum."""
    rng = np.random.default_rng(seed)
    cmdp = random_cmdp(rng, 4, 3, cost_limit=0.0)
    rewards, costs = deterministic_values(cmdp)
    limit = float(np.quantile(costs, 0.3))
    cmdp = TabularCMDP(P=cmdp.P, r=cmdp.r, c=cmdp.c, mu=cmdp.mu, gamma=cmdp.gamma, cost_limit=limit)
    solution = solve_cmdp(cmdp)
    assert solution.cost_value <= limit
    assert solution.reward_value >= rewards[costs <= limit].max() - 1e-9
    best = -np.inf
    for i, j in itertools.combinations(range(len(rewards)), 2):
        # Largest weight on i that keeps the mixture feasible, for each ordered pair.
        for a, b in ((i, j), (j, i)):
            if costs[b] > limit:
                continue
            weight = 1.0 if costs[a] <= limit else (limit - costs[b]) / (costs[a] - costs[b])
            best = max(best, weight * rewards[a] + (1 - weight) * rewards[b])
    assert solution.reward_value == pytest.approx(best, abs=1e-7)


def small_grid_cmdp(noise: float, cost_limit: float) -> TabularCMDP:
    """A 3 x 2 gridworld built independently of the family code: goal (2, 1) absorbing with reward 1; unsafe cell
    (1, 1) with cost 1, so the short way from (0, 1) to the goal crosses it; moves succeed with probability
    1 - noise and otherwise stay; the start is uniform on (0, 0) and (0, 1)."""
    width, height = 3, 2
    moves = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    S = width * height
    P = np.zeros((S, 4, S))
    for s in range(S):
        x, y = s % width, s // width
        for a, (dx, dy) in enumerate(moves):
            nx, ny = x + dx, y + dy
            target = ny * width + nx if 0 <= nx < width and 0 <= ny < height else s
            P[s, a, target] += 1 - noise
            P[s, a, s] += noise
    goal, unsafe = 1 * width + 2, 1 * width + 1
    P[goal] = 0.0
    P[goal, :, goal] = 1.0
    r = np.zeros((S, 4))
    r[goal] = 1.0
    c = np.zeros((S, 4))
    c[unsafe] = 1.0
    mu = np.zeros(S)
    mu[[0, width]] = 0.5
    return TabularCMDP(P=P, r=r, c=c, mu=mu, gamma=0.9, cost_limit=cost_limit)


@pytest.mark.parametrize("noise, cost_limit", [(0.0, 0.2), (0.2, 0.3), (0.4, 0.1), (0.2, 5.0)])
def test_lp_beats_every_deterministic_policy_on_a_small_grid(noise, cost_limit):
    cmdp = small_grid_cmdp(noise, cost_limit)
    rewards, costs = deterministic_values(cmdp)  # all 4^6 = 4096 deterministic policies
    solution = solve_cmdp(cmdp)
    assert solution.cost_value <= cost_limit
    feasible = costs <= cost_limit + 1e-12
    assert feasible.any()
    assert solution.reward_value >= rewards[feasible].max() - 1e-9
    if cost_limit < costs[rewards.argmax()]:
        # A binding constraint: the optimum randomises and strictly beats every feasible deterministic policy.
        assert solution.cost_value == pytest.approx(cost_limit)
        assert solution.reward_value > rewards[feasible].max() + 1e-3
    if cost_limit >= costs[rewards.argmax()]:
        # The constraint is slack: the LP finds the unconstrained optimum, a deterministic policy.
        assert solution.reward_value == pytest.approx(rewards.max())


def test_lp_policies_meet_the_limit_exactly(paper_family, varied_family):
    """No tolerance: round-off must never put a returned optimum over the limit (54 + 40 tasks; before the re-solve
    about half of them came out 1e-16 to 1e-14 over)."""
    for family, n in ((paper_family, 54), (varied_family, 40)):
        for task in family.sample(n, seed=0):
            solution = solve_cmdp(family.tabular(task))
            assert solution.cost_value <= task.cost_limit
            assert solution.cost_value == pytest.approx(task.cost_limit, abs=1e-6) or family is varied_family


def test_unvisited_states_take_the_safest_actions(paper_family):
    cmdp = paper_family.tabular(paper_family.task(noise=0.0))
    solution = solve_cmdp(cmdp)
    unvisited = solution.occupancy.sum(axis=1) <= 1e-12
    assert unvisited.any()
    safest = safest_actions(cmdp)
    np.testing.assert_allclose(solution.policy[unvisited], safest[unvisited])
    # In an unsafe cell of the left wall, the safest moves step out of the wall sideways (left or right).
    wall = 7 * 2 + 2
    assert unvisited[wall] and set(np.flatnonzero(safest[wall])) == {1, 3}
    # Values from mu do not depend on unvisited states.
    assert evaluate_policy(cmdp, solution.policy)[0] == solution.reward_value


def test_cmdp_does_not_freeze_the_callers_arrays():
    P = two_state_cmdp().P.copy()
    cmdp = TabularCMDP(P=P, r=np.zeros((2, 2)), c=np.zeros((2, 2)), mu=np.array([1.0, 0.0]), gamma=0.5, cost_limit=1)
    P[0, 0, 0] = 0.25
    assert cmdp.P[0, 0, 0] == 1.0


def test_infeasible_task_names_the_smallest_cost():
    rng = np.random.default_rng(3)
    cmdp = random_cmdp(rng, 4, 2, cost_limit=0.0)
    _, costs = deterministic_values(cmdp)
    assert minimum_cost_value(cmdp) == pytest.approx(costs.min())
    with pytest.raises(InfeasibleCMDPError, match=f"smallest achievable discounted cost value is {costs.min():.6g}"):
        solve_cmdp(cmdp)
    with pytest.raises(ValueError):
        solve_cmdp(cmdp)


def test_gridworld_infeasibility_is_reported(paper_family):
    with pytest.raises(InfeasibleCMDPError) as error:
        solve_cmdp(paper_family.tabular(paper_family.task(noise=0.5)))
    assert error.value.minimum_cost_value == pytest.approx(2.004, abs=1e-3)
    # Feasibility ends near i = 0.436 (README, "Findings"): monotone in the noise for this layout.
    assert minimum_cost_value(paper_family.tabular(paper_family.task(noise=0.43))) < 1.5
    assert minimum_cost_value(paper_family.tabular(paper_family.task(noise=0.44))) > 1.5


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(P=np.ones((2, 2, 2))), "not a probability distribution"),
        (dict(P=np.ones((2, 2))), r"P must have shape \(S, A, S\)"),
        (dict(r=np.zeros((3, 2))), "r must have shape"),
        (dict(c=-np.ones((2, 2))), "costs must be >= 0"),
        (dict(mu=np.array([0.5, 0.6])), "mu must be a probability distribution"),
        (dict(gamma=1.0), r"gamma must be in \[0, 1\)"),
        (dict(cost_limit=np.inf), "cost_limit must be finite"),
        (dict(r=np.array([[np.nan, 0], [0, 0]])), "non-finite"),
    ],
)
def test_invalid_cmdps_raise(change, message):
    cmdp = two_state_cmdp()
    fields = dict(P=cmdp.P, r=cmdp.r, c=cmdp.c, mu=cmdp.mu, gamma=cmdp.gamma, cost_limit=cmdp.cost_limit)
    fields.update(change)
    with pytest.raises(ValueError, match=message):
        TabularCMDP(**fields)


def test_invalid_policies_raise():
    cmdp = two_state_cmdp()
    with pytest.raises(ValueError, match=r"policy must have shape \(2, 2\)"):
        evaluate_policy(cmdp, np.ones((3, 2)) / 2)
    with pytest.raises(ValueError, match=r"row 0 of policy sums to 2.0 \(must be 1 within 1.1e-05\)"):
        evaluate_policy(cmdp, np.ones((2, 2)))
    with pytest.raises(ValueError, match="horizon"):
        EpisodeSampler(cmdp, np.ones((2, 2)) / 2, horizon=0)
    sampler = EpisodeSampler(cmdp, np.ones((2, 2, 2)) / 2, horizon=3)
    with pytest.raises(ValueError, match="weights must be 2 non-negative numbers"):
        sampler.sample(5, seed=0, weights=[0.5, 0.6])
    with pytest.raises(ValueError, match="n_episodes"):
        sampler.sample(-1, seed=0)


def test_cmdp_arrays_are_read_only():
    cmdp = two_state_cmdp()
    with pytest.raises(ValueError):
        cmdp.P[0, 0, 0] = 0.5


def test_extended_lp_over_a_confidence_set_of_kernels(paper_family):
    """Radius 0: the LP on the model itself. A wider set: higher optimistic values, a kernel inside the box that stays
    on the support, and the policy's values under that kernel are the LP's. Unreached states take the fallback. No
    feasible (policy, kernel) pair: None."""
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    exact = solve_extended_cmdp(cmdp, 0.0)
    assert exact.reward_value == pytest.approx(solve_cmdp(cmdp).reward_value, abs=1e-8)
    assert exact.cost_value <= cmdp.cost_limit + 1e-9 and np.allclose(exact.kernel, cmdp.P)
    values = []
    for radius in (0.01, 0.05):
        solution = solve_extended_cmdp(cmdp, radius)
        assert np.abs(solution.kernel - cmdp.P).max() <= radius + 1e-9
        assert np.allclose(solution.kernel.sum(axis=2), 1.0) and not solution.kernel[cmdp.P == 0].any()
        planned = dataclasses.replace(cmdp, P=solution.kernel)
        assert evaluate_policy(planned, solution.policy) == pytest.approx((solution.reward_value,
                                                                           solution.cost_value))
        values.append(solution.reward_value)
    assert exact.reward_value < values[0] < values[1]
    # Staying in state 0 is optimal and within the limit, so state 1 is never reached: it takes the fallback.
    small = two_state_cmdp()
    fallback = np.array([[0.5, 0.5], [0.25, 0.75]])
    unreached = solve_extended_cmdp(small, 0.0, fallback=fallback)
    np.testing.assert_array_equal(unreached.policy, [[1.0, 0.0], [0.25, 0.75]])
    infeasible = dataclasses.replace(cmdp, cost_limit=minimum_cost_value(cmdp) - 0.1)
    assert solve_extended_cmdp(infeasible, 0.0) is None
    with pytest.raises(ValueError, match="radius"):
        solve_extended_cmdp(cmdp, -0.1)
    with pytest.raises(ValueError, match="support"):
        solve_extended_cmdp(cmdp, 0.0, support=np.zeros_like(cmdp.P, dtype=bool))


def test_regularised_solver_reproduces_the_authors_safe_policy(paper_family):
    """The covering + safe mixture authors' pi_s (SPECS): their primal-dual method on the noise-0.4 task gives
    J_r = 44.92 and J_c = 1.500 there, and costs 0.72-1.16 on the ten test tasks of Figure 2."""
    solution = solve_regularised_cmdp(paper_family.tabular(paper_family.task(noise=0.4)))
    assert solution.reward_value == pytest.approx(44.915, abs=1e-3)
    assert solution.cost_value == pytest.approx(1.5, abs=1e-9) and solution.multiplier > 0
    test_costs = [evaluate_policy(paper_family.tabular(paper_family.task(noise=noise)), solution.policy)[1]
                  for noise in PAPER_TEST_NOISE_LEVELS]
    assert min(test_costs) == pytest.approx(0.715, abs=1e-3) and max(test_costs) == pytest.approx(1.157, abs=1e-3)
    assert np.all(solution.policy > 0) and np.allclose(solution.policy.sum(axis=1), 1.0)


def test_regularised_solver_tends_to_the_lp_optimum_and_reports_infeasibility(paper_family):
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    optimum = solve_cmdp(cmdp).reward_value
    gaps = [optimum - solve_regularised_cmdp(cmdp, entropy_weight=beta, iterations=2000).reward_value
            for beta in (0.1, 0.03, 0.01)]
    assert gaps[0] > gaps[1] > abs(gaps[2]) and abs(gaps[2]) < 1e-6, gaps
    # No policy meets this limit: the method still returns its last iterate, marked infeasible, with the multiplier
    # driven up and the cost pushed towards the smallest achievable.
    smallest = minimum_cost_value(cmdp)
    infeasible = dataclasses.replace(cmdp, cost_limit=smallest / 2)
    solution = solve_regularised_cmdp(infeasible, iterations=500)
    assert not solution.feasible and solution.multiplier > 10
    assert solution.cost_value < evaluate_policy(cmdp, solve_regularised_cmdp(cmdp, iterations=500).policy)[1]
    with pytest.raises(ValueError, match="entropy_weight"):
        solve_regularised_cmdp(cmdp, entropy_weight=0.0)


def test_distance(paper_family, varied_family):
    t1, t2, t3 = (paper_family.task(noise=i) for i in (0.2, 0.3, 0.45))
    assert paper_family.distance(t1, t1) == 0.0
    d12, d23, d13 = paper_family.distance(t1, t2), paper_family.distance(t2, t3), paper_family.distance(t1, t3)
    assert d12 == pytest.approx(paper_family.distance(t2, t1))
    assert d13 <= d12 + d23 + 1e-12
    # Interior cell: the intended cell's probability changes by (i1 - i2) * 3/4 and the other three by i/4 each,
    # so TV = 3/4 |i1 - i2|, the largest over all (s, a).
    assert d12 == pytest.approx(0.75 * 0.1)
    # Different goals change the reward by 10.
    assert varied_family.distance(varied_family.task(goal=(3, 6)), varied_family.task(goal=(0, 6))) == 10.0


def test_sampler_matches_exact_values_for_mixtures(paper_family):
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    optimal = solve_cmdp(cmdp).policy
    uniform = np.full_like(optimal, 0.25)
    policies = np.stack([optimal, uniform])
    weights = np.array([0.7, 0.3])
    batch = sample_episodes(cmdp, policies, n_episodes=40000, horizon=150, seed=0, weights=weights)
    frequency = np.mean(batch.policy_index == 0)
    assert abs(frequency - 0.7) <= Z * np.sqrt(0.7 * 0.3 / 40000)
    exact_reward, exact_cost = evaluate_policy(cmdp, policies)
    for k in range(2):
        chosen = batch.policy_index == k
        for sample, exact in ((batch.reward_return[chosen], exact_reward[k]), (batch.cost_return[chosen], exact_cost[k])):
            assert abs(sample.mean() - exact) <= Z * sample.std(ddof=1) / np.sqrt(chosen.sum()) + 1e-5
    # The mixture's values are the weighted sums of its members' values.
    mixture_reward = weights @ exact_reward
    stderr = batch.reward_return.std(ddof=1) / np.sqrt(len(batch.reward_return))
    assert abs(batch.reward_return.mean() - mixture_reward) <= Z * stderr


def test_sampler_agrees_with_the_env_in_distribution(varied_family):
    """Two-sample Kolmogorov-Smirnov tests on per-episode discounted returns: sampler vs env rollouts."""
    env = gym.make("cmdp_envs/GridWorldVaried-v0", max_episode_steps=60)
    task = varied_family.sample(1, seed=7)[0]
    cmdp = varied_family.tabular(task)
    policy = np.random.default_rng(0).dirichlet(np.ones(4), size=49)
    n = 3000
    batch = sample_episodes(cmdp, policy, n_episodes=n, horizon=60, seed=1)
    rng = np.random.default_rng(2)
    env.reset(seed=3, options={"task": task})
    env_returns = np.zeros((n, 2))
    cumulative = policy.cumsum(axis=1)
    for episode in range(n):
        state, _ = env.reset()
        for t in range(60):
            action = min(int(np.searchsorted(cumulative[state], rng.random(), side="right")), 3)
            state, reward, _, _, info = env.step(action)
            env_returns[episode] += cmdp.gamma**t * np.array([reward, info["cost"]])
    for column, sampled in enumerate((batch.reward_return, batch.cost_return)):
        assert scipy.stats.ks_2samp(sampled, env_returns[:, column]).pvalue > 1e-3


def test_sampler_is_deterministic_and_supports_undiscounted_sums(paper_family):
    cmdp = paper_family.tabular(paper_family.default_task)
    policy = solve_cmdp(cmdp).policy
    sampler = EpisodeSampler(cmdp, policy, horizon=50)
    a, b = sampler.sample(100, seed=4), sampler.sample(100, seed=4)
    np.testing.assert_array_equal(a.reward_return, b.reward_return)
    np.testing.assert_array_equal(a.cost_return, b.cost_return)
    undiscounted = sampler.sample(100, seed=4, gamma=1.0)
    assert set(np.unique(undiscounted.cost_return % 10)) == {0.0}
    assert (undiscounted.reward_return >= a.reward_return).all()
    assert sampler.sample(0, seed=0).reward_return.shape == (0,)


def test_sampler_uses_a_generator_stream():
    cmdp = two_state_cmdp()
    policy = np.array([[0.5, 0.5], [1.0, 0.0]])
    rng = np.random.default_rng(0)
    first = sample_episodes(cmdp, policy, 10, 5, seed=rng).reward_return
    second = sample_episodes(cmdp, policy, 10, 5, seed=rng).reward_return
    assert not np.array_equal(first, second), "a passed Generator advances"
