"""The oracle protocol: what every learner returns to the meta algorithms, and how its values are estimated.

Ni & Kamgarpour's oracles, in our names:

* ``O_l(M, eps)`` — a *learner oracle* (:class:`LearnerOracle`): given a task, a policy that is eps-optimal and
  relaxed eps-feasible, with its reward and cost values;
* ``O_c(M1, M2, eps)`` — a *check oracle*: is ``M1`` within ``eps`` of ``M2`` (:mod:`.feasible`);
* ``O_s(U, xi)`` — a *simultaneously feasible oracle*: one policy xi-feasible on every task of ``U``
  (:mod:`.feasible`).

Values are exact on tabular families (:func:`evaluate`); otherwise Monte Carlo with a stated confidence interval
(:func:`~cmdp_envs.meta.estimators.monte_carlo_values`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym

from cmdp_envs.meta.estimators import ValueEstimate, monte_carlo_values
from cmdp_envs.meta.policies import TabularPolicy
from cmdp_envs.tabular import evaluate_policy
from cmdp_envs.task import TabularFamily, Task, TaskFamily

__all__ = ["Policy", "ValueEstimate", "OracleResult", "LearnerOracle", "evaluate"]


@runtime_checkable
class Policy(Protocol):
    """Anything that maps an observation to an action."""

    def act(self, observation: Any) -> Any: ...


@dataclasses.dataclass(frozen=True)
class OracleResult:
    """A learner oracle's answer for one task: the policy and its discounted reward and cost values there."""

    task: Task
    policy: Policy
    reward: ValueEstimate
    cost: ValueEstimate
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        """``J_c <= cost_limit``; for estimates, the upper end of the confidence interval must meet the limit."""
        return self.cost.upper_bound <= self.task.cost_limit


class LearnerOracle(Protocol):
    """``O_l``: ``oracle(task, seed=..., cost_limit=...)`` returns an :class:`OracleResult` for that task;
    ``cost_limit`` (default: the task's) lets callers ask for a margin, e.g. ``task.cost_limit - xi``."""

    def __call__(self, task: Task, seed: int = 0, cost_limit: float | None = None) -> OracleResult: ...


def evaluate(
    family: TaskFamily, task: Task, policy: Policy, env: gym.Env | None = None, *,
    n_episodes: int = 1000, horizon: int = 200, confidence: float = 0.95, seed: int = 0,
) -> tuple[ValueEstimate, ValueEstimate]:
    """Reward and cost values of ``policy`` on ``task``: exact when the family is tabular and the policy a
    :class:`TabularPolicy`, else Monte Carlo (:func:`~cmdp_envs.meta.estimators.monte_carlo_values`) through ``env``,
    by default ``family.make_env()``. The cost value is the one the family's limit constrains (its
    ``cost_semantics``: discounted, or the episode sum)."""
    if isinstance(family, TabularFamily) and isinstance(policy, TabularPolicy):
        reward_value, cost_value = evaluate_policy(family.tabular(task), policy.probabilities)
        return ValueEstimate(reward_value), ValueEstimate(cost_value)
    if env is None:
        env = family.make_env()
    return monte_carlo_values(env, policy, task, family.gamma, n_episodes, horizon, confidence, seed,
                              cost_gamma=family.cost_discount)

