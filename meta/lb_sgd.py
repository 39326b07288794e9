"""LB-SGD: log-barrier stochastic gradient ascent for safe exploration, a test-time baseline without training-phase
knowledge (Usmanova, As, Kamgarpour & Krause, JMLR 2024; its safe-RL analysis by Ni & Kamgarpour 2025; the
gridworld baseline of Ni & Kamgarpour 2026, Figure 2).

Restated for a tabular softmax policy ``pi_theta(a|s) ∝ exp(theta(s, a))`` started at ``pi_s``: maximise the barrier
``B(theta) = J_r(theta) + eta log(d - J_c(theta))``. Each iteration runs ``n_episodes`` episodes of the current
policy and estimates from them

* the margin's lower confidence bound ``alpha = d - Ĵ_c - z se(Ĵ_c)``;
* the policy gradients ``∇J(s, a) = nu(s) pi(a|s) A(s, a) / (1 - gamma)`` (softmax policy-gradient theorem, with the
  Monte Carlo advantages of :func:`~cmdp_envs.meta.estimators.trajectory_advantages`);

then steps along ``g = ∇J_r - eta ∇J_c / alpha`` with the safe step size of LB-SGD,

``step = min(1 / M_B, alpha / (2 |<∇J_c, g>| + sqrt(alpha M) ||g||))``,

``M_B = M + 2 eta M / alpha + 4 eta <∇J_c, g/||g||>^2 / alpha^2`` an estimate of the barrier's smoothness along ``g``
(it sets the ascent step; safety does not rest on it). With ``M`` a valid smoothness constant of ``J_c``, the second
term keeps the first-order increase of ``J_c`` below ``alpha / 2`` and its curvature term below ``alpha / 2``, so the
new policy stays feasible *for exact gradients and margins*. With the sampled ones the guarantee holds only
approximately (the lower confidence bound on the margin is per iteration, and the estimated gradients are noisy),
and a tuned ``M`` below the valid constant gives up the guarantee: such runs are safe only as far as the exact
check of every executed policy shows. The default ``M`` is the theory's: softmax values are
``8 R / (1 - gamma)^3``-smooth for per-step range ``R`` (Agarwal et al. 2021, Lemma D.4). With no margin left
(``alpha <= 0``) the iteration steps down ``J_c`` alone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np
import scipy.stats

from cmdp_envs.meta.covering import CoveringResult
from cmdp_envs.meta.estimators import AdvantageEstimate, trajectory_advantages
from cmdp_envs.meta.evaluation import MetaTestRun, run_iterates
from cmdp_envs.meta.policies import softmax
from cmdp_envs.tabular import EpisodeSampler, TabularCMDP, check_policy
from cmdp_envs.task import check_count

__all__ = ["LBSGDConfig", "policy_gradients", "lb_sgd_step", "LBSGD"]


@dataclasses.dataclass(frozen=True)
class LBSGDConfig:
    """:param barrier: ``eta``, the weight of the log barrier.
    :param n_episodes: episodes per iteration (the gradient's sample).
    :param horizon: steps per episode.
    :param smoothness: ``M``; ``None`` takes the theory's ``8 R / (1 - gamma)^3``.
    :param value_range: ``R``, the per-step range of rewards and costs (10 on the gridworld).
    :param confidence: level of the margin's lower confidence bound.
    """

    barrier: float = 0.1
    n_episodes: int = 100
    horizon: int = 100
    smoothness: float | None = None
    value_range: float = 10.0
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if not (self.barrier > 0 and self.value_range > 0 and 0 < self.confidence < 1):
            raise ValueError(f"need barrier > 0, value_range > 0, 0 < confidence < 1; got {self}")
        if self.smoothness is not None and not self.smoothness > 0:
            raise ValueError(f"smoothness must be > 0, got {self.smoothness}")
        check_count("n_episodes", self.n_episodes, minimum=2)
        check_count("horizon", self.horizon, minimum=1)

    def smoothness_constant(self, gamma: float) -> float:
        return self.smoothness if self.smoothness is not None else 8 * self.value_range / (1 - gamma) ** 3


def policy_gradients(policy: np.ndarray, estimate: AdvantageEstimate, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """``∇_theta J_r`` and ``∇_theta J_c`` of a softmax policy: ``nu(s) pi(a|s) A(s, a) / (1 - gamma)``, ``nu`` the
    normalised discounted visitation of ``estimate``."""
    scale = estimate.visitation[:, None] * policy / (1 - gamma)
    return scale * estimate.reward_advantage, scale * estimate.cost_advantage


def lb_sgd_step(cmdp: TabularCMDP, logits: np.ndarray, config: LBSGDConfig, rng: np.random.Generator
                ) -> tuple[np.ndarray, float]:
    """One iteration from ``theta = logits`` (``(S, A)``): the new logits and the step size taken."""
    policy = softmax(logits)
    trajectories = EpisodeSampler(cmdp, policy, config.horizon).sample_trajectories(config.n_episodes, seed=rng)
    estimate = trajectory_advantages(cmdp, trajectories)
    discounted_costs = trajectories.costs @ cmdp.gamma ** np.arange(config.horizon)
    z = scipy.stats.norm.ppf(config.confidence)
    margin = cmdp.cost_limit - estimate.cost_value - z * discounted_costs.std(ddof=1) / math.sqrt(config.n_episodes)
    reward_gradient, cost_gradient = policy_gradients(policy, estimate, cmdp.gamma)
    M = config.smoothness_constant(cmdp.gamma)
    if margin <= 0:
        direction = -cost_gradient
        norm = np.linalg.norm(direction)
        return (logits + direction / M, 1 / M) if norm > 0 else (logits, 0.0)
    direction = reward_gradient - config.barrier * cost_gradient / margin
    norm = np.linalg.norm(direction)
    if norm == 0:
        return logits, 0.0
    slope = float((cost_gradient * direction).sum())
    barrier_smoothness = (M + 2 * config.barrier * M / margin
                          + 4 * config.barrier * (slope / norm) ** 2 / margin**2)
    step = min(1 / barrier_smoothness, margin / (2 * abs(slope) + math.sqrt(margin * M) * norm))
    return logits + step * direction, step


@dataclasses.dataclass(frozen=True)
class LBSGD:
    """LB-SGD under the meta-test protocol (:class:`~cmdp_envs.meta.evaluation.MetaTestMethod`): from the shared
    ``pi_s`` (which needs full support: a softmax policy has no zero probabilities), one iteration per
    ``config.n_episodes`` episodes; ``config.horizon`` is replaced by the protocol's horizon."""

    config: LBSGDConfig = LBSGDConfig()

    def run_on_tabular(self, cmdp: TabularCMDP, training: CoveringResult, n_episodes: int, horizon: int,
                       seed: np.random.SeedSequence) -> MetaTestRun:
        config = dataclasses.replace(self.config, horizon=horizon)
        initial_policy = check_policy(cmdp, training.safe_policy.probabilities)
        if np.any(initial_policy <= 0):
            raise ValueError("LB-SGD's softmax policy needs an initial policy with full support (every probability "
                             f"> 0); pi_s has {int((initial_policy <= 0).sum())} zero entries")
        rng = np.random.default_rng(seed)

        def iterates() -> Iterator[np.ndarray]:
            logits = np.log(initial_policy)
            while True:
                yield softmax(logits)
                logits, _ = lb_sgd_step(cmdp, logits, config, rng)

        return run_iterates(cmdp, iterates(), n_episodes, config.n_episodes)
