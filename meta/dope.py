"""Model-based safe exploration from a safe baseline, the test-time baselines of Ni & Kamgarpour (2026, Figure 2) that
use no training-phase knowledge beyond the baseline ``pi_b`` (here the shared ``pi_s``): DOPE, and DOPE+ as the
gridworld authors ran it.

Both keep counts of every transition, plan on the empirical kernel with an optimistic reward and a pessimistic cost,
and run ``pi_b`` during a warm-up and whenever no plan meets the limit. They differ only in their bonuses and warm-up.

**DOPE** (Bura, HasanzadeZonuzy, Kalathil, Shakkottai & Chamberland, NeurIPS 2022), restated for a discounted tabular
CMDP (SPECS.md; the paper is finite-horizon with per-step values in ``[0, 1]``, so every value quantity scales by the
per-step range ``R`` and ``H = 1 / (1 - gamma)`` stands for the horizon):

* the empirical kernel ``P_hat = n(s,a,s') / n(s,a)`` from every transition seen so far, on the kernel's support,
  which is taken as known (uniform over it where ``n(s,a) = 0``);
* empirical-Bernstein radii with ``L = log(2 S A H K / delta)``:
  ``beta(s,a,s') = sqrt(4 P_hat (1 - P_hat) L / max(n, 1)) + 14 L / (3 max(n, 1))``, ``beta_bar(s,a) = sum_s' beta``;
* an optimistic reward ``r_bar = min(r + R^2 H^2 beta_bar / Delta, R)`` and a pessimistic cost
  ``c_bar = c + R H beta_bar``, with ``Delta = d - J_c(pi_b)`` the baseline's margin (known, as DOPE assumes);
* the plan: the extended LP over every kernel within ``beta`` of ``P_hat``
  (:func:`~cmdp_envs.tabular.solve_extended_cmdp`), maximising ``r_bar`` subject to ``c_bar``'s value meeting
  ``d``;
* ``pi_b`` for the first ``K0`` episodes: DOPE's ``S^2 A H^3 / Delta_n^2`` with ``Delta_n = Delta / R`` unless
  ``warmup`` says otherwise. On the gridworld that is billions of episodes, so DOPE as analysed never leaves
  ``pi_b`` within the paper's ``K = 40,000``.

**DOPE+ as the gridworld authors ran it** (their code's constants, SPECS.md; the DOPE+ paper of Yu, Lee, Overman &
Lee, RLJ 2025, derives variance-based bonuses whose exact estimators we could not reach, so this is the authors'
hand-tuned version, not the paper's): the same LP with

* transition radii ``sqrt(4 L_p P_hat / m) + 14 L_p / (3 m)``, ``m = max(1, n(s,a) - 1)``, ``L_p = 1e-8`` (in
  effect no optimism over kernels);
* a cost bonus ``b = 8 e / sqrt(1 - gamma) + 2 L sqrt(K / ((1 - gamma) A)) / m`` with
  ``e = sqrt(4 L S / m) + 14 L S / (3 m)``, ``L = 1e-4`` and ``K`` the run's episodes; ``c_bar = c + b``;
* a reward ``r_tilde = min(r + b / (0.1 (1 - gamma)), 1 + sqrt(5e-4))``, which caps the gridworld's goal reward of
  10 at about 1.02, so the plan weighs every well-enough-visited pair about the same;
* ``pi_b`` for the first 18,000 episodes (smaller values gave infeasible LPs or unsafe plans, per their comments).

Plans are recomputed whenever some pair's visit count has doubled since the last plan. The papers re-plan every
episode; the doubling schedule changes the plan only when the radii have shrunk by a constant factor somewhere, and
keeps the number of LPs logarithmic in the episodes. Counts use every transition whose successor an episode observed,
so an episode of ``H`` steps gives ``H - 1``; ``H`` is the run's horizon unless ``rollout_steps`` says otherwise (the
gridworld authors count 600-step rollouts; ``reproduce gridworld`` keeps every method at its horizon of 100).
"""

from __future__ import annotations

import abc
import dataclasses
import math

import numpy as np

from cmdp_envs.meta.covering import CoveringResult
from cmdp_envs.meta.evaluation import MetaTestRun
from cmdp_envs.tabular import EpisodeSampler, TabularCMDP, check_policy, evaluate_policy, solve_extended_cmdp
from cmdp_envs.task import check_count
from cmdp_envs.validation import check_number

__all__ = ["DOPE", "AuthorsDOPEPlus"]

#: The fewest episodes sampled in one batch after the warm-up.
MIN_BLOCK = 16


@dataclasses.dataclass(frozen=True)
class _CountingExploration(abc.ABC):
    """The episode loop both methods share: the baseline during the warm-up, then the method's plan from the counts,
    re-planned when a pair's visit count doubles. Subclasses give ``warmup_episodes`` and ``plan``.

    :param max_block: the most episodes sampled in one batch.
    :param rollout_steps: the steps of each episode's rollout that the counts come from; ``None``: the run's horizon.
    """

    max_block: int = 2048
    rollout_steps: int | None = None

    def __post_init__(self) -> None:
        check_count("max_block", self.max_block, minimum=1)
        if self.rollout_steps is not None:
            check_count("rollout_steps", self.rollout_steps, minimum=2)

    @abc.abstractmethod
    def warmup_episodes(self, cmdp: TabularCMDP, baseline: np.ndarray) -> float:
        """The baseline's episodes before the first plan."""

    @abc.abstractmethod
    def plan(self, cmdp: TabularCMDP, counts: np.ndarray, baseline: np.ndarray, n_episodes: int) -> np.ndarray:
        """The policy to run after observing transition ``counts`` (shape ``(S, A, S)``) in a run of
        ``n_episodes``."""

    def run_on_tabular(self, cmdp: TabularCMDP, training: CoveringResult, n_episodes: int, horizon: int,
                       seed: np.random.SeedSequence) -> MetaTestRun:
        check_count("n_episodes", n_episodes, minimum=1)
        check_count("horizon", horizon, minimum=2)
        steps = horizon if self.rollout_steps is None else self.rollout_steps
        rng = np.random.default_rng(seed)
        baseline = check_policy(cmdp, training.safe_policy.probabilities)
        warmup = self.warmup_episodes(cmdp, baseline)
        S, A = cmdp.n_states, cmdp.n_actions
        counts = np.zeros((S, A, S))
        doubling = np.zeros(S * A)  # each pair's visit count that calls for the next plan
        policy, plans, replan = baseline, 0, False
        values = evaluate_policy(cmdp, policy)
        run = MetaTestRun.builder(cmdp.cost_limit)
        k, block_size = 0, self.max_block
        while k < n_episodes:
            if k >= warmup and (plans == 0 or replan):
                policy = self.plan(cmdp, counts, baseline, n_episodes)
                doubling = 2 * np.maximum(counts.sum(axis=2).ravel(), 0.5)  # a first visit doubles an unseen pair
                plans += 1
                values = evaluate_policy(cmdp, policy)
            block = int(min(n_episodes - k, block_size, (warmup - k) if k < warmup else block_size))
            trajectories = EpisodeSampler(cmdp, policy[None], steps).sample_trajectories(block, seed=rng)
            pairs = trajectories.states[:, :-1] * A + trajectories.actions[:, :-1]
            successors = trajectories.states[:, 1:]
            used, replan = block, False
            if k >= warmup:  # stop at the first episode after which some pair's count has doubled
                per_episode = np.zeros((block, S * A))
                np.add.at(per_episode, (np.repeat(np.arange(block), steps - 1), pairs.ravel()), 1.0)
                totals = counts.sum(axis=2).ravel() + np.cumsum(per_episode, axis=0)
                doubled = np.any(totals >= doubling, axis=1)
                replan = bool(doubled.any())
                used = int(np.argmax(doubled)) + 1 if replan else block
                # Episodes after a doubling are drawn again under the new plan: size blocks to the recent pace of
                # doublings so that few are drawn in vain.
                block_size = min(self.max_block, max(MIN_BLOCK, 2 * used) if replan else 2 * block_size)
            np.add.at(counts.reshape(S * A, S), (pairs[:used].ravel(), successors[:used].ravel()), 1.0)
            run.add(used, *values, {"plan": plans})
            k += used
        return run.build()


@dataclasses.dataclass(frozen=True)
class DOPE(_CountingExploration):
    """DOPE under the meta-test protocol (:class:`~cmdp_envs.meta.evaluation.MetaTestMethod`), from the shared
    ``pi_s`` as its baseline (the module docstring has the algorithm).

    :param delta: the confidence of the radii.
    :param warmup: ``K0``, the baseline's episodes before the first plan; ``None``: DOPE's ``S^2 A H^3 / Delta_n^2``.
    """

    delta: float = 0.1
    warmup: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("delta", self.delta, 0.0, 1.0, low_open=True, high_open=True)
        if self.warmup is not None:
            check_count("warmup", self.warmup)

    def warmup_episodes(self, cmdp: TabularCMDP, baseline: np.ndarray) -> float:
        """``K0`` on ``cmdp`` (``inf`` when the baseline has no margin there: DOPE then never plans)."""
        if self.warmup is not None:
            return float(self.warmup)
        margin = cmdp.cost_limit - evaluate_policy(cmdp, baseline)[1]
        if margin <= 0:
            return math.inf
        horizon, value_range = 1 / (1 - cmdp.gamma), _value_range(cmdp)
        return cmdp.n_states**2 * cmdp.n_actions * horizon**3 / (margin / value_range) ** 2

    def plan(self, cmdp: TabularCMDP, counts: np.ndarray, baseline: np.ndarray, n_episodes: int) -> np.ndarray:
        """The policy DOPE executes after observing transition ``counts`` (shape ``(S, A, S)``): the optimistic plan,
        or ``baseline`` when the extended LP is infeasible or the baseline has no margin to explore with."""
        margin = cmdp.cost_limit - evaluate_policy(cmdp, baseline)[1]
        if margin <= 0:
            return baseline
        support, estimate, visits = _empirical_kernel(cmdp, counts)
        S, A = cmdp.n_states, cmdp.n_actions
        horizon, value_range = 1 / (1 - cmdp.gamma), _value_range(cmdp)
        log_term = math.log(2 * S * A * horizon * n_episodes / self.delta)
        seen = np.maximum(visits, 1)[..., None]
        radius = np.where(support, np.sqrt(4 * estimate * (1 - estimate) * log_term / seen)
                          + 14 * log_term / (3 * seen), 0.0)
        bonus = radius.sum(axis=2)
        model = dataclasses.replace(
            cmdp, P=estimate,
            r=np.minimum(cmdp.r + value_range**2 * horizon**2 * bonus / margin, value_range),
            c=cmdp.c + value_range * horizon * bonus)
        solution = solve_extended_cmdp(model, radius, support=support, fallback=baseline)
        return baseline if solution is None else solution.policy


@dataclasses.dataclass(frozen=True)
class AuthorsDOPEPlus(_CountingExploration):
    """DOPE+ with the gridworld authors' hand-tuned bonuses and warm-up (the module docstring has the formulas),
    under the meta-test protocol, from the shared ``pi_s``.

    :param warmup: the baseline's episodes before the first plan (theirs: 18,000).
    :param transition_log: ``L_p`` of the transition radii (theirs: 1e-8).
    :param bonus_log: ``L`` of the cost bonus (theirs: 1e-4).
    :param reward_bonus_scale: the cost bonus enters the reward divided by this times ``1 - gamma`` (theirs: 0.1).
    :param reward_cap: the planned reward's cap (theirs: ``1 + sqrt(5e-4)``).
    """

    warmup: int = 18_000
    transition_log: float = 1e-8
    bonus_log: float = 1e-4
    reward_bonus_scale: float = 0.1
    reward_cap: float = 1 + math.sqrt(5e-4)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_count("warmup", self.warmup)
        for name in ("transition_log", "bonus_log", "reward_bonus_scale"):
            check_number(name, getattr(self, name), 0.0, low_open=True)
        check_number("reward_cap", self.reward_cap)

    def warmup_episodes(self, cmdp: TabularCMDP, baseline: np.ndarray) -> float:
        return float(self.warmup)

    def plan(self, cmdp: TabularCMDP, counts: np.ndarray, baseline: np.ndarray, n_episodes: int) -> np.ndarray:
        """The policy executed after observing transition ``counts`` (shape ``(S, A, S)``): the LP's plan with the
        authors' bonuses, or ``baseline`` when it is infeasible."""
        support, estimate, visits = _empirical_kernel(cmdp, counts)
        S, A, gamma = cmdp.n_states, cmdp.n_actions, cmdp.gamma
        m = np.maximum(visits - 1, 1)
        radius = np.where(support, np.sqrt(4 * self.transition_log * estimate / m[..., None])
                          + 14 * self.transition_log / (3 * m[..., None]), 0.0)
        error = np.sqrt(4 * self.bonus_log * S / m) + 14 * self.bonus_log * S / (3 * m)
        bonus = 8 * error / math.sqrt(1 - gamma) + 2 * self.bonus_log * math.sqrt(n_episodes / ((1 - gamma) * A)) / m
        model = dataclasses.replace(
            cmdp, P=estimate, c=cmdp.c + bonus,
            r=np.minimum(cmdp.r + bonus / (self.reward_bonus_scale * (1 - gamma)), self.reward_cap))
        solution = solve_extended_cmdp(model, radius, support=support, fallback=baseline)
        return baseline if solution is None else solution.policy


def _empirical_kernel(cmdp: TabularCMDP, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kernel's support, ``P_hat`` from ``counts`` on it (uniform over it where a pair is unseen), and each
    pair's visits ``n(s,a)``."""
    support = cmdp.P > 0
    visits = counts.sum(axis=2)
    uniform = support / support.sum(axis=2, keepdims=True)
    estimate = np.where(visits[..., None] > 0, counts / np.maximum(visits, 1)[..., None], uniform)
    return support, estimate, visits


def _value_range(cmdp: TabularCMDP) -> float:
    """``R``: the largest per-step reward or cost."""
    return float(max(np.abs(cmdp.r).max(), cmdp.c.max()))
