"""DOPE: doubly optimistic and pessimistic exploration for safe RL (Bura, HasanzadeZonuzy, Kalathil, Shakkottai &
Chamberland, NeurIPS 2022), a test-time baseline of Ni & Kamgarpour (2026, Figure 2) that uses no training-phase
knowledge beyond the safe baseline ``pi_b`` (here the shared ``pi_s``).

Restated for a discounted tabular CMDP (SPECS.md; the paper is finite-horizon with per-step values in ``[0, 1]``,
so every value quantity scales by the per-step range ``R`` and ``H = 1 / (1 - gamma)`` stands for the horizon):

* the empirical kernel ``P_hat = n(s,a,s') / n(s,a)`` from every transition seen so far, on the kernel's support,
  which is taken as known (uniform over it where ``n(s,a) = 0``);
* empirical-Bernstein radii with ``L = log(2 S A H K / delta)``:
  ``beta(s,a,s') = sqrt(4 P_hat (1 - P_hat) L / max(n, 1)) + 14 L / (3 max(n, 1))``, ``beta_bar(s,a) = sum_s' beta``;
* an optimistic reward ``r_bar = min(r + R^2 H^2 beta_bar / Delta, R)`` and a pessimistic cost
  ``c_bar = c + R H beta_bar``, with ``Delta = d - J_c(pi_b)`` the baseline's margin (known, as DOPE assumes);
* the plan: the extended LP over every kernel within ``beta`` of ``P_hat``
  (:func:`~cmdp_envs.tabular.solve_extended_cmdp`), maximising ``r_bar`` subject to ``c_bar``'s value meeting
  ``d``; ``pi_b`` where the LP is infeasible;
* ``pi_b`` for the first ``K0`` episodes: DOPE's ``S^2 A H^3 / Delta_n^2`` with ``Delta_n = Delta / R`` unless
  ``warmup`` says otherwise. On the gridworld that is billions of episodes, so DOPE as analysed never leaves
  ``pi_b`` within the paper's ``K = 40,000``.

The plan is recomputed whenever some pair's visit count has doubled since the last plan. The paper re-plans every
episode; the doubling schedule changes the plan only when the radii have shrunk by a constant factor somewhere, and
keeps the number of LPs logarithmic in the episodes. Counts use every transition whose successor an episode observed,
so an episode of ``horizon`` steps gives ``horizon - 1``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from cmdp_envs.meta.covering import CoveringResult
from cmdp_envs.meta.evaluation import MetaTestRun
from cmdp_envs.tabular import EpisodeSampler, TabularCMDP, check_policy, evaluate_policy, solve_extended_cmdp
from cmdp_envs.task import check_count
from cmdp_envs.validation import check_number

__all__ = ["DOPE"]


@dataclasses.dataclass(frozen=True)
class DOPE:
    """DOPE under the meta-test protocol (:class:`~cmdp_envs.meta.evaluation.MetaTestMethod`), from the shared
    ``pi_s`` as its baseline (the module docstring has the algorithm).

    :param delta: the confidence of the radii.
    :param warmup: ``K0``, the baseline's episodes before the first plan; ``None``: DOPE's ``S^2 A H^3 / Delta_n^2``.
    :param max_block: the most episodes sampled in one batch.
    """

    delta: float = 0.1
    warmup: int | None = None
    max_block: int = 2048

    def __post_init__(self) -> None:
        check_number("delta", self.delta, 0.0, 1.0, low_open=True, high_open=True)
        if self.warmup is not None:
            check_count("warmup", self.warmup)
        check_count("max_block", self.max_block, minimum=1)

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
        support = cmdp.P > 0
        visits = counts.sum(axis=2, keepdims=True)
        uniform = support / support.sum(axis=2, keepdims=True)
        estimate = np.where(visits > 0, counts / np.maximum(visits, 1), uniform)
        S, A = cmdp.n_states, cmdp.n_actions
        horizon, value_range = 1 / (1 - cmdp.gamma), _value_range(cmdp)
        log_term = math.log(2 * S * A * horizon * n_episodes / self.delta)
        seen = np.maximum(visits, 1)
        radius = np.where(support, np.sqrt(4 * estimate * (1 - estimate) * log_term / seen)
                          + 14 * log_term / (3 * seen), 0.0)
        bonus = radius.sum(axis=2)
        model = dataclasses.replace(
            cmdp, P=estimate,
            r=np.minimum(cmdp.r + value_range**2 * horizon**2 * bonus / margin, value_range),
            c=cmdp.c + value_range * horizon * bonus)
        solution = solve_extended_cmdp(model, radius, support=support, fallback=baseline)
        return baseline if solution is None else solution.policy

    def run_on_tabular(self, cmdp: TabularCMDP, training: CoveringResult, n_episodes: int, horizon: int,
                       seed: np.random.SeedSequence) -> MetaTestRun:
        check_count("n_episodes", n_episodes, minimum=1)
        check_count("horizon", horizon, minimum=2)
        rng = np.random.default_rng(seed)
        baseline = check_policy(cmdp, training.safe_policy.probabilities)
        warmup = self.warmup_episodes(cmdp, baseline)
        S, A = cmdp.n_states, cmdp.n_actions
        counts = np.zeros((S, A, S))
        doubling = np.zeros(S * A)  # each pair's visit count that calls for the next plan
        policy, plans, replan = baseline, 0, False
        values = evaluate_policy(cmdp, policy)
        run = MetaTestRun.builder(cmdp.cost_limit)
        k = 0
        while k < n_episodes:
            if k >= warmup and (plans == 0 or replan):
                policy = self.plan(cmdp, counts, baseline, n_episodes)
                doubling = 2 * np.maximum(counts.sum(axis=2).ravel(), 0.5)  # a first visit doubles an unseen pair
                plans += 1
                values = evaluate_policy(cmdp, policy)
            block = int(min(n_episodes - k, self.max_block, (warmup - k) if k < warmup else self.max_block))
            trajectories = EpisodeSampler(cmdp, policy[None], horizon).sample_trajectories(block, seed=rng)
            pairs = trajectories.states[:, :-1] * A + trajectories.actions[:, :-1]
            successors = trajectories.states[:, 1:]
            used, replan = block, False
            if k >= warmup:  # stop at the first episode after which some pair's count has doubled
                per_episode = np.zeros((block, S * A))
                np.add.at(per_episode, (np.repeat(np.arange(block), horizon - 1), pairs.ravel()), 1.0)
                totals = counts.sum(axis=2).ravel() + np.cumsum(per_episode, axis=0)
                doubled = np.any(totals >= doubling, axis=1)
                replan = bool(doubled.any())
                used = int(np.argmax(doubled)) + 1 if replan else block
            np.add.at(counts.reshape(S * A, S), (pairs[:used].ravel(), successors[:used].ravel()), 1.0)
            run.add(used, *values, {"plan": plans})
            k += used
        return run.build()


def _value_range(cmdp: TabularCMDP) -> float:
    """``R``: the largest per-step reward or cost."""
    return float(max(np.abs(cmdp.r).max(), cmdp.c.max()))
