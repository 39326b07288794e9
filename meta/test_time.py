"""The meta-test protocol on any env: one way to test every meta method on held-out tasks, the way Meta-World's
evaluation drives any agent.

A method is a :class:`TestTimeMethod`: on a held-out task it gets a :class:`TestRun` and adapts however it likes,
with two rules. Every env it runs comes from :meth:`TestRun.make_env` (fixed on the task, recording every episode),
and before running a policy it says so with :meth:`TestRun.executing`. Episodes beyond the run's budget are refused.
What a method does before its first episode, how it adapts from the episodes it sees, and what it executes are then
all on the record, and :func:`meta_test` measures every method the same way:

* the return and the cost (the family's semantics) of every episode the method ran, in order, each marked with the
  policy that ran it;
* a Monte Carlo check of every policy it executed: ``n_check_episodes`` fresh episodes each, in lockstep on the
  family's vector env, with cost intervals that hold for all of a run's policies together at ``confidence``
  (Bonferroni) under the normal approximation. A policy is *verified* when its interval's upper end meets the limit,
  and *infeasible* when its lower end exceeds it.

A declared policy is either an :class:`~cmdp_envs.meta.cmaml.Actor` that may go on learning (its parameters are
copied when declared) or a policy that does not learn, kept as it is: anything with ``act(observation)`` (and
``reseed``, for a reproducible check), or an :class:`EpisodeMixture` of such policies, which draws one of them at
the start of every episode.

Every policy that ran a single step is checked. An episode during which the declared policy changed (a learner that
updates mid-episode) is counted as ``straddling``: it is in no policy's observed means, and no single policy's
check covers it.

Methods here: :class:`LearnerFineTuning` (the constrained learner from a start, the C-MAML paper's test) and
:class:`NeuralSafeAdaptation` (Xu & Zhu's safe adaptation step on a neural policy);
:class:`~cmdp_envs.meta.safe_mixture.LearnedSafeMixture` (covering + safe mixture over learned policies) is one too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from cmdp_envs.meta.cmaml import Actor, _one_thread, actor_theta, collect_episodes, load_actor, rollout_envs
from cmdp_envs.meta.estimators import ValueEstimate
from cmdp_envs.meta.executors import spawn_seeds
from cmdp_envs.task import Task, TaskFamily, check_count
from cmdp_envs.validation import check_number

__all__ = ["TestTimeMethod", "TestRun", "BudgetExceeded", "EpisodeMixture", "ExecutedPolicy", "TestResult", "meta_test",
           "LearnerFineTuning", "NeuralSafeAdaptation"]


class BudgetExceeded(RuntimeError):
    """A method started more episodes than its run allows."""


@dataclasses.dataclass(frozen=True)
class EpisodeMixture:
    """The randomised policy that runs ``policies[i]`` for a whole episode with probability ``weights[i]``, drawn at
    the episode's start. ``label`` describes it in results (e.g. a safe mixture's candidate and ``alpha``)."""

    policies: tuple[Any, ...]
    weights: tuple[float, ...]
    label: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        weights = np.asarray(self.weights, dtype=float)
        if (len(self.policies) != len(weights) or not len(weights) or np.any(weights < 0)
                or not np.isclose(weights.sum(), 1.0)):
            raise ValueError(f"need one weight per policy, non-negative and summing to 1; got {self.weights} for "
                             f"{len(self.policies)} policies")

    def draw(self, rng: np.random.Generator) -> Any:
        """The policy of one episode."""
        return self.policies[int(rng.choice(len(self.policies), p=np.asarray(self.weights) / sum(self.weights)))]


class TestTimeMethod(Protocol):
    """A meta method at test time. ``name`` labels its results; :meth:`adapt` runs it on one held-out task, only
    through ``run`` (see the module docstring)."""

    name: str

    def adapt(self, run: TestRun) -> None: ...


class TestRun:
    """One method on one held-out ``task``: the envs it may use, its budget of episodes, and the record of what it
    executed. ``env_kwargs`` are passed to ``family.make_env`` (e.g. one-hot observations)."""

    __test__ = False  # not a pytest class

    def __init__(self, family: TaskFamily, task: Task, budget: int, seed: int,
                 env_kwargs: dict[str, Any] | None = None):
        family.check_task(task)
        self.family, self.task = family, task
        self.budget = check_count("budget", budget, minimum=1)
        self.seed = check_count("seed", seed)
        self.env_kwargs = dict(env_kwargs or {})
        #: The policies declared, in order: a learning actor's parameter vector ``theta`` (a copy), or a policy
        #: that does not learn as it is; and an actor of the learning ones' architecture to load them into for the
        #: check.
        self.policies: list[Any] = []
        self.actor: Actor | None = None
        #: Every finished episode: ``(policy index, undiscounted return, cost, straddling)``.
        self.episodes: list[tuple[int, float, float, bool]] = []
        #: Every policy that ran at least one step, whether or not an episode it was in finished.
        self.ran: set[int] = set()
        self.started = 0

    @property
    def cost_limit(self) -> float:
        return self.task.cost_limit

    def executing(self, policy: Any) -> None:
        """``policy`` runs the episodes that start from now on: an :class:`~cmdp_envs.meta.cmaml.Actor` (a copy of
        its parameters is kept, so later training does not change what is checked), or a policy that does not learn
        (see the module docstring)."""
        if hasattr(policy, "parameters"):
            self.policies.append(actor_theta(policy))
            self.actor = policy
        elif hasattr(policy, "act") or isinstance(policy, EpisodeMixture):
            self.policies.append(policy)
        else:
            raise TypeError(f"a policy is an Actor (with parameters()) or has act(observation); got {policy!r}")

    def make_env(self) -> gym.Env:
        """A fresh env of the family, fixed on the task, recording every episode into this run."""
        return _Recorder(self.family.make_env(**self.env_kwargs, task=self.task), self)


class _Recorder(gym.Wrapper):
    def __init__(self, env: gym.Env, run: TestRun):
        super().__init__(env)
        self._run = run
        self._policy: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self._policy, self._straddling = None, False
        self._return, self._cost, self._discount = 0.0, 0.0, 1.0
        return self.env.reset(seed=seed, options={**(options or {}), "task": self._run.task})

    def step(self, action: Any) -> Any:
        run = self._run
        if self._policy is None:  # an episode starts (a reset alone, as autoreset does, starts none)
            if not run.policies:
                raise RuntimeError("declare the policy with run.executing(actor) before running it")
            if run.started >= run.budget:
                raise BudgetExceeded(f"this run's budget is {run.budget} episodes; a method may not start more")
            run.started += 1
            self._policy = len(run.policies) - 1
        elif self._policy != len(run.policies) - 1:
            self._straddling = True
        run.ran.add(len(run.policies) - 1)
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        self._cost += self._discount * float(info["cost"])
        self._discount *= run.family.cost_discount
        if terminated or truncated:
            run.episodes.append((self._policy, self._return, self._cost, self._straddling))
            self._policy = None
        return observation, reward, terminated, truncated, info


@dataclasses.dataclass(frozen=True)
class ExecutedPolicy:
    """One policy a method executed (``index``: its place among the run's declared policies): how many of the run's
    episodes it ran alone and their mean return and cost (NaN when it ran only parts of episodes), and its checked
    values (``return_`` undiscounted, ``cost`` under the family's semantics)."""

    index: int
    episodes: int
    observed_return: float
    observed_cost: float
    return_: ValueEstimate
    cost: ValueEstimate
    cost_limit: float
    #: An :class:`EpisodeMixture`'s ``label`` (empty for other policies).
    label: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def verified(self) -> bool:
        """The cost interval's upper end meets the limit."""
        return self.cost.upper_bound <= self.cost_limit

    @property
    def infeasible(self) -> bool:
        """The cost interval's lower end exceeds the limit."""
        return self.cost.value - self.cost.half_width > self.cost_limit


@dataclasses.dataclass(frozen=True)
class TestResult:
    """A method on one held-out task: the episodes it finished (``returns``, ``costs``, and ``policy`` the index into
    ``executed`` of the policy that ran each; ``unfinished`` more were started and left, as a learner's last
    rollout may), and every executed policy's check."""

    __test__ = False

    method: str
    task: Task
    cost_limit: float
    budget: int
    returns: np.ndarray
    costs: np.ndarray
    policy: np.ndarray
    straddling: int
    unfinished: int
    executed: list[ExecutedPolicy]
    confidence: float

    @property
    def all_verified(self) -> bool:
        """Every executed policy's cost is within the limit at the stated confidence."""
        return all(policy.verified for policy in self.executed)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"method": self.method, "task": self.task.as_dict(), "cost_limit": self.cost_limit,
                "budget": self.budget, "episode_returns": self.returns.tolist(),
                "episode_costs": self.costs.tolist(), "episode_policy": self.policy.tolist(),
                "straddling_episodes": self.straddling, "unfinished_episodes": self.unfinished,
                "confidence": self.confidence,
                "all_verified": self.all_verified,
                "executed": [{"index": p.index, "episodes": p.episodes,
                              "observed_return": None if math.isnan(p.observed_return) else p.observed_return,
                              "observed_cost": None if math.isnan(p.observed_cost) else p.observed_cost,
                              "return": p.return_.value,
                              "return_half_width": p.return_.half_width, "cost": p.cost.value,
                              "cost_half_width": p.cost.half_width, "verified": p.verified,
                              "infeasible": p.infeasible, **({"label": p.label} if p.label else {})}
                             for p in self.executed]}


def meta_test(method: TestTimeMethod, family: TaskFamily, tasks: Sequence[Task], budget: int, seed: int,
              n_check_episodes: int = 50, confidence: float = 0.95,
              env_kwargs: dict[str, Any] | None = None) -> list[TestResult]:
    """Run ``method`` on each held-out task with ``budget`` episodes, then check every policy it executed (see the
    module docstring). Task ``i`` gets its own seeds from ``seed``; the same seed gives the same results.
    ``env_kwargs`` (for ``family.make_env``) default to the method's own (``method.env_kwargs``: its network's
    observations, one-hot states on tabular families)."""
    import scipy.stats

    n_check_episodes = check_count("n_check_episodes", n_check_episodes, minimum=2)
    confidence = check_number("confidence", confidence, 0.0, 1.0, low_open=True, high_open=True)
    if env_kwargs is None:
        env_kwargs = getattr(method, "env_kwargs", {})
    results = []
    for task, (run_seed, check_seed) in zip(tasks, np.reshape(spawn_seeds(seed, 2 * len(tasks)), (-1, 2))):
        run = TestRun(family, task, budget, int(run_seed), env_kwargs)
        with _one_thread():  # torch rounds differently with more threads: one keeps a seed's results fixed
            method.adapt(run)
        if not run.episodes:
            raise RuntimeError(f"{method.name} finished no episode on {task}")
        indices, returns, costs, straddling = map(np.array, zip(*run.episodes))
        executed_indices = sorted(run.ran)
        z = scipy.stats.norm.ppf(1 - (1 - confidence) / (2 * len(executed_indices)))  # Bonferroni, two-sided

        def estimate(values: np.ndarray) -> ValueEstimate:
            return ValueEstimate(float(values.mean()), float(z * values.std(ddof=1) / math.sqrt(len(values))),
                                 confidence)

        envs = rollout_envs(family, task, n_check_episodes, **run.env_kwargs)
        executed = []
        for index in executed_indices:
            policy, check_seed_of_policy = run.policies[index], int(check_seed) + index * n_check_episodes
            if isinstance(policy, np.ndarray):
                load_actor(run.actor, policy)
                actor: Any = run.actor
            else:
                actor = _FixedPolicyActor(policy, envs.num_envs, check_seed_of_policy)
            with _one_thread():
                episodes = collect_episodes(actor, envs, task, check_seed_of_policy)
            checked_returns = episodes.returns(1.0, "rewards")
            checked_costs = episodes.returns(family.cost_discount, "costs")
            ran = (indices == index) & ~straddling  # the episodes this policy ran alone
            observed = (float(returns[ran].mean()), float(costs[ran].mean())) if ran.any() else (math.nan, math.nan)
            executed.append(ExecutedPolicy(index, int(ran.sum()), *observed, estimate(checked_returns),
                                           estimate(checked_costs), task.cost_limit,
                                           dict(policy.label) if isinstance(policy, EpisodeMixture) else {}))
        envs.close()
        position = {index: rank for rank, index in enumerate(executed_indices)}
        results.append(TestResult(method.name, task, task.cost_limit, budget, returns, costs,
                                  np.array([position[i] for i in indices.tolist()]), int(straddling.sum()),
                                  run.started - len(run.episodes), executed, confidence))
    return results


@dataclasses.dataclass(frozen=True)
class LearnerFineTuning:
    """The constrained learner of ``inner`` (an :class:`~cmdp_envs.meta.inner_loops.SB3InnerLoop` or
    :class:`~cmdp_envs.meta.inner_loops.OmniSafeInnerLoop`) on the held-out task from the actor ``theta`` (``None``:
    its random initialisation), for ``updates`` updates: the C-MAML paper's test, for C-MAML, MAML, pre-training and
    random starts alike. Every rollout runs the policy of that moment. The learner runs ``updates`` rollouts of its
    size (``n_steps * n_envs`` steps, or an OmniSafe epoch) whatever its episodes do, so size ``updates`` for the
    budget: episodes that end early take more of it, and a learner that starts an episode beyond it is stopped with
    :class:`BudgetExceeded`."""

    name: str
    inner: Any
    theta: np.ndarray | None
    updates: int
    multiplier: float = 0.0
    multiplier_lr: float = 0.05

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return self.inner.env_kwargs

    def adapt(self, run: TestRun) -> None:
        _check_env_kwargs(self, run)
        session = self.inner.session([run.task], run.seed, self.multiplier, self.multiplier_lr, self.updates,
                                     make_env=run.make_env)
        if self.theta is not None:
            load_actor(session.actor, self.theta)
        session.learn(on_rollout=run.executing)


@dataclasses.dataclass(frozen=True)
class NeuralSafeAdaptation:
    """Xu & Zhu's safe adaptation (:func:`~cmdp_envs.meta.safe_adaptation.neural_adaptation_step`) from the actor
    ``theta`` of ``inner``'s network (SB3's or OmniSafe's): ``steps`` steps, each from ``config.n_episodes`` whole
    episodes of the policy of the moment (``config.horizon`` is replaced by the episode length), the multiplier
    solved afresh each step."""

    name: str
    inner: Any
    theta: np.ndarray
    steps: int
    config: Any

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return self.inner.env_kwargs

    def adapt(self, run: TestRun) -> None:
        from cmdp_envs.meta.safe_adaptation.neural_meta_training import SafeAdaptationInnerLoop

        _check_env_kwargs(self, run)
        session = SafeAdaptationInnerLoop(self.inner, self.config).session(
            [run.task], run.seed, 0.0, 0.0, check_count("steps", self.steps, minimum=1), make_env=run.make_env)
        load_actor(session.actor, self.theta)
        session.learn(on_rollout=run.executing)


class _FixedPolicyActor:
    """A policy that does not learn, on the check's lockstep vector env: row ``e`` is one episode, run by the
    policy itself or, for an :class:`EpisodeMixture`, by a member drawn for it; action draws come from ``seed``."""

    def __init__(self, policy: Any, n_episodes: int, seed: int):
        rng = np.random.default_rng(seed)
        self._rows = [policy.draw(rng) if isinstance(policy, EpisodeMixture) else policy for _ in range(n_episodes)]
        for index, member in enumerate({id(member): member for member in self._rows}.values()):
            if hasattr(member, "reseed"):
                member.reseed(np.random.default_rng([seed, index]))

    def sample(self, observations: np.ndarray) -> np.ndarray:
        return np.array([member.act(observation) for member, observation in zip(self._rows, observations)])


def _check_env_kwargs(method: Any, run: TestRun) -> None:
    if run.env_kwargs != method.env_kwargs:
        raise ValueError(f"{method.name}'s network reads envs made with {method.env_kwargs}, but the run makes them "
                         f"with {run.env_kwargs}: leave meta_test's env_kwargs out")
