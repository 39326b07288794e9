"""Xu & Zhu's safe closed-form policy adaptation (*Efficient Safe Meta-RL: Provable Near-Optimality and Anytime
Safety*, NeurIPS 2025), tabular form: one adaptation step, the dual method, the adaptation sequence, and Safe Meta-RL
as a test-time method.

One step from a policy ``pi_phi`` on a task solves

    max_pi  E_{s~nu, a~pi}[A_r(s, a)] - lambda E_{s~nu}[KL(pi(.|s) || pi_phi(.|s))]
    s.t.    J_c(pi_phi) + E_{s~nu, a~pi}[A_c(s, a)] / (1 - gamma) + lambda_c E_{s~nu}[KL(pi || pi_phi)] <= d + delta_c

with ``A_r``, ``A_c`` the advantages of ``pi_phi`` and ``nu`` its normalised discounted state visitation. For a
multiplier ``u >= 0`` the maximiser of the Lagrangian is the closed form

    pi_u(a|s) ∝ pi_phi(a|s) exp((A_r(s, a) - u A_c(s, a)) / eta),   eta = lambda + (1 - gamma) u lambda_c,

and ``u`` comes from the dual method: projected dual descent ``u <- max(0, u + dual_step * g(u))`` where ``g(u)`` is
the constraint's left side at ``pi_u`` minus ``d + delta_c`` (the negative gradient of the dual function), or the root
of ``g`` by bisection. Advantages are exact (linear solves, for analysis) or Monte Carlo from sampled trajectories of
``pi_phi`` (the setting of the gridworld baseline: ``lambda = lambda_c = 0.2``, dual step 1.0, 30 dual iterations).

The closed form and the linearised constraint are written once (:func:`closed_form_update`,
:func:`linearised_constraint`) for numpy arrays and torch tensors alike; the differentiable meta-objective of
:mod:`.meta_training` calls the same two functions.

Iterating the step gives the adaptation sequence ``pi_1, pi_2, ...``; the method is *anytime safe* on a task when
every policy of the sequence is feasible there. :func:`adapt` evaluates every policy exactly.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np

from cmdp_envs.meta.covering import CoveringResult
from cmdp_envs.meta.estimators import AdvantageEstimate, exact_advantages, sampled_advantages
from cmdp_envs.meta.evaluation import MetaTestRun, run_iterates
from cmdp_envs.tabular import TabularCMDP, check_policy, evaluate_policy
from cmdp_envs.task import check_count

__all__ = [
    "SafeAdaptationConfig",
    "closed_form_update",
    "linearised_constraint",
    "closed_form_policy",
    "linearised_cost",
    "dual_multiplier",
    "bisect_multiplier",
    "adaptation_step",
    "AdaptationStep",
    "AdaptationRun",
    "adapt",
    "SafeMetaRL",
]


@dataclasses.dataclass(frozen=True)
class SafeAdaptationConfig:
    """Hyper-parameters of one adaptation step (defaults: the gridworld baseline of Ni & Kamgarpour's comparison).

    :param reward_kl: ``lambda``, the weight of the KL term in the objective.
    :param cost_kl: ``lambda_c``, the weight of the KL term in the constraint.
    :param cost_slack: ``delta_c``, the slack of the linearised constraint. With ``delta_c = 0`` Xu & Zhu's safety
        guarantee needs ``lambda_c >= 2 gamma alpha A_c_max / (1 - gamma)^2``; the default ``lambda_c = 0.2`` is far
        below that on the gridworld, and its adapted policies can break the limit (README, safe adaptation).
    :param dual_method: ``"descent"`` (default, the baseline setting): ``dual_iterations`` projected dual-descent steps
        of size ``dual_step`` from ``u = 0``, returning the last iterate, which can oscillate around the multiplier;
        ``"bisection"``: the root of the (decreasing) linearised-constraint violation ``g(u)`` to machine precision,
        on its feasible side.
    :param dual_step: step size of the projected dual descent on ``u``.
    :param dual_iterations: number of dual steps (from ``u = 0``).
    :param advantages: ``"exact"`` or ``"sampled"`` (Monte Carlo).
    :param n_episodes: episodes sampled from ``pi_phi`` per step (sampled advantages).
    :param horizon: steps per sampled episode.
    """

    reward_kl: float = 0.2
    cost_kl: float = 0.2
    cost_slack: float = 0.0
    dual_method: Literal["descent", "bisection"] = "descent"
    dual_step: float = 1.0
    dual_iterations: int = 30
    advantages: Literal["exact", "sampled"] = "sampled"
    n_episodes: int = 1000
    horizon: int = 100

    def __post_init__(self) -> None:
        if not (self.reward_kl > 0 and self.cost_kl >= 0 and self.cost_slack >= 0 and self.dual_step > 0):
            raise ValueError(f"need reward_kl > 0, cost_kl >= 0, cost_slack >= 0, dual_step > 0; got {self}")
        if self.dual_method not in ("descent", "bisection"):
            raise ValueError(f"dual_method must be 'descent' or 'bisection', got {self.dual_method!r}")
        if self.advantages not in ("exact", "sampled"):
            raise ValueError(f"advantages must be 'exact' or 'sampled', got {self.advantages!r}")
        check_count("dual_iterations", self.dual_iterations)
        check_count("n_episodes", self.n_episodes, minimum=1)
        check_count("horizon", self.horizon, minimum=1)

    def temperature(self, u: Any, gamma: float) -> Any:
        """``eta = lambda + (1 - gamma) u lambda_c``."""
        return self.reward_kl + (1 - gamma) * u * self.cost_kl


def closed_form_update(log_policy: Any, reward_advantage: Any, cost_advantage: Any, u: Any, eta: Any,
                       logsumexp: Callable[[Any], Any], exp: Callable[[Any], Any]) -> tuple[Any, Any]:
    """``pi_u ∝ pi_phi exp((A_r - u A_c) / eta)`` and ``KL(pi_u || pi_phi)`` per state, for numpy arrays or torch
    tensors (``logsumexp`` over the last axis, keeping it; ``exp``). Actions with ``log_policy = -inf`` keep
    probability zero. The KL uses ``log(pi_u / pi_phi) = (A_r - u A_c) / eta - log Z``, which stays finite where
    ``pi_phi`` is zero."""
    step = (reward_advantage - u * cost_advantage) / eta
    log_normaliser = logsumexp(log_policy + step)
    adapted = exp(log_policy + step - log_normaliser)
    return adapted, (adapted * step).sum(-1) - log_normaliser[..., 0]


def linearised_constraint(new_policy: Any, kl: Any, estimate_cost_advantage: Any, visitation: Any,
                          cost_value: Any, gamma: float, cost_kl: float) -> Any:
    """``J_c(pi_phi) + E_{s~nu, a~pi}[A_c] / (1 - gamma) + lambda_c E_{s~nu}[KL(pi || pi_phi)]`` from per-state
    ``kl`` (numpy or torch)."""
    expected_advantage = (visitation * (new_policy * estimate_cost_advantage).sum(-1)).sum()
    return cost_value + expected_advantage / (1 - gamma) + cost_kl * (visitation * kl).sum()


def _numpy_logsumexp(x: np.ndarray) -> np.ndarray:
    """``log sum exp`` over the last axis, keeping it. Every row has a finite entry (a policy puts mass somewhere),
    so shifting by the row's maximum is safe; scipy's general version costs several times more per call, and the
    dual method calls this dozens of times per step."""
    peak = x.max(axis=-1, keepdims=True)
    return peak + np.log(np.exp(x - peak).sum(axis=-1, keepdims=True))


def _log(policy: np.ndarray) -> np.ndarray:
    """``log pi`` with ``-inf`` where ``pi`` is zero, without a divide-by-zero warning."""
    return np.where(policy > 0, np.log(np.maximum(policy, 1e-300)), -np.inf)


def _closed_form(policy: np.ndarray, estimate: AdvantageEstimate, u: float, gamma: float,
                 config: SafeAdaptationConfig) -> tuple[np.ndarray, np.ndarray]:
    return closed_form_update(_log(policy), estimate.reward_advantage, estimate.cost_advantage, u,
                              config.temperature(u, gamma), _numpy_logsumexp, np.exp)


def closed_form_policy(policy: np.ndarray, estimate: AdvantageEstimate, u: float, gamma: float,
                       config: SafeAdaptationConfig) -> np.ndarray:
    """``pi_u`` for multiplier ``u`` (:func:`closed_form_update`); actions ``pi_phi`` never takes keep probability
    zero."""
    return _closed_form(policy, estimate, u, gamma, config)[0]


def linearised_cost(new_policy: np.ndarray, policy: np.ndarray, estimate: AdvantageEstimate, gamma: float,
                    cost_kl: float) -> float:
    """The left side of the linearised constraint for any ``new_policy`` (:func:`linearised_constraint`)."""
    kl = np.where(new_policy > 0, new_policy * (np.log(np.maximum(new_policy, 1e-300))
                                                - np.log(np.maximum(policy, 1e-300))), 0.0).sum(-1)
    return float(linearised_constraint(new_policy, kl, estimate.cost_advantage, estimate.visitation,
                                       estimate.cost_value, gamma, cost_kl))


def dual_multiplier(policy: np.ndarray, estimate: AdvantageEstimate, cost_limit: float, gamma: float,
                    config: SafeAdaptationConfig) -> tuple[float, list[float]]:
    """The multiplier ``u`` by ``config.dual_method``, and the path of ``u`` values tried."""

    def violation(u: float) -> float:
        adapted, kl = _closed_form(policy, estimate, u, gamma, config)
        return float(linearised_constraint(adapted, kl, estimate.cost_advantage, estimate.visitation,
                                           estimate.cost_value, gamma, config.cost_kl)) - cost_limit - config.cost_slack

    if config.dual_method == "bisection":
        return bisect_multiplier(violation)
    u, path = 0.0, [0.0]
    for _ in range(config.dual_iterations):
        u = max(0.0, u + config.dual_step * violation(u))
        path.append(u)
    return u, path


def bisect_multiplier(violation: Callable[[float], float], largest: float = 1e8) -> tuple[float, list[float]]:
    """The smallest ``u >= 0`` with ``violation(u) <= 0`` (``violation`` decreases in ``u``), to relative precision
    ``1e-12``; ``largest`` if even that violates (the linearised constraint cannot be met). Returns ``u`` and the
    path of values tried."""
    if violation(0.0) <= 0:
        return 0.0, [0.0]
    low, high, path = 0.0, 1.0, [0.0]
    while violation(high) > 0:
        path.append(high)
        if high >= largest:
            return high, path
        low, high = high, 2 * high
    while high - low > 1e-12 * high:
        middle = (low + high) / 2
        path.append(middle)
        if violation(middle) > 0:
            low = middle
        else:
            high = middle
    return high, path


@dataclasses.dataclass(frozen=True)
class AdaptationStep:
    """One step: the adapted policy, the multiplier ``u`` (with its dual path) and the estimate it used."""

    policy: np.ndarray
    multiplier: float
    multiplier_path: list[float]
    estimate: AdvantageEstimate


def adaptation_step(cmdp: TabularCMDP, policy: np.ndarray, config: SafeAdaptationConfig,
                    seed: int = 0) -> AdaptationStep:
    """One safe adaptation step from ``policy`` on ``cmdp`` (advantages exact or sampled, per ``config``)."""
    policy = check_policy(cmdp, policy)
    if config.advantages == "exact":
        estimate = exact_advantages(cmdp, policy)
    else:
        estimate = sampled_advantages(cmdp, policy, config.n_episodes, config.horizon, seed)
    u, path = dual_multiplier(policy, estimate, cmdp.cost_limit, cmdp.gamma, config)
    return AdaptationStep(closed_form_policy(policy, estimate, u, cmdp.gamma, config), u, path, estimate)


@dataclasses.dataclass(frozen=True)
class AdaptationRun:
    """An adaptation sequence on one task. Index 0 is the initial policy; every policy is evaluated exactly."""

    policies: np.ndarray  # (n_steps + 1, S, A)
    reward_values: np.ndarray  # (n_steps + 1,)
    cost_values: np.ndarray  # (n_steps + 1,)
    multipliers: np.ndarray  # (n_steps,)
    cost_limit: float

    @property
    def feasible(self) -> np.ndarray:
        return self.cost_values <= self.cost_limit

    @property
    def anytime_safe(self) -> bool:
        """Every policy of the sequence (the initial one included) meets the limit exactly."""
        return bool(self.feasible.all())


def adapt(cmdp: TabularCMDP, initial_policy: np.ndarray, n_steps: int, config: SafeAdaptationConfig,
          seed: int = 0) -> AdaptationRun:
    """``n_steps`` adaptation steps from ``initial_policy``; step ``k`` samples with seed ``seed + k``."""
    check_count("n_steps", n_steps)
    policies = [check_policy(cmdp, initial_policy)]
    multipliers = []
    for k in range(n_steps):
        step = adaptation_step(cmdp, policies[-1], config, seed=seed + k)
        policies.append(step.policy)
        multipliers.append(step.multiplier)
    stacked = np.stack(policies)
    reward_values, cost_values = evaluate_policy(cmdp, stacked)
    return AdaptationRun(stacked, reward_values, cost_values, np.array(multipliers), cmdp.cost_limit)


@dataclasses.dataclass(frozen=True)
class SafeMetaRL:
    """Safe Meta-RL under the meta-test protocol (:class:`~cmdp_envs.meta.evaluation.MetaTestMethod`): from the
    shared ``pi_s``, adapt every ``config.n_episodes`` episodes. The episodes of a step are the trajectories its
    advantages are sampled from, so they execute the policy being adapted; ``config.horizon`` is replaced by the
    protocol's horizon."""

    config: SafeAdaptationConfig = SafeAdaptationConfig()

    def __post_init__(self) -> None:
        if self.config.advantages != "sampled":
            raise ValueError("the test-time protocol counts sampled episodes; use advantages='sampled'")

    def run_on_tabular(self, cmdp: TabularCMDP, training: CoveringResult, n_episodes: int, horizon: int,
                       seed: np.random.SeedSequence) -> MetaTestRun:
        config = dataclasses.replace(self.config, horizon=horizon)
        step_seed = int(seed.generate_state(1)[0])

        def adapted_policies(policy: np.ndarray) -> Iterator[np.ndarray]:
            for step in itertools.count():
                yield policy
                policy = adaptation_step(cmdp, policy, config, seed=step_seed + step).policy

        start = check_policy(cmdp, training.safe_policy.probabilities)
        return run_iterates(cmdp, adapted_policies(start), n_episodes, config.n_episodes)
