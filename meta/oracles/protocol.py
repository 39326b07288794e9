"""The oracle protocol: what every learner returns to the meta algorithms, and how its values are estimated.

Ni & Kamgarpour's oracles, in our names:

* ``O_l(M, eps)`` — a *learner oracle* (:class:`LearnerOracle`): given a task, a policy that is eps-optimal and
  relaxed eps-feasible, with its reward and cost values;
* ``O_c(M1, M2, eps)`` — a *check oracle*: is ``M1`` within ``eps`` of ``M2`` (:mod:`.feasible`);
* ``O_s(U, xi)`` — a *simultaneously feasible oracle*: one policy xi-feasible on every task of ``U``
  (:mod:`.feasible`).

Values are exact on tabular families (:func:`evaluate`); otherwise Monte Carlo with a stated confidence interval.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import scipy.stats

from cmdp_envs.meta.policies import TabularPolicy
from cmdp_envs.tabular import evaluate_policy
from cmdp_envs.task import Task, TaskFamily, check_count

__all__ = ["Policy", "ValueEstimate", "OracleResult", "LearnerOracle", "evaluate", "monte_carlo_values",
           "rollout_returns"]


@runtime_checkable
class Policy(Protocol):
    """Anything that maps an observation to an action."""

    def act(self, observation: Any) -> Any: ...


@dataclasses.dataclass(frozen=True)
class ValueEstimate:
    """A value with its uncertainty: ``value ± half_width`` at ``confidence`` (``half_width = 0`` and
    ``confidence = 1`` when exact)."""

    value: float
    half_width: float = 0.0
    confidence: float = 1.0

    @property
    def upper_bound(self) -> float:
        """``value + half_width``: the value is at most this, at ``confidence``."""
        return self.value + self.half_width

    @property
    def exact(self) -> bool:
        return self.half_width == 0.0 and self.confidence == 1.0

    def __str__(self) -> str:
        if self.exact:
            return f"{self.value:.4f} (exact)"
        return f"{self.value:.4f} ± {self.half_width:.4f} ({100 * self.confidence:g}% CI)"


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


def rollout_returns(env: gym.Env, policy: Policy, task: Task, gamma: float, horizon: int, seed: int
                    ) -> tuple[float, float]:
    """One episode of ``policy`` on ``task`` through ``env`` (reset with ``seed``), at most ``horizon`` steps: its
    discounted return and discounted cost."""
    observation, _ = env.reset(seed=seed, options={"task": task})
    reward_return = cost_return = 0.0
    discount = 1.0
    for _ in range(horizon):
        observation, reward, terminated, truncated, info = env.step(policy.act(observation))
        reward_return += discount * float(reward)
        cost_return += discount * float(info["cost"])
        discount *= gamma
        if terminated or truncated:
            break
    return reward_return, cost_return


def monte_carlo_values(
    env: gym.Env, policy: Policy, task: Task, gamma: float, n_episodes: int, horizon: int,
    confidence: float = 0.95, seed: int = 0,
) -> tuple[ValueEstimate, ValueEstimate]:
    """Discounted reward and cost values of ``policy`` on ``task`` from ``n_episodes`` rollouts of at most ``horizon``
    steps through ``env``, each with a normal-approximation confidence interval at ``confidence``."""
    n_episodes = check_count("n_episodes", n_episodes, minimum=2)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    returns = np.array([rollout_returns(env, policy, task, gamma, horizon, seed + episode)
                        for episode in range(n_episodes)])
    z = scipy.stats.norm.ppf(0.5 + confidence / 2)
    half_widths = z * returns.std(axis=0, ddof=1) / math.sqrt(n_episodes)
    return (ValueEstimate(float(returns[:, 0].mean()), float(half_widths[0]), confidence),
            ValueEstimate(float(returns[:, 1].mean()), float(half_widths[1]), confidence))


def evaluate(
    family: TaskFamily, task: Task, policy: Policy, env: gym.Env | None = None, *,
    n_episodes: int = 1000, horizon: int = 200, confidence: float = 0.95, seed: int = 0,
) -> tuple[ValueEstimate, ValueEstimate]:
    """Reward and cost values of ``policy`` on ``task``: exact when the family is tabular and the policy a
    :class:`TabularPolicy`, else Monte Carlo through ``env`` (:func:`monte_carlo_values`)."""
    if hasattr(family, "tabular") and isinstance(policy, TabularPolicy):
        reward_value, cost_value = evaluate_policy(family.tabular(task), policy.probabilities)
        return ValueEstimate(reward_value), ValueEstimate(cost_value)
    if env is None:
        raise ValueError("a non-tabular evaluation needs the env to roll out in")
    return monte_carlo_values(env, policy, task, family.gamma, n_episodes, horizon, confidence, seed)

