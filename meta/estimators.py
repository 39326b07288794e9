"""Estimators shared by the meta algorithms, each from samples or exact: value estimates with confidence intervals,
Monte Carlo rollouts through any Gymnasium env, discounted returns-to-go, and the advantages and state visitation of
a tabular policy (exact by linear solves, or from sampled trajectories).

Xu & Zhu's closed-form adaptation, LB-SGD, the learner oracles and the safe mixture's env driver all use these; they
belong to no single algorithm.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np
import scipy.stats

from cmdp_envs.tabular import EpisodeSampler, TabularCMDP, Trajectories, value_functions
from cmdp_envs.task import Task, check_count

__all__ = [
    "ValueEstimate",
    "rollout_returns",
    "monte_carlo_values",
    "returns_to_go",
    "AdvantageEstimate",
    "exact_advantages",
    "sampled_advantages",
    "trajectory_advantages",
]


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


def rollout_returns(env: gym.Env, policy: Any, task: Task, gamma: float, horizon: int, seed: int,
                    cost_gamma: float | None = None) -> tuple[float, float]:
    """One episode of ``policy`` on ``task`` through ``env`` (reset with ``seed``), at most ``horizon`` steps: its
    discounted return and its cost discounted by ``cost_gamma`` (default ``gamma``; 1 for an episode-sum limit)."""
    cost_gamma = gamma if cost_gamma is None else cost_gamma
    observation, _ = env.reset(seed=seed, options={"task": task})
    reward_return = cost_return = 0.0
    discount = cost_discount = 1.0
    for _ in range(horizon):
        observation, reward, terminated, truncated, info = env.step(policy.act(observation))
        reward_return += discount * float(reward)
        cost_return += cost_discount * float(info["cost"])
        discount *= gamma
        cost_discount *= cost_gamma
        if terminated or truncated:
            break
    return reward_return, cost_return


def monte_carlo_values(
    env: gym.Env, policy: Any, task: Task, gamma: float, n_episodes: int, horizon: int,
    confidence: float = 0.95, seed: int = 0, cost_gamma: float | None = None,
) -> tuple[ValueEstimate, ValueEstimate]:
    """Discounted reward and cost values of ``policy`` on ``task`` from ``n_episodes`` rollouts of at most ``horizon``
    steps through ``env``, each with a normal-approximation confidence interval at ``confidence``. The cost is
    discounted by ``cost_gamma`` (default ``gamma``; a family's ``cost_discount``)."""
    n_episodes = check_count("n_episodes", n_episodes, minimum=2)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    returns = np.array([rollout_returns(env, policy, task, gamma, horizon, seed + episode, cost_gamma)
                        for episode in range(n_episodes)])
    z = scipy.stats.norm.ppf(0.5 + confidence / 2)
    half_widths = z * returns.std(axis=0, ddof=1) / math.sqrt(n_episodes)
    return (ValueEstimate(float(returns[:, 0].mean()), float(half_widths[0]), confidence),
            ValueEstimate(float(returns[:, 1].mean()), float(half_widths[1]), confidence))


@dataclasses.dataclass(frozen=True)
class AdvantageEstimate:
    """What one step needs to know about ``pi_phi`` on the task: advantages ``(S, A)``, the normalised discounted
    state visitation ``nu (S,)`` and the cost value ``J_c(pi_phi)``."""

    reward_advantage: np.ndarray
    cost_advantage: np.ndarray
    visitation: np.ndarray
    cost_value: float


def exact_advantages(cmdp: TabularCMDP, policy: np.ndarray) -> AdvantageEstimate:
    """Exact advantages and visitation of ``policy`` (linear solves)."""
    V, Q = value_functions(cmdp, policy)
    P_pi = np.einsum("sa,sat->st", policy, cmdp.P)
    occupancy = np.linalg.solve((np.eye(cmdp.n_states) - cmdp.gamma * P_pi).T, cmdp.mu)
    return AdvantageEstimate(
        reward_advantage=Q[0] - V[0][:, None],
        cost_advantage=Q[1] - V[1][:, None],
        visitation=(1 - cmdp.gamma) * occupancy,
        cost_value=float(cmdp.mu @ V[1]),
    )


def returns_to_go(values: np.ndarray, gamma: float) -> np.ndarray:
    """``G[e, t] = sum_{k >= t} gamma^(k - t) values[e, k]`` over the sampled horizon."""
    returns = np.empty_like(values)
    running = np.zeros(values.shape[0])
    for t in reversed(range(values.shape[1])):
        running = values[:, t] + gamma * running
        returns[:, t] = running
    return returns


def sampled_advantages(cmdp: TabularCMDP, policy: np.ndarray, n_episodes: int, horizon: int,
                       seed: int) -> AdvantageEstimate:
    """Monte Carlo estimates from ``n_episodes`` trajectories of ``policy``: ``Q(s, a)`` and ``V(s)`` are mean
    discounted returns-to-go after visits of ``(s, a)`` and of ``s``; advantages of pairs never visited are 0 (the
    closed form then leaves those action probabilities at ``pi_phi``'s relative weights); ``nu`` is the discounted
    visit frequency; ``J_c`` the mean discounted episode cost. The trajectories are streamed in the sampler's chunks
    and only their sums kept, so memory stays bounded for any ``n_episodes``."""
    chunks = EpisodeSampler(cmdp, policy, horizon).sample_trajectory_chunks(n_episodes, seed=seed)
    sums = None
    for chunk in chunks:
        chunk_sums = _advantage_sums(cmdp, chunk)
        sums = chunk_sums if sums is None else [a + b for a, b in zip(sums, chunk_sums)]
    if sums is None:
        raise ValueError("sampled advantages need at least one episode")
    return _advantage_estimate(cmdp, sums)


def trajectory_advantages(cmdp: TabularCMDP, trajectories: Trajectories) -> AdvantageEstimate:
    """The estimates of :func:`sampled_advantages` from trajectories already sampled."""
    return _advantage_estimate(cmdp, _advantage_sums(cmdp, trajectories))


def _advantage_sums(cmdp: TabularCMDP, trajectories: Trajectories) -> list[Any]:
    """What the estimates need, as sums over episodes (so chunks add up): visit counts of pairs and states, the sums
    of their reward and cost returns-to-go, the discounted visits, the summed discounted episode cost, the episodes."""
    n_episodes, horizon = trajectories.states.shape
    S, A = cmdp.n_states, cmdp.n_actions
    states, actions = trajectories.states.ravel(), trajectories.actions.ravel()
    pairs = states * A + actions
    returns = [returns_to_go(values, cmdp.gamma).ravel() for values in (trajectories.rewards, trajectories.costs)]
    discounts = cmdp.gamma ** np.arange(horizon)
    return [np.bincount(pairs, minlength=S * A).reshape(S, A), np.bincount(states, minlength=S),
            np.stack([np.bincount(pairs, values, S * A).reshape(S, A) for values in returns]),
            np.stack([np.bincount(states, values, S) for values in returns]),
            np.bincount(states, np.tile(discounts, n_episodes), S), (trajectories.costs @ discounts).sum(),
            n_episodes]


def _advantage_estimate(cmdp: TabularCMDP, sums: list[Any]) -> AdvantageEstimate:
    pair_count, state_count, pair_returns, state_returns, discounted_visits, cost_sum, n_episodes = sums
    pair_mean = pair_returns / np.maximum(pair_count, 1)
    state_mean = state_returns / np.maximum(state_count, 1)
    reward_advantage, cost_advantage = np.where(pair_count > 0, pair_mean - state_mean[:, :, None], 0.0)
    visitation = discounted_visits * (1 - cmdp.gamma) / n_episodes
    return AdvantageEstimate(reward_advantage, cost_advantage, visitation, float(cost_sum / n_episodes))
