"""The testing phase of covering + safe mixture (Ni & Kamgarpour 2026, Algorithm 2), and PCE's (Algorithm 4).

Read against the paper's pseudocode: candidates ``(pi_l, u_l, v_l, u_l_s, v_l_s)`` come from ``Û`` (Algorithm 1,
:mod:`cmdp_envs.meta.covering`); the candidate with the highest ``u`` is verified by running the mixture
``pi_l_m = alpha_l_m pi_l + (1 - alpha_l_m) pi_s`` (one draw per episode), starting from ``alpha_l_0 = 0`` (pure
``pi_s``). After every episode the running means of the discounted return ``R_k`` and of the margin sample
``d - C_k`` since ``k0`` are compared with the predicted ``u_l_m``, ``v_l_m`` (Eq. 3); a gap beyond the radius
(Eq. 5) eliminates ``l``. Once enough episodes agree, ``alpha`` is raised (Eq. 6) up to ``m(l)`` times (Eq. 7).

:class:`SafeMixture` is the algorithm as a step-by-step object (:meth:`~SafeMixture.propose` the next episode's
policy, :meth:`~SafeMixture.observe` its return and cost), so it runs against any environment;
:func:`run_on_tabular` drives it for ``K`` episodes on a tabular CMDP through the batched sampler, and
:class:`LearnedSafeMixture` through any Gymnasium env under the meta-test protocol (:mod:`cmdp_envs.meta.test_time`).
``mixture=False`` gives the unsafe PCE baseline (Algorithm 4: candidates run directly, only elimination).

Two settings, the paper's and its authors' code's, and every result names the one it used (``constants.name``):

* :class:`PaperConstants`: Eq. 5-7 with ``L = 1/(1-gamma) + 2 gamma/(1-gamma)^2``. The paper assumes per-step rewards
  and costs in ``[0, 1]``; for a per-step range ``R`` every value quantity of the formulas scales by ``R`` (the
  statistical terms, the value errors ``eps L``, the margin bound ``2/(1-gamma)``). On the gridworld (``R = 10``,
  ``gamma = 0.9``, ``d = 1.5``) ``alpha_1 > 0`` needs ``v_l_s > 2 eps R (L + 2)``, i.e. ``eps < 0.0004``, and the first
  raise needs millions of episodes, so the faithful setting executes ``pi_s`` throughout: safe, and exactly as
  conservative as the theory.
* :class:`PracticalConstants`: the radii, raise schedule and weight recursion hand-tuned in the authors' gridworld
  code (SPECS.md), with ``pi_s``'s samples pooled across candidates while ``m = 0``, either with the authors' exact
  bookkeeping (each phase counts its own episodes) or a pooled variant (``bookkeeping``).

:class:`CertifiedConstants` is a third setting, of our making: anytime confidence sequences and value errors
calibrated in training in place of the radii, and raises only as far as a stated certificate of feasibility allows.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from cmdp_envs.meta.confidence_sequences import EmpiricalBernsteinCS
from cmdp_envs.meta.covering import CoveringResult, PolicyValue
from cmdp_envs.meta.estimators import rollout_returns
from cmdp_envs.meta.evaluation import MetaTestRun
from cmdp_envs.tabular import EpisodeSampler, TabularCMDP, evaluate_policy
from cmdp_envs.task import as_generator, check_count
from cmdp_envs.validation import check_number

__all__ = ["PaperConstants", "PracticalConstants", "CertifiedConstants", "Proposal", "SafeMixture",
           "SafeMixtureMethod", "run_on_tabular", "LearnedSafeMixture"]


#: In the certified setting a phase past its minimum considers a raise every this many episodes (each look costs a
#: scan of the calibration table; the confidence sequences allow looking at any time).
RAISE_CHECK_INTERVAL = 100


def _lipschitz_constant(gamma: float) -> float:
    """``L = 1/(1-gamma) + 2 gamma/(1-gamma)^2``: how far values move per unit of CMDP distance."""
    return 1 / (1 - gamma) + 2 * gamma / (1 - gamma) ** 2


@dataclasses.dataclass(frozen=True)
class PaperConstants:
    """Eq. 5-7 of the paper.

    :param eps: accuracy of the cover (the ``eps`` of Algorithm 1).
    :param delta: confidence level.
    :param value_range: ``R``, the per-step range of rewards and costs (10 on the gridworld); scales every value term.
    """

    eps: float = 0.01
    delta: float = 0.1
    value_range: float = 1.0
    name = "paper"
    #: Eq. 5's radii hold for the samples of one phase only.
    pools_safe_policy_samples = False
    counts_phase_episodes = True

    def __post_init__(self) -> None:
        if not (self.eps > 0 and 0 < self.delta < 1 and self.value_range > 0):
            raise ValueError(f"need eps > 0, 0 < delta < 1, value_range > 0; got {self}")

    def _log_term(self, n_episodes: int) -> float:
        return math.log(4 * n_episodes / self.delta)

    def radii(self, n: int, n_episodes: int, gamma: float, pooled: bool, counted: int) -> tuple[float, float]:
        """Eq. 5: ``beta_n = R (sqrt(2 ln(4K/delta) / (n (1-gamma)^2)) + eps (L + 1))``, for reward and margin."""
        beta = self.value_range * (math.sqrt(2 * self._log_term(n_episodes) / (n * (1 - gamma) ** 2))
                                   + self.eps * (_lipschitz_constant(gamma) + 1))
        return beta, beta

    def episodes_before_raise(self, predicted_margin: float, n_episodes: int, gamma: float) -> float:
        """Line 11: ``k - k0 - 1 >= range^2 32 ln(4K/delta) / ((1-gamma)^2 v_l_m^2)``; never if ``v_l_m <= 0``."""
        if predicted_margin <= 0:
            return math.inf
        return self.value_range**2 * 32 * self._log_term(n_episodes) / ((1 - gamma) ** 2 * predicted_margin**2)

    def weights(self, safe_margin: float, gamma: float) -> list[float]:
        """``alpha_l_1, ..., alpha_l_{floor(m(l)) + 1}`` of Eq. 6: line 11 raises while ``m <= m(l) = log_{C_l} eps``
        (Eq. 7). Empty, so ``pi_s`` alone runs, when ``alpha_l_1 <= 0`` or ``C_l >= 1`` (then ``m(l) < 0``)."""
        L, v = _lipschitz_constant(gamma), safe_margin
        value_error = self.eps * self.value_range  # eps, in value units
        first = (v - 2 * value_error * (L + 2)) / (v - 2 * value_error * (L + 2) + 2 * self.value_range / (1 - gamma))
        ratio = (2 * v + (4 * L + 9) * value_error) / (3 * v) if v > 0 else math.inf  # C_l
        if first <= 0 or ratio >= 1:
            return []
        last_raise = math.floor(math.log(self.eps) / math.log(ratio))
        weights = [first]
        for m in range(1, last_raise + 1):
            weights.append((v - (4 * L + 9) * value_error) * first
                           / (v * first + (v - (4 * L + 9) * value_error - v * first) * ratio**m))
        return [min(max(w, 0.0), 1.0) for w in weights]


@dataclasses.dataclass(frozen=True)
class PracticalConstants:
    """The setting of the authors' gridworld code (SPECS.md), tuned for per-step range 10 and ``gamma = 0.9``.

    Elimination starts once ``n >= min_episodes``, with radii ``sqrt(reward_scale / n) + eps L_r`` and
    ``sqrt(cost_scale / n) + eps L_c``; on ``pi_s``'s pooled samples (``m = 0``) the cost radius is
    ``sqrt(pooled_cost_scale / n) + eps L_c``. ``alpha`` is raised once ``n - 2 >= min(max(raise_scale / v_l_m^2,
    raise_min), raise_max)``, while ``m <= log_{2/3} eps`` (``floor(log_{2/3} eps) + 1`` raises), by
    ``alpha_1 = (m_s - 2 eps L_c) / (m_s - 2 eps L_c + weight_offset)`` (``weight_offset = 2``) and
    ``alpha_{m+1} = 3 m_s alpha_m / ((alpha_m + 2) m_s + (2 L_c + 1) eps)``, clipped to ``[0, 1]``.

    ``bookkeeping`` says which samples and counts those rules read while ``pi_s`` runs alone (``m = 0``):

    * ``"authors"`` (their code, exactly): the first candidate compares its own phase's samples (cost radius from
      ``cost_scale``); every later candidate compares ``pi_s``'s samples pooled over all ``m = 0`` phases so far
      (cost radius from ``pooled_cost_scale``, ``n`` the pool's size); but the minimum of ``min_episodes`` and the
      raise count the current phase's own episodes, so every phase runs at least ``min_episodes`` episodes before it
      can eliminate and ``raise_min`` before it can raise.
    * ``"pooled"``: the pooled samples from the first candidate on, and the pool's size gates elimination and
      raising too, so a later candidate can be eliminated or raised after one episode of its own.
    """

    eps: float = 0.01
    reward_lipschitz: float = 8.0
    cost_lipschitz: float = 1.0
    min_episodes: int = 1000
    reward_scale: float = 4000.0
    cost_scale: float = 300.0
    pooled_cost_scale: float = 150.0
    raise_scale: float = 100.0
    raise_min: int = 1000
    raise_max: int = 5200
    weight_offset: float = 2.0
    bookkeeping: Literal["authors", "pooled"] = "authors"
    #: The authors' code pools ``pi_s``'s samples on the test task while ``m = 0`` (every candidate's first phase
    #: runs ``pi_s`` alone), with the cost radius ``sqrt(pooled_cost_scale / n)``.
    pools_safe_policy_samples = True

    def __post_init__(self) -> None:
        if not (self.eps > 0 and self.reward_lipschitz >= 0 and self.cost_lipschitz >= 0):
            raise ValueError(f"need eps > 0 and non-negative Lipschitz constants; got {self}")
        check_count("min_episodes", self.min_episodes, minimum=1)
        if self.bookkeeping not in ("authors", "pooled"):
            raise ValueError(f"bookkeeping must be 'authors' or 'pooled', got {self.bookkeeping!r}")

    @classmethod
    def rescaled(cls, reward_value_range: float, cost_value_range: float, n_episodes: int,
                 **overrides: Any) -> PracticalConstants:
        """The authors' constants carried to another family and budget: they were tuned for values of range 100
        (per-step range 10, ``gamma = 0.9``) and ``K = 40,000`` episodes. Every radius term and the weight offset
        are scaled by the value ranges (``sqrt(scale / n)`` by the range, so each ``scale`` by its square; ``L_r``
        by the reward's, ``L_c``, ``raise_scale`` and the offset by the cost's), and the episode counts by
        ``n_episodes / 40,000`` (at least 1). ``eps`` is a ratio and stays. ``overrides`` replace any result."""
        reward, cost = (check_number(name, value, 0.0, low_open=True) / 100.0 for name, value in
                        (("reward_value_range", reward_value_range), ("cost_value_range", cost_value_range)))
        share = check_count("n_episodes", n_episodes, minimum=1) / 40_000
        defaults = cls()
        settings = {
            "reward_lipschitz": defaults.reward_lipschitz * reward,
            "cost_lipschitz": defaults.cost_lipschitz * cost,
            "reward_scale": defaults.reward_scale * reward**2,
            "cost_scale": defaults.cost_scale * cost**2,
            "pooled_cost_scale": defaults.pooled_cost_scale * cost**2,
            "raise_scale": defaults.raise_scale * cost**2,
            "weight_offset": defaults.weight_offset * cost,
            **{name: max(1, round(getattr(defaults, name) * share))
               for name in ("min_episodes", "raise_min", "raise_max")},
        }
        return cls(**{**settings, **overrides})

    @property
    def name(self) -> str:
        return "practical" if self.bookkeeping == "authors" else "practical_pooled"

    @property
    def counts_phase_episodes(self) -> bool:
        """Whether the minimum episodes and the raise count the phase's own episodes (else the compared samples)."""
        return self.bookkeeping == "authors"

    def radii(self, n: int, n_episodes: int, gamma: float, pooled: bool, counted: int) -> tuple[float, float]:
        if counted < self.min_episodes:
            return math.inf, math.inf
        cost_scale = self.pooled_cost_scale if pooled else self.cost_scale
        return (math.sqrt(self.reward_scale / n) + self.eps * self.reward_lipschitz,
                math.sqrt(cost_scale / n) + self.eps * self.cost_lipschitz)

    def episodes_before_raise(self, predicted_margin: float, n_episodes: int, gamma: float) -> float:
        needed = self.raise_scale / predicted_margin**2 if predicted_margin > 0 else math.inf
        return min(max(needed, self.raise_min), self.raise_max)

    def weights(self, safe_margin: float, gamma: float) -> list[float]:
        m_s, eps, L_c = safe_margin, self.eps, self.cost_lipschitz
        first = (m_s - 2 * eps * L_c) / (m_s - 2 * eps * L_c + self.weight_offset)
        if first <= 0:
            return []
        weights = [first]
        for _ in range(math.floor(math.log(eps) / math.log(2 / 3))):
            alpha = weights[-1]
            weights.append(3 * m_s * alpha / ((alpha + 2) * m_s + (2 * L_c + 1) * eps))
        return [min(max(w, 0.0), 1.0) for w in weights]


@dataclasses.dataclass(frozen=True)
class CertifiedConstants:
    """A certified setting of Algorithm 2: the same phases, eliminations and raises, with every hand-tuned or
    worst-case quantity replaced by a measured one. It needs ``Û`` with calibrated value errors
    (:func:`~cmdp_envs.meta.covering.train` with ``calibrate=True``).

    * **Running means**: anytime-valid empirical-Bernstein confidence sequences
      (:class:`~cmdp_envs.meta.confidence_sequences.EmpiricalBernsteinCS`, Waudby-Smith & Ramdas 2024) for the
      return and the margin, on the ranges discounted returns can take when per-step rewards and costs lie in
      ``reward_range`` and ``cost_range`` (``[min(low, 0), max(high, 0)] / (1 - gamma)``, so that episodes that end
      early are in range too). ``pi_s``'s episodes on the test task
      (its whole runs while ``m = 0`` and its draws inside mixtures) feed one pair of sequences for the whole test,
      at ``delta / 4`` each; the ``j``-th mixture phase gets its own pair at ``delta / (4 j (j + 1))`` each.
    * **Elimination**: a candidate goes when the confidence interval of the compared samples (``pi_s``'s while
      ``m = 0``, the phase's after) no longer meets the prediction ``u_l_m``, ``v_l_m`` widened by the calibrated
      value errors of the mixture, ``alpha e(pi_l) + (1 - alpha) e(pi_s)`` (instead of ``eps L``). The sequences are
      anytime-valid, so the test runs from the first episode.
    * **Raise**: after ``min_episodes`` episodes of the phase, ``alpha`` goes to the largest weight whose mixture is
      certified feasible, ``alpha* = LCB_s / (LCB_s - b_l)`` (1 when ``b_l >= 0``), if that beats the current weight
      by ``min_raise``. ``LCB_s`` is the lower confidence bound of ``pi_s``'s margin on the test task; ``b_l`` is the
      smallest margin ``pi_l`` has on the calibration tasks whose ``pi_s`` reward value and margin both lie in the
      current confidence intervals of ``pi_s``'s (the tasks the test task cannot yet be told apart from; with
      estimated values, their lower confidence bounds over the tasks whose intervals meet them), and no raise
      happens while none does.

    **What the certificate assumes.** (1) Per-step rewards and costs lie in ``reward_range`` and ``cost_range``,
    and costs are discounted like rewards (the family's ``cost_discount`` is its ``gamma``). (2) ``pi_s`` is feasible
    on the test task (the algorithm runs it from the first episode). (3) The calibration tasks represent the task
    distribution finely enough that, among the tasks whose ``pi_s`` values match the test task's, their smallest
    margin of ``pi_l`` is at most the test task's. Under these, with
    probability at least ``1 - delta / 4`` (the event that ``pi_s``'s sequences hold), every executed mixture
    ``alpha pi_l + (1 - alpha) pi_s`` has margin at least ``alpha b_l + (1 - alpha) LCB_s >= 0``: no executed
    mixture is infeasible. The other sequences only decide eliminations, so they bear on regret, not on safety.
    Nothing rests on the cover's ``eps`` or a Lipschitz constant.

    :param reward_range, cost_range: ``(low, high)``, the per-step range of rewards and of costs (the gridworld's:
        ``(0, 10)`` both); part of the certificate, so they have no default.
    :param delta: the total probability that any confidence sequence fails.
    :param min_episodes: episodes of a phase before it may raise.
    :param min_raise: the smallest raise of ``alpha`` worth a new phase.
    :param max_bet: ``c`` of the confidence sequences.
    """

    reward_range: tuple[float, float]
    cost_range: tuple[float, float]
    delta: float = 0.05
    min_episodes: int = 1000
    min_raise: float = 0.05
    max_bet: float = 0.5
    name = "certified"

    def __post_init__(self) -> None:
        for name in ("reward_range", "cost_range"):
            low, high = getattr(self, name)
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"{name} must be (low, high) with finite low < high, got {getattr(self, name)!r}")
            object.__setattr__(self, name, (float(low), float(high)))
        check_number("delta", self.delta, 0.0, 1.0, low_open=True, high_open=True)
        check_count("min_episodes", self.min_episodes, minimum=1)
        check_number("min_raise", self.min_raise, 0.0, 1.0, low_open=True)
        check_number("max_bet", self.max_bet, 0.0, 1.0, low_open=True, high_open=True)

    def sequences(self, cost_limit: float, gamma: float, delta: float) -> tuple[EmpiricalBernsteinCS,
                                                                                 EmpiricalBernsteinCS]:
        """A fresh pair of confidence sequences (return, margin) at level ``delta`` each."""
        (reward_low, reward_high), (cost_low, cost_high) = self.reward_range, self.cost_range
        scale = 1 / (1 - gamma)
        return (EmpiricalBernsteinCS(min(reward_low, 0.0) * scale, max(reward_high, 0.0) * scale, delta,
                                     self.max_bet),
                EmpiricalBernsteinCS(cost_limit - max(cost_high, 0.0) * scale, cost_limit - min(cost_low, 0.0) * scale,
                                     delta, self.max_bet))


Constants = PaperConstants | PracticalConstants | CertifiedConstants


@dataclasses.dataclass(frozen=True)
class Proposal:
    """The policy of the next episode: ``alpha pi_l + (1 - alpha) pi_s``.

    ``candidate`` indexes ``Û`` (``None`` once every candidate is eliminated: ``pi_s`` alone); ``predicted_reward`` and
    ``predicted_margin`` are ``u_l_m`` and ``v_l_m`` of Eq. 3.
    """

    candidate: int | None
    alpha: float
    predicted_reward: float
    predicted_margin: float


class SafeMixture:
    """Algorithm 2 as an object: ``propose()`` the next episode's mixture, ``observe(R_k, C_k)`` after it.

    :param policy_values: ``Û``, from :attr:`CoveringResult.policy_values` (only the values are used here).
    :param cost_limit: ``d`` of the test task (margins are ``d - C_k``).
    :param gamma: discount of the family.
    :param n_episodes: ``K``, the test budget (it enters the paper's radii).
    :param constants: :class:`PaperConstants` or :class:`PracticalConstants`.
    :param mixture: ``False`` gives unsafe PCE: run ``pi_l`` itself, eliminate only.
    """

    def __init__(self, policy_values: Sequence[PolicyValue], cost_limit: float, gamma: float, n_episodes: int,
                 constants: Constants, mixture: bool = True):
        if not policy_values:
            raise ValueError("the policy-value set Û is empty")
        self.U = tuple(policy_values)
        self.cost_limit = float(cost_limit)
        self.gamma = float(gamma)
        self.n_episodes = check_count("n_episodes", n_episodes, minimum=1)
        self.constants = constants
        self.mixture = mixture
        # Line 3: candidates in order of decreasing u (stable: ties keep the order of Û).
        self._order = sorted(range(len(self.U)), key=lambda i: -self.U[i].reward_value)
        self._position = 0
        self.eliminated: list[int] = []
        self.k = 0
        self._certified = isinstance(constants, CertifiedConstants)
        self._pooled = mixture and not self._certified and constants.pools_safe_policy_samples
        self._pool = np.zeros(3)  # episodes, sum R, sum margin of pi_s on the test task (pooled while m = 0)
        if self._certified:
            uncalibrated = [i for i, entry in enumerate(self.U) if entry.value_errors is None]
            if uncalibrated:
                raise ValueError(f"the certified setting needs Û with calibrated value errors (train(..., "
                                 f"calibrate=True)); entries {uncalibrated} have none")
            # pi_s's return and margin on the test task, over the whole test (its runs and its draws in mixtures).
            self._safe_sequences = constants.sequences(self.cost_limit, self.gamma, constants.delta / 4)
            self._mixture_phases = 0
        self._start_phase()

    # -- state -------------------------------------------------------------------------------------------------
    @property
    def candidate(self) -> int | None:
        """``l``: the index in ``Û`` of the candidate under verification."""
        return self._order[self._position] if self._position < len(self._order) else None

    def _start_phase(self, m: int = 0) -> None:
        """A new verification phase (``k0 = k + 1``) at mixture index ``m``."""
        self.m = m
        self._sums = np.zeros(3)  # episodes, sum R, sum margin since k0
        l = self.candidate
        if self._certified:
            # The weights are found one raise at a time (:meth:`_certified_weight`), appended before the phase starts.
            if m == 0:
                self._weights = []
            else:
                self._mixture_phases += 1
                j = self._mixture_phases
                self._phase_sequences = self.constants.sequences(self.cost_limit, self.gamma,
                                                                 self.constants.delta / (4 * j * (j + 1)))
            return
        self._weights = [] if l is None or not self.mixture else self.constants.weights(self.U[l].safe_margin,
                                                                                         self.gamma)

    @property
    def alpha(self) -> float:
        """``alpha_l_m``: 1 for PCE, 0 once ``Û`` is exhausted."""
        if self.candidate is None:
            return 0.0
        if not self.mixture:
            return 1.0
        return 0.0 if self.m == 0 else self._weights[self.m - 1]

    def propose(self) -> Proposal:
        l, alpha = self.candidate, self.alpha
        if l is None:
            return Proposal(None, 0.0, math.nan, math.nan)
        entry = self.U[l]
        return Proposal(l, alpha,
                        alpha * entry.reward_value + (1 - alpha) * entry.safe_reward_value,
                        alpha * entry.margin + (1 - alpha) * entry.safe_margin)

    def _uses_pool(self) -> bool:
        return self._pooled and self.m == 0

    def _compared(self) -> tuple[np.ndarray, bool, float]:
        """The samples the elimination test compares (``[episodes, sum R, sum margin]``: ``pi_s``'s pool or the
        phase's), whether they are the pool, and the episode count that gates elimination and raising."""
        pooled = self._uses_pool() and not (self.constants.counts_phase_episodes and self._position == 0)
        compared = self._pool if pooled else self._sums
        return compared, pooled, self._sums[0] if self.constants.counts_phase_episodes else compared[0]

    def episodes_before_change(self) -> int:
        """Episodes after which the proposal changes unless an elimination comes first (a block-size hint)."""
        proposal = self.propose()
        if self._certified:
            if proposal.candidate is None:
                return self.n_episodes
            return int(max(self.constants.min_episodes - self._sums[0], RAISE_CHECK_INTERVAL))
        if proposal.candidate is None or self.m >= len(self._weights):
            return self.n_episodes
        needed = self.constants.episodes_before_raise(proposal.predicted_margin, self.n_episodes, self.gamma)
        if not math.isfinite(needed):
            return self.n_episodes
        counted = self._compared()[2]
        return int(max(1, min(self.n_episodes, math.ceil(needed + 2 - counted))))

    # -- one episode ---------------------------------------------------------------------------------------------
    def observe(self, reward_return: float, cost_return: float, safe_policy_ran: bool | None = None) -> None:
        """Line 6-14: record ``R_k`` and ``C_k`` of the episode just run, then eliminate or raise ``alpha``.

        :param safe_policy_ran: whether the episode's draw from the mixture was ``pi_s``; the certified setting needs
            it whenever ``0 < alpha < 1`` (it learns ``pi_s``'s values from those draws too).
        """
        if not (math.isfinite(reward_return) and math.isfinite(cost_return)):
            raise ValueError(f"returns must be finite, got R = {reward_return}, C = {cost_return}")
        if self.k >= self.n_episodes:
            raise ValueError(f"all K = {self.n_episodes} episodes have been observed")
        proposal = self.propose()
        if self._certified and safe_policy_ran is None and 0 < proposal.alpha < 1:
            raise ValueError(f"the certified setting needs safe_policy_ran at alpha = {proposal.alpha:g}: "
                             "whether the episode drew pi_s")
        self.k += 1
        if self._certified:
            self._observe_certified(proposal, reward_return, cost_return,
                                    proposal.alpha == 0 if safe_policy_ran is None else safe_policy_ran)
            return
        if proposal.candidate is None:
            return
        sample = np.array([1.0, reward_return, self.cost_limit - cost_return])
        self._sums += sample
        if self._uses_pool():
            self._pool += sample
        (n, reward_sum, margin_sum), pooled, counted = self._compared()
        reward_radius, margin_radius = self.constants.radii(int(n), self.n_episodes, self.gamma, pooled=pooled,
                                                            counted=int(counted))
        if (abs(reward_sum / n - proposal.predicted_reward) > reward_radius
                or abs(margin_sum / n - proposal.predicted_margin) > margin_radius):
            self._eliminate(proposal.candidate)
            return
        needed = self.constants.episodes_before_raise(proposal.predicted_margin, self.n_episodes, self.gamma)
        if counted - 2 >= needed and self.m < len(self._weights):  # Line 11-13 (m <= m(l): len(weights) = m(l) + 1)
            self._start_phase(self.m + 1)

    def _eliminate(self, candidate: int) -> None:
        """Line 8-10: drop ``candidate`` and start the next one's first phase."""
        self.eliminated.append(candidate)
        self._position += 1
        self._start_phase()

    def _observe_certified(self, proposal: Proposal, reward_return: float, cost_return: float,
                           safe_policy_ran: bool) -> None:
        """Line 6-14 in the certified setting (:class:`CertifiedConstants`)."""
        margin = self.cost_limit - cost_return
        if safe_policy_ran:
            for sequence, value in zip(self._safe_sequences, (reward_return, margin)):
                sequence.update(value)
        if proposal.candidate is None:
            return
        self._sums += (1.0, reward_return, margin)
        compared = self._safe_sequences if self.m == 0 else self._phase_sequences
        if self.m > 0:
            for sequence, value in zip(compared, (reward_return, margin)):
                sequence.update(value)
        entry, alpha = self.U[proposal.candidate], proposal.alpha
        errors = entry.value_errors
        tolerances = (alpha * errors.reward + (1 - alpha) * errors.safe_reward,
                      alpha * errors.margin + (1 - alpha) * errors.safe_margin)
        for sequence, predicted, tolerance in zip(compared, (proposal.predicted_reward, proposal.predicted_margin),
                                                  tolerances):
            if sequence.upper < predicted - tolerance or sequence.lower > predicted + tolerance:
                self._eliminate(proposal.candidate)
                return
        beyond = self._sums[0] - self.constants.min_episodes
        if self.mixture and beyond >= 0 and beyond % RAISE_CHECK_INTERVAL == 0:  # Line 11-13
            weight = self._certified_weight(entry)
            if weight >= alpha + self.constants.min_raise:
                self._weights.append(weight)
                self._start_phase(self.m + 1)

    def _certified_weight(self, entry: PolicyValue) -> float:
        """The largest ``alpha`` whose mixture of ``entry``'s ``pi_l`` with ``pi_s`` is certified feasible now
        (:class:`CertifiedConstants`): ``alpha b_l + (1 - alpha) LCB_s >= 0``; 0 when no calibration task matches
        ``pi_s``'s observed values."""
        reward_sequence, margin_sequence = self._safe_sequences
        table, widths = entry.value_errors.across_tasks, entry.value_errors.half_widths
        # A task matches when its (interval of) pi_s values meets both of pi_s's current confidence intervals.
        matching = ((table[:, 0] + widths[:, 0] >= reward_sequence.lower)
                    & (table[:, 0] - widths[:, 0] <= reward_sequence.upper)
                    & (table[:, 1] + widths[:, 1] >= margin_sequence.lower)
                    & (table[:, 1] - widths[:, 1] <= margin_sequence.upper))
        if not matching.any():
            return 0.0
        candidate_margin = float((table[matching, 3] - widths[matching, 3]).min())
        safe_margin = margin_sequence.lower
        if candidate_margin >= 0:
            return 1.0
        if safe_margin <= 0:
            return 0.0
        return safe_margin / (safe_margin - candidate_margin)


def _exact_values(cmdp: TabularCMDP, result: CoveringResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack ``[pi_s, pi_1, ..., pi_n]`` and its exact reward and cost values on ``cmdp``."""
    stack = np.stack([result.safe_policy.probabilities]
                     + [entry.policy.probabilities for entry in result.policy_values])
    reward_values, cost_values = evaluate_policy(cmdp, stack)
    return stack, reward_values, cost_values


def run_on_tabular(algorithm: SafeMixture, result: CoveringResult, cmdp: TabularCMDP, horizon: int,
                   seed: Any = None, max_block: int = 4096) -> MetaTestRun:
    """Run ``algorithm`` for its ``K`` episodes on ``cmdp`` and return every executed policy's exact values.

    While the proposal stays the same the executed policy is fixed, so a block of episodes is sampled in one batched
    call and fed to ``observe`` in order; the block ends at the first change of proposal (the unused rest is
    discarded, which leaves the episodes actually observed i.i.d. draws of the right policy).
    """
    check_count("horizon", horizon, minimum=1)
    rng = as_generator(seed)
    stack, reward_values, cost_values = _exact_values(cmdp, result)
    sampler = EpisodeSampler(cmdp, stack, horizon)
    run = MetaTestRun.builder(cmdp.cost_limit)
    while algorithm.k < algorithm.n_episodes:
        proposal = algorithm.propose()
        weights = np.zeros(len(stack))
        weights[0] = 1 - proposal.alpha
        if proposal.candidate is not None:
            weights[1 + proposal.candidate] += proposal.alpha
        block = min(algorithm.n_episodes - algorithm.k, algorithm.episodes_before_change(), max_block)
        batch = sampler.sample(block, seed=rng, weights=weights)
        used = 0
        for reward_return, cost_return, member in zip(batch.reward_return, batch.cost_return, batch.policy_index):
            algorithm.observe(float(reward_return), float(cost_return), safe_policy_ran=bool(member == 0))
            used += 1
            changed = algorithm.propose()
            if (changed.candidate, changed.alpha) != (proposal.candidate, proposal.alpha):
                break
        run.add(used, float(weights @ reward_values), float(weights @ cost_values),
                {"candidate": proposal.candidate, "alpha": proposal.alpha})
    return run.build()


@dataclasses.dataclass(frozen=True)
class SafeMixtureMethod:
    """Algorithm 2 (``mixture=False``: PCE's Algorithm 4) under the meta-test protocol
    (:class:`~cmdp_envs.meta.evaluation.MetaTestMethod`): a fresh :class:`SafeMixture` over the cover's ``Û`` on each
    test task, driven by :func:`run_on_tabular`."""

    constants: Constants
    mixture: bool = True

    def run_on_tabular(self, cmdp: TabularCMDP, training: CoveringResult, n_episodes: int, horizon: int,
                       seed: np.random.SeedSequence) -> MetaTestRun:
        algorithm = SafeMixture(training.policy_values, cmdp.cost_limit, cmdp.gamma, n_episodes, self.constants,
                                mixture=self.mixture)
        return run_on_tabular(algorithm, training, cmdp, horizon, seed=np.random.default_rng(seed))


@dataclasses.dataclass(frozen=True)
class LearnedSafeMixture:
    """Algorithm 2 (``mixture=False``: PCE's Algorithm 4) over a cover of learned policies, under the meta-test
    protocol on any env (:class:`~cmdp_envs.meta.test_time.TestTimeMethod`, run by
    :func:`~cmdp_envs.meta.test_time.meta_test`).

    On each held-out task a fresh :class:`SafeMixture` over ``training``'s ``Û`` runs the run's budget ``K`` of
    whole episodes: each draws ``pi_l`` with probability ``alpha`` (else ``pi_s``) once, at its start, and the
    episode's discounted return and cost (the family's discount and cost discount, as the oracles valued the cover)
    go to :meth:`SafeMixture.observe`. Each mixture is declared to the run as an
    :class:`~cmdp_envs.meta.test_time.EpisodeMixture` labelled with its candidate (``None`` for ``pi_s`` alone) and
    ``alpha``, so the protocol's check runs the mixture itself. ``env_kwargs`` are the cover's envs' (the oracles'
    ``env_kwargs``): its values are for whole episodes of those envs.
    """

    name: str
    training: CoveringResult
    constants: Constants
    mixture: bool = True
    env_kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

    def adapt(self, run: Any) -> None:
        from cmdp_envs.meta.test_time import EpisodeMixture

        family = run.family
        if isinstance(self.constants, CertifiedConstants) and family.cost_discount != family.gamma:
            raise ValueError(f"the certified setting needs costs discounted like rewards; this family's cost discount "
                             f"is {family.cost_discount:g} and its gamma {family.gamma:g}")
        algorithm = SafeMixture(self.training.policy_values, run.cost_limit, family.gamma, run.budget, self.constants,
                                mixture=self.mixture)
        candidates = [entry.policy for entry in self.training.policy_values]
        safe_policy = self.training.safe_policy
        draws, *streams = np.random.SeedSequence(run.seed).spawn(2 + len(candidates))
        for policy, stream in zip([*candidates, safe_policy], streams):
            if hasattr(policy, "reseed"):
                policy.reseed(np.random.default_rng(stream))
        rng = np.random.default_rng(draws)
        env = run.make_env()
        horizon = env.spec.max_episode_steps
        declared = None
        for episode in range(run.budget):
            proposal = algorithm.propose()
            # The executed mixture: pi_s alone whatever the candidate while alpha = 0.
            mixture = (proposal.candidate if proposal.alpha > 0 else None, proposal.alpha)
            if mixture != declared:
                declared = mixture
                members, weights = (safe_policy,), (1.0,)
                if mixture[0] is not None:
                    members, weights = (candidates[mixture[0]], safe_policy), (proposal.alpha, 1 - proposal.alpha)
                run.executing(EpisodeMixture(members, weights, {"candidate": mixture[0], "alpha": proposal.alpha}))
            policy = (candidates[proposal.candidate]
                      if proposal.candidate is not None and rng.random() < proposal.alpha else safe_policy)
            algorithm.observe(*rollout_returns(env, policy, run.task, family.gamma, horizon, run.seed + episode,
                                               cost_gamma=family.cost_discount),
                              safe_policy_ran=policy is safe_policy)
