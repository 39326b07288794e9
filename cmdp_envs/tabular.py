"""Exact tools for tabular CMDPs: policy evaluation, the occupancy-measure LP, the extended LP over a confidence set
of kernels, the entropy-regularised primal-dual solver, the CMDP distance, and a batched episode sampler.

Conventions (SPECS.md): values are discounted sums from the initial distribution, not normalised by ``1 - gamma``:
``J_r(pi) = E[sum_t gamma^t r(s_t, a_t)]`` and ``J_c`` likewise; a policy is feasible when ``J_c <= cost_limit``.
Policies are arrays of action probabilities of shape ``(S, A)`` whose rows sum to one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import numpy as np
import scipy.optimize
import scipy.sparse

from cmdp_envs.task import SeedLike, as_generator, check_count
from cmdp_envs.validation import check_number

__all__ = [
    "TabularCMDP",
    "CMDPSolution",
    "InfeasibleCMDPError",
    "evaluate_policy",
    "value_functions",
    "solve_cmdp",
    "ExtendedCMDPSolution",
    "solve_extended_cmdp",
    "RegularisedCMDPSolution",
    "solve_regularised_cmdp",
    "minimum_cost_value",
    "safest_actions",
    "cmdp_distance",
    "EpisodeBatch",
    "EpisodeSampler",
    "WORKING_MEMORY",
    "Trajectories",
    "sample_episodes",
    "check_policy",
    "check_distribution_rows",
    "cumulative_distribution",
]

_ATOL = 1e-8
# The tolerance of np.allclose(row_sums, 1, atol=1e-6) (atol + rtol * 1), which policies were first checked with:
# every policy accepted then is accepted now.
_ROW_SUM_TOLERANCE = 1e-6 + 1e-5


@dataclasses.dataclass(frozen=True, eq=False)
class TabularCMDP:
    """A finite CMDP with one cost.

    :param P: transition probabilities, shape ``(S, A, S)``, ``P[s, a, s']``; every row sums to one.
    :param r: reward per state-action pair, shape ``(S, A)``.
    :param c: cost per state-action pair, shape ``(S, A)``, ``>= 0``.
    :param mu: initial-state distribution, shape ``(S,)``.
    :param gamma: discount factor in ``[0, 1)``.
    :param cost_limit: ``d`` in the constraint ``J_c(pi) <= d``.
    """

    P: np.ndarray
    r: np.ndarray
    c: np.ndarray
    mu: np.ndarray
    gamma: float
    cost_limit: float

    def __post_init__(self) -> None:
        # Copies, so freezing them below never freezes the caller's arrays.
        P, r, c, mu = (np.array(x, dtype=np.float64) for x in (self.P, self.r, self.c, self.mu))
        if P.ndim != 3 or P.shape[0] != P.shape[2]:
            raise ValueError(f"P must have shape (S, A, S), got {P.shape}")
        S, A = P.shape[:2]
        for name, arr, shape in (("r", r, (S, A)), ("c", c, (S, A)), ("mu", mu, (S,))):
            if arr.shape != shape:
                raise ValueError(f"{name} must have shape {shape} to match P {P.shape}, got {arr.shape}")
        for name, arr in (("P", P), ("r", r), ("c", c), ("mu", mu)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} has non-finite entries")
        if np.any(P < 0) or not np.allclose(P.sum(axis=2), 1.0, atol=1e-9):
            bad = np.argwhere(~np.isclose(P.sum(axis=2), 1.0, atol=1e-9) | np.any(P < 0, axis=2))[0]
            raise ValueError(f"P[s={bad[0]}, a={bad[1]}] is not a probability distribution: {P[bad[0], bad[1]]}")
        if np.any(c < 0):
            raise ValueError(f"costs must be >= 0, got min {c.min()}")
        if np.any(mu < 0) or not np.isclose(mu.sum(), 1.0, atol=1e-9):
            raise ValueError(f"mu must be a probability distribution, sums to {mu.sum()}")
        if not 0.0 <= float(self.gamma) < 1.0:
            raise ValueError(f"gamma must be in [0, 1), got {self.gamma}")
        if not np.isfinite(self.cost_limit):
            raise ValueError(f"cost_limit must be finite, got {self.cost_limit}")
        for name, arr in (("P", P), ("r", r), ("c", c), ("mu", mu)):
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "gamma", float(self.gamma))
        object.__setattr__(self, "cost_limit", float(self.cost_limit))

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]


def cumulative_distribution(probabilities: np.ndarray) -> np.ndarray:
    """Cumulative sums along the last axis with the last entry raised to 2, so that counting the entries ``<= u``
    for a uniform ``u`` in ``[0, 1)`` always indexes inside the support despite float round-off."""
    cumulative = np.cumsum(probabilities, axis=-1)
    cumulative[..., -1] = 2.0
    return cumulative


def check_distribution_rows(array: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` unless every row of ``array`` (its last axis) is a probability distribution: finite
    entries, none below ``-1e-8`` (round-off), summing to one within ``1.1e-5``. The message names the first bad row
    (an index tuple for arrays of more than two axes) and its offending entry or sum."""
    array = np.asarray(array)
    rows = array.reshape(-1, array.shape[-1])
    problems = (
        (~np.isfinite(rows), "has a non-finite entry {}"),
        (rows < -_ATOL, f"has a negative entry {{}} (entries must be >= {-_ATOL:g})"),
    )
    for bad, message in problems:
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise ValueError(f"row {_row_label(array, row)} of {name} {message.format(float(rows[row, column]))}")
    sums = rows.sum(axis=1)
    bad_sums = np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE)
    if bad_sums.size:
        row = bad_sums[0]
        raise ValueError(f"row {_row_label(array, row)} of {name} sums to {float(sums[row])!r} "
                         f"(must be 1 within {_ROW_SUM_TOLERANCE:.2g})")


def _row_label(array: np.ndarray, row: int) -> str:
    """The index of flattened row ``row`` of ``array``: ``3`` for a matrix, ``(1, 3)`` for a stack of matrices."""
    if array.ndim <= 2:
        return str(int(row))
    return str(tuple(int(i) for i in np.unravel_index(row, array.shape[:-1])))


def check_policy(cmdp: TabularCMDP, policy: np.ndarray, name: str = "policy") -> np.ndarray:
    """``policy`` as a float array of shape ``(S, A)`` or ``(B, S, A)`` with rows on the simplex
    (:func:`check_distribution_rows`), else ``ValueError``."""
    policy = np.asarray(policy, dtype=np.float64)
    shape = (cmdp.n_states, cmdp.n_actions)
    if policy.shape[-2:] != shape or policy.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape {shape} or (B, *{shape}), got {policy.shape}")
    check_distribution_rows(policy, name)
    return policy


def value_functions(cmdp: TabularCMDP, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """State values of ``policy`` for the reward and the cost: arrays of shape ``(..., 2, S)`` stacked as
    ``(V_r, V_c)``, and the matching action values ``(Q_r, Q_c)`` of shape ``(..., 2, S, A)``.

    Solves ``(I - gamma P_pi) V = x_pi`` exactly; ``policy`` may be a batch ``(B, S, A)``.
    """
    policy = check_policy(cmdp, policy)
    P_pi = np.einsum("...sa,sat->...st", policy, cmdp.P)
    rc = np.stack([cmdp.r, cmdp.c])  # (2, S, A)
    x_pi = np.einsum("...sa,ksa->...sk", policy, rc)  # (..., S, 2)
    system = np.eye(cmdp.n_states) - cmdp.gamma * P_pi
    V = np.swapaxes(np.linalg.solve(system, x_pi), -1, -2)  # (..., 2, S)
    Q = rc + cmdp.gamma * np.einsum("sat,...kt->...ksa", cmdp.P, V)
    return V, Q


def evaluate_policy(cmdp: TabularCMDP, policy: np.ndarray) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """Exact discounted reward and cost values ``(J_r, J_c)`` of ``policy`` from ``cmdp.mu``.

    A single ``(S, A)`` policy gives two floats; a batch ``(B, S, A)`` gives two arrays of shape ``(B,)``.
    """
    policy = check_policy(cmdp, policy)
    P_pi = np.einsum("...sa,sat->...st", policy, cmdp.P)
    # Solving the transposed system for the discounted state occupancy d = mu^T (I - gamma P_pi)^-1 is one solve
    # for both values instead of one per value function.
    system_t = np.swapaxes(np.eye(cmdp.n_states) - cmdp.gamma * P_pi, -1, -2)
    occupancy = np.linalg.solve(system_t, np.broadcast_to(cmdp.mu, policy.shape[:-1])[..., None])[..., 0]
    state_action = occupancy[..., None] * policy
    reward_value = np.einsum("...sa,sa->...", state_action, cmdp.r)
    cost_value = np.einsum("...sa,sa->...", state_action, cmdp.c)
    if policy.ndim == 2:
        return float(reward_value), float(cost_value)
    return reward_value, cost_value


class InfeasibleCMDPError(ValueError):
    """No policy meets the cost limit. ``minimum_cost_value`` is the smallest achievable ``J_c``."""

    def __init__(self, cost_limit: float, minimum_cost_value: float):
        self.cost_limit = cost_limit
        self.minimum_cost_value = minimum_cost_value
        super().__init__(
            f"the CMDP is infeasible: cost_limit = {cost_limit:g} but the smallest achievable discounted cost value "
            f"is {minimum_cost_value:.6g}; raise the cost limit to at least that"
        )


@dataclasses.dataclass(frozen=True)
class CMDPSolution:
    """An optimal constrained policy with its exact values.

    ``occupancy[s, a]`` is the discounted state-action occupancy ``sum_t gamma^t Pr(s_t = s, a_t = a)`` (it sums to
    ``1 / (1 - gamma)``). In states the policy never visits from ``mu`` the occupancy is zero; there the policy takes
    the safest actions (:func:`safest_actions`), which leaves its values unchanged.
    """

    policy: np.ndarray
    reward_value: float
    cost_value: float
    occupancy: np.ndarray


def _occupancy_constraints(cmdp: TabularCMDP) -> tuple[np.ndarray, np.ndarray]:
    """Bellman flow ``sum_a q(s', a) - gamma sum_{s,a} P(s'|s,a) q(s,a) = mu(s')`` over ``q`` flattened as (s, a)."""
    S, A = cmdp.n_states, cmdp.n_actions
    outflow = np.repeat(np.eye(S), A, axis=1)  # (S, S*A): picks q(s', .)
    inflow = cmdp.P.reshape(S * A, S).T  # (S, S*A)
    return outflow - cmdp.gamma * inflow, cmdp.mu


def _linprog(objective: np.ndarray, cmdp: TabularCMDP, cost_limit: float | None) -> scipy.optimize.OptimizeResult:
    A_eq, b_eq = _occupancy_constraints(cmdp)
    kwargs = {}
    if cost_limit is not None:
        kwargs = {"A_ub": cmdp.c.reshape(1, -1), "b_ub": [cost_limit]}
    return scipy.optimize.linprog(objective, A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs", **kwargs)


def minimum_cost_value(cmdp: TabularCMDP) -> float:
    """The smallest discounted cost value any policy achieves (the occupancy LP minimising ``J_c``)."""
    result = _linprog(cmdp.c.ravel(), cmdp, None)
    if result.status != 0:
        raise RuntimeError(f"minimum-cost LP failed: {result.message}")
    return float(result.fun)


def safest_actions(cmdp: TabularCMDP, tolerance: float = 1e-9) -> np.ndarray:
    """A policy ``(S, A)`` uniform over the actions that minimise the optimal cost-to-go ``Q_c*(s, a)`` in every
    state (value iteration to ``tolerance``)."""
    V = np.zeros(cmdp.n_states)
    while True:
        Q = cmdp.c + cmdp.gamma * cmdp.P @ V
        V_next = Q.min(axis=1)
        if np.abs(V_next - V).max() <= tolerance * (1 - cmdp.gamma):
            break
        V = V_next
    safest = Q <= Q.min(axis=1, keepdims=True) + tolerance
    return safest / safest.sum(axis=1, keepdims=True)


def _policy_from_occupancy(cmdp: TabularCMDP, occupancy: np.ndarray) -> np.ndarray:
    """Normalise the occupancy per state. States it never visits do not affect the values from ``mu``, but the policy
    may later run on other tasks (or other initial states) that reach them: there it takes the safest actions."""
    state_occupancy = occupancy.sum(axis=1, keepdims=True)
    visited = state_occupancy > 1e-12
    return np.where(visited, occupancy / np.where(visited, state_occupancy, 1.0), safest_actions(cmdp))


def solve_cmdp(cmdp: TabularCMDP) -> CMDPSolution:
    """An optimal policy of ``max J_r s.t. J_c <= cost_limit`` by the occupancy-measure LP (HiGHS).

    The returned values are recomputed by exact policy evaluation, not read off the LP, and the returned policy meets
    the limit exactly in floating point (``cost_value <= cost_limit``, no tolerance): when round-off puts the LP's
    policy a hair over the limit, the LP is re-solved with the limit lowered by ``1e-10`` (then ``1e-8``) relative,
    which costs at most that much reward. Raises :class:`InfeasibleCMDPError` (a ``ValueError``) naming the smallest
    achievable cost value when no policy is feasible.
    """
    scale = max(1.0, abs(cmdp.cost_limit))
    for margin in (0.0, 1e-10, 1e-8):
        result = _linprog(-cmdp.r.ravel(), cmdp, cmdp.cost_limit - margin * scale)
        if result.status == 2:
            break
        if result.status != 0:
            raise RuntimeError(f"CMDP LP failed: {result.message}")
        occupancy = np.maximum(result.x, 0.0).reshape(cmdp.n_states, cmdp.n_actions)
        policy = _policy_from_occupancy(cmdp, occupancy)
        reward_value, cost_value = evaluate_policy(cmdp, policy)
        if cost_value <= cmdp.cost_limit:
            return CMDPSolution(policy=policy, reward_value=reward_value, cost_value=cost_value, occupancy=occupancy)
    raise InfeasibleCMDPError(cmdp.cost_limit, minimum_cost_value(cmdp))


@dataclasses.dataclass(frozen=True)
class ExtendedCMDPSolution:
    """The extended LP's optimum (:func:`solve_extended_cmdp`): the policy, the kernel ``P'`` of the confidence set it
    plans with (the model's own rows where the policy never goes), and the policy's values under ``P'``."""

    policy: np.ndarray
    kernel: np.ndarray
    reward_value: float
    cost_value: float


def solve_extended_cmdp(model: TabularCMDP, radius: np.ndarray, support: np.ndarray | None = None,
                        fallback: np.ndarray | None = None) -> ExtendedCMDPSolution | None:
    """``max_{pi, P'} J_r(pi; P')`` subject to ``J_c(pi; P') <= d``, over every kernel ``P'`` with
    ``|P'(s'|s,a) - P(s'|s,a)| <= radius(s,a,s')`` entrywise and no mass outside ``support``: the optimistic planning
    step of model-based safe exploration (DOPE), in the exact stationary discounted form of SPECS.md.

    ``model`` holds the estimated kernel ``P`` and the rewards and costs to plan with (bonuses included). The
    variables are ``w(s,a,s') >= 0`` on ``support`` (default: where ``P > 0``), the discounted occupancy of the
    triple: the flow ``sum_{a,s'} w(x,a,s') - gamma sum_{s,a} w(s,a,x) = mu(x)``, the confidence rows
    ``(P - radius) sum_y w(s,a,y) <= w(s,a,s') <= (P + radius) sum_y w(s,a,y)``, and the cost row
    ``sum w c <= d``; the objective is ``sum w r``. Then ``pi(a|s)`` is proportional to ``sum_{s'} w(s,a,s')`` and
    ``P'(s'|s,a)`` to ``w(s,a,s')``; states the policy never reaches take ``fallback`` (default: uniform).

    Returns ``None`` when no policy and kernel of the set meet the limit (DOPE then runs its baseline).
    """
    S, A = model.n_states, model.n_actions
    radius = np.broadcast_to(np.asarray(radius, dtype=np.float64), model.P.shape)
    if not np.all(np.isfinite(radius)) or np.any(radius < 0):
        raise ValueError("radius must be finite and >= 0 everywhere")
    support = model.P > 0 if support is None else np.asarray(support, dtype=bool)
    if support.shape != model.P.shape or np.any(model.P[~support] > 0):
        raise ValueError(f"support must have shape {model.P.shape} and hold every transition of the model's kernel")
    if not np.all(support.any(axis=2)):
        raise ValueError("every state-action pair needs at least one successor in support")
    triples = np.argwhere(support)  # (n, 3): s, a, s'
    s, a, successor = triples.T
    n = len(triples)
    pair = s * A + a
    flow = scipy.sparse.coo_matrix((np.ones(n), (s, np.arange(n))), shape=(S, n)) - model.gamma * (
        scipy.sparse.coo_matrix((np.ones(n), (successor, np.arange(n))), shape=(S, n)))
    # Rows of the confidence set: w_j - bound_j * (the sum of w over the triples of j's pair) <= 0, and the mirror.
    # Built as (triple -> pair indicator) times its transpose, so memory grows with the triples, not their square.
    indicator = scipy.sparse.csr_matrix((np.ones(n), (np.arange(n), pair)), shape=(n, S * A))
    same_pair = (indicator @ indicator.T).tocsr()
    estimate = model.P[s, a, successor]
    upper = scipy.sparse.identity(n, format="csr") - scipy.sparse.diags(estimate + radius[s, a, successor]) @ same_pair
    lower_bound = estimate - radius[s, a, successor]
    binding = lower_bound > 0  # (a lower bound <= 0 holds for any w >= 0)
    lower = (scipy.sparse.diags(lower_bound) @ same_pair - scipy.sparse.identity(n, format="csr"))[binding]
    cost_row = scipy.sparse.csr_matrix(model.c[s, a][None, :])
    result = scipy.optimize.linprog(
        -model.r[s, a], A_ub=scipy.sparse.vstack([upper, lower, cost_row]).tocsr(),
        b_ub=np.concatenate([np.zeros(n + int(binding.sum())), [model.cost_limit]]), A_eq=flow.tocsr(),
        b_eq=model.mu, bounds=(0, None), method="highs")
    if result.status == 2:
        return None
    if result.status != 0:
        raise RuntimeError(f"extended CMDP LP failed: {result.message}")
    w = np.zeros((S, A, S))
    w[s, a, successor] = np.maximum(result.x, 0.0)
    visits = w.sum(axis=2)
    visited_pairs = visits > 1e-12
    kernel = np.where(visited_pairs[..., None], w / np.where(visited_pairs, visits, 1.0)[..., None], model.P)
    state_visits = visits.sum(axis=1, keepdims=True)
    fallback = np.full((S, A), 1.0 / A) if fallback is None else check_policy(model, fallback, "fallback")
    policy = np.where(state_visits > 1e-12, visits / np.where(state_visits > 1e-12, state_visits, 1.0), fallback)
    planned = dataclasses.replace(model, P=kernel)
    reward_value, cost_value = evaluate_policy(planned, policy)
    return ExtendedCMDPSolution(policy, kernel, reward_value, cost_value)


@dataclasses.dataclass(frozen=True)
class RegularisedCMDPSolution:
    """The last iterate of :func:`solve_regularised_cmdp`: its policy, the exact (unregularised) values of that
    policy, and the multiplier ``u``. ``feasible`` says whether the policy meets the limit exactly; on a task with no
    feasible policy the method still returns its last iterate, which ``feasible`` then marks."""

    policy: np.ndarray
    reward_value: float
    cost_value: float
    multiplier: float
    cost_limit: float

    @property
    def feasible(self) -> bool:
        return self.cost_value <= self.cost_limit


def solve_regularised_cmdp(cmdp: TabularCMDP, entropy_weight: float = 0.1, dual_step: float = 0.1,
                           iterations: int = 10_000, primal_step: float | None = None, evaluation_sweeps: int = 50,
                           evaluation_tolerance: float = 1e-5) -> RegularisedCMDPSolution:
    """The entropy-regularised primal-dual method that the covering + safe mixture authors' gridworld code uses for
    every "optimal" policy (SPECS.md): alternating gradient descent-ascent on the Lagrangian of
    ``max J_r + entropy_weight H(pi) s.t. J_c <= d``.

    From ``pi_0 = softmax(r / beta)`` (``beta = entropy_weight``), ``u_0 = 0`` and zero value estimates, each
    iteration:

    1. evaluates the soft value ``V`` of ``pi`` for the reward ``r - u c`` (the entropy bonus ``beta H(pi(.|s))``
       added per state) by Bellman sweeps warm-started from the last estimate (at most ``evaluation_sweeps``,
       stopping once a sweep moves no value by more than ``evaluation_tolerance``);
    2. takes the entropy-regularised natural policy gradient step of size ``eta`` (``primal_step``, default
       ``(1 - gamma) / beta``, at which the step is soft policy iteration, ``pi <- softmax(Q / beta)``):
       ``pi <- pi^(1 - eta beta / (1 - gamma)) exp(eta Q / (1 - gamma))``, normalised, with
       ``Q = r - u c + gamma P V``;
    3. evaluates the cost value ``V_c`` of the new policy the same way and takes the projected dual step
       ``u <- max(0, u + dual_step (mu V_c - d))``.

    The last iterate is returned, with its exact values (the linear solve, not the sweeps' estimates). As
    ``beta -> 0`` (with enough iterations) it tends to an optimum of the unregularised LP (:func:`solve_cmdp`); at
    ``beta > 0`` its policy keeps every action's probability positive wherever ``Q`` allows, and its cost oscillates
    around the limit as the multiplier settles, so it may end a hair above it (``feasible`` tells).
    """
    beta = check_number("entropy_weight", entropy_weight, 0.0, low_open=True)
    dual_step = check_number("dual_step", dual_step, 0.0)
    iterations = check_count("iterations", iterations, minimum=1)
    gamma = cmdp.gamma
    eta = (1 - gamma) / beta if primal_step is None else check_number("primal_step", primal_step, 0.0,
                                                                     low_open=True)
    sweeps = check_count("evaluation_sweeps", evaluation_sweeps, minimum=1)
    tolerance = check_number("evaluation_tolerance", evaluation_tolerance, 0.0)
    from cmdp_envs.regularised_kernel import regularised_iterations

    rows = cmdp.P.reshape(-1, cmdp.n_states)
    row_start = np.concatenate(([0], np.cumsum(np.count_nonzero(rows, axis=1))))
    next_states = np.nonzero(rows)[1]
    policy, multiplier = regularised_iterations(row_start, next_states, rows[rows > 0], cmdp.r, cmdp.c, cmdp.mu, gamma,
                                                cmdp.cost_limit, beta, eta, dual_step, iterations, sweeps, tolerance)
    reward_value, exact_cost = evaluate_policy(cmdp, policy)
    return RegularisedCMDPSolution(policy, reward_value, exact_cost, multiplier, cmdp.cost_limit)


def _total_variation(p: np.ndarray, q: np.ndarray, axis: int = -1) -> np.ndarray:
    return 0.5 * np.abs(p - q).sum(axis=axis)


def cmdp_distance(cmdp_1: TabularCMDP, cmdp_2: TabularCMDP) -> float:
    """The CMDP distance of Feng et al. used by Ni & Kamgarpour:
    ``max(||r1 - r2||_inf, ||c1 - c2||_inf, TV(mu1, mu2), max_{s,a} TV(P1(.|s,a), P2(.|s,a)))``."""
    if cmdp_1.P.shape != cmdp_2.P.shape:
        raise ValueError(f"CMDPs have different shapes: {cmdp_1.P.shape} and {cmdp_2.P.shape}")
    return float(
        max(
            np.abs(cmdp_1.r - cmdp_2.r).max(),
            np.abs(cmdp_1.c - cmdp_2.c).max(),
            _total_variation(cmdp_1.mu, cmdp_2.mu),
            _total_variation(cmdp_1.P, cmdp_2.P).max(),
        )
    )


#: Working memory, in bytes, that :class:`EpisodeSampler` lets one chunk of episodes use (the default of its
#: ``working_memory``). Sampling holds one chunk at a time, so its memory beyond the returned arrays stays below this
#: for any number of episodes.
WORKING_MEMORY = 64 * 2**20


@dataclasses.dataclass(frozen=True)
class EpisodeBatch:
    """Per-episode results of :func:`sample_episodes`, each of shape ``(n_episodes,)``.

    ``policy_index[e]`` is the mixture member episode ``e`` ran (always 0 for a single policy).
    """

    reward_return: np.ndarray
    cost_return: np.ndarray
    policy_index: np.ndarray


@dataclasses.dataclass(frozen=True)
class Trajectories:
    """Per-step records of :meth:`EpisodeSampler.sample_trajectories`, each of shape ``(n_episodes, horizon)``
    (``policy_index`` of shape ``(n_episodes,)``): ``rewards[e, t] = r(states[e, t], actions[e, t])``."""

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    costs: np.ndarray
    policy_index: np.ndarray


class EpisodeSampler:
    """Samples many episodes of tabular policies, or of episode-level mixtures of them, in one numpy computation.

    Every state-action-next-state step is one joint draw of ``(a, s')`` from ``pi(a|s) P(s'|s,a)``. The joint
    distribution of each ``(policy, s)`` is stored sparsely (only its non-zero outcomes, padded to the largest support)
    so a draw is a comparison of one uniform against a short cumulative row; the episodes of a chunk advance
    together, one vectorised step per time step.

    Episodes run in chunks of :attr:`chunk_episodes`, the most whose per-step working arrays fit in
    ``working_memory`` bytes, one chunk after the other from the same random stream. A request of at most
    ``chunk_episodes`` episodes is one chunk and draws exactly what an unchunked sampler would; a larger request's
    results depend on the chunk size, so they are reproducible for a seed and a ``working_memory``.

    Build one sampler per (CMDP, policy set) and call :meth:`sample` repeatedly: the tables are built once.

    :param cmdp: the tabular CMDP to sample.
    :param policies: one policy ``(S, A)`` or a stack ``(K, S, A)`` of mixture members.
    :param horizon: steps per episode (``H``); discounted sums stop there.
    :param working_memory: bytes one chunk of episodes may use (default :data:`WORKING_MEMORY`).
    """

    def __init__(self, cmdp: TabularCMDP, policies: np.ndarray, horizon: int, working_memory: int = WORKING_MEMORY):
        self.horizon = check_count("horizon", horizon, minimum=1)
        working_memory = check_count("working_memory", working_memory, minimum=1)
        policies = check_policy(cmdp, policies, "policies")
        if policies.ndim == 2:
            policies = policies[None]
        self.cmdp = cmdp
        self.n_policies = policies.shape[0]
        S, A = cmdp.n_states, cmdp.n_actions
        joint = np.clip(policies, 0.0, None)[:, :, :, None] * cmdp.P[None]  # (K, S, A, S)
        joint = joint.reshape(self.n_policies * S, A * S)
        support = joint > 0
        width = max(int(support.sum(axis=1).max()), 1)
        # Sorting by "not in support" moves every outcome with non-zero probability to the front of its row.
        order = np.argsort(~support, axis=1, kind="stable")[:, :width]
        probabilities = np.take_along_axis(joint, order, axis=1)
        # Rows of a policy may sum to 1 only within check_policy's tolerance: normalise before accumulating.
        self._cumulative = cumulative_distribution(probabilities / probabilities.sum(axis=1, keepdims=True))
        self._action = (order // S).astype(np.intp)
        self._next_state = (order % S).astype(np.intp)
        self._reward = cmdp.r
        self._cost = cmdp.c
        self._mu_cumulative = cumulative_distribution(cmdp.mu)
        # Per episode and step: the gathered cumulative rows (float64) and their comparison with the uniform (bool),
        # plus at most 16 vectors of 8-byte numbers (uniforms, rows, outcomes, states, actions, returns, ...).
        self.chunk_episodes = max(1, working_memory // (9 * width + 16 * 8))

    def _check_weights(self, weights: Sequence[float] | np.ndarray | None) -> np.ndarray:
        """The mixture weights as an array, checked; uniform by default."""
        if weights is None:
            return np.full(self.n_policies, 1.0 / self.n_policies)
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (self.n_policies,) or np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
            raise ValueError(
                f"weights must be {self.n_policies} non-negative numbers summing to 1, got {weights.tolist()}"
            )
        return weights

    def _check_gamma(self, gamma: float | None) -> float:
        return self.cmdp.gamma if gamma is None else check_number("gamma", gamma, 0.0, 1.0)

    def _chunk_sizes(self, n: int) -> Iterator[int]:
        for start in range(0, n, self.chunk_episodes):
            yield min(self.chunk_episodes, n - start)

    def _mixture_members(self, n: int, rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
        if self.n_policies == 1:
            return np.zeros(n, dtype=np.intp)
        member = np.searchsorted(np.cumsum(weights), rng.random(n) * weights.sum(), side="right")
        return np.minimum(member, self.n_policies - 1)

    def _steps(self, member: np.ndarray, rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(state, action)`` arrays, one pair per time step, for episodes running the given members."""
        n = len(member)
        state = np.searchsorted(self._mu_cumulative, rng.random(n), side="right")
        row_offset = member * self.cmdp.n_states
        cumulative, actions, next_states = self._cumulative, self._action, self._next_state
        for _ in range(self.horizon):
            row = row_offset + state
            outcome = (rng.random(n)[:, None] >= cumulative[row]).sum(axis=1)
            action = actions[row, outcome]
            yield state, action
            state = next_states[row, outcome]

    def sample_chunks(
        self,
        n_episodes: int,
        seed: SeedLike = None,
        weights: Sequence[float] | np.ndarray | None = None,
        gamma: float | None = None,
    ) -> Iterator[EpisodeBatch]:
        """The episodes of :meth:`sample` (same arguments, same draws), as consecutive batches of at most
        :attr:`chunk_episodes` episodes: streaming them takes bounded memory for any ``n_episodes``. The arguments
        are checked at the call, the episodes drawn as the batches are consumed."""
        n = check_count("n_episodes", n_episodes)
        gamma = self._check_gamma(gamma)
        weights = self._check_weights(weights)
        return self._episode_chunks(n, as_generator(seed), weights, gamma)

    def _episode_chunks(self, n: int, rng: np.random.Generator, weights: np.ndarray, gamma: float,
                        out: EpisodeBatch | None = None) -> Iterator[EpisodeBatch]:
        """The chunks of ``n`` episodes; with ``out``, each chunk is written into (and yielded as) its slice of
        ``out``, so that a whole sample is built without a second copy."""
        start = 0
        for size in self._chunk_sizes(n):
            episodes = slice(start, start + size)
            start += size
            member = self._mixture_members(size, rng, weights)
            if out is None:
                chunk = EpisodeBatch(reward_return=np.zeros(size), cost_return=np.zeros(size), policy_index=member)
            else:
                chunk = EpisodeBatch(**{field.name: getattr(out, field.name)[episodes]
                                        for field in dataclasses.fields(EpisodeBatch)})
                chunk.reward_return[:] = chunk.cost_return[:] = 0.0
                chunk.policy_index[:] = member
            discount = 1.0
            for state, action in self._steps(member, rng):  # [:]: in place, as the batch is a frozen dataclass
                chunk.reward_return[:] += discount * self._reward[state, action]
                chunk.cost_return[:] += discount * self._cost[state, action]
                discount *= gamma
            yield chunk

    def sample(
        self,
        n_episodes: int,
        seed: SeedLike = None,
        weights: Sequence[float] | np.ndarray | None = None,
        gamma: float | None = None,
    ) -> EpisodeBatch:
        """Run ``n_episodes`` episodes; each draws its mixture member from ``weights`` once, at its start.

        :param weights: mixture weights over the policies (default: the single policy, or uniform).
        :param gamma: discount of the returned sums (default the CMDP's; ``1.0`` gives undiscounted sums).
        """
        n = check_count("n_episodes", n_episodes)
        gamma = self._check_gamma(gamma)
        weights = self._check_weights(weights)
        batch = EpisodeBatch(reward_return=np.empty(n), cost_return=np.empty(n),
                             policy_index=np.empty(n, dtype=np.intp))
        for _ in self._episode_chunks(n, as_generator(seed), weights, gamma, out=batch):
            pass
        return batch

    def sample_trajectory_chunks(self, n_episodes: int, seed: SeedLike = None,
                                 weights: Sequence[float] | np.ndarray | None = None) -> Iterator[Trajectories]:
        """The trajectories of :meth:`sample_trajectories` (same arguments, same draws), as consecutive batches of at
        most :attr:`chunk_episodes` episodes, so that estimators can stream any number of them in bounded memory."""
        n = check_count("n_episodes", n_episodes)
        weights = self._check_weights(weights)
        return self._trajectory_chunks(n, as_generator(seed), weights)

    def _trajectory_chunks(self, n: int, rng: np.random.Generator, weights: np.ndarray,
                           out: Trajectories | None = None) -> Iterator[Trajectories]:
        """The chunks of ``n`` trajectories; with ``out``, each chunk is written into (and yielded as) its slice of
        ``out``, so that a whole sample is built without a second copy."""
        start = 0
        for size in self._chunk_sizes(n):
            episodes = slice(start, start + size)
            start += size
            member = self._mixture_members(size, rng, weights)
            if out is None:
                chunk = Trajectories(states=np.empty((size, self.horizon), dtype=np.intp),
                                     actions=np.empty((size, self.horizon), dtype=np.intp),
                                     rewards=np.empty((size, self.horizon)), costs=np.empty((size, self.horizon)),
                                     policy_index=member)
            else:
                chunk = Trajectories(**{field.name: getattr(out, field.name)[episodes]
                                        for field in dataclasses.fields(Trajectories)})
                chunk.policy_index[:] = member
            for t, (state, action) in enumerate(self._steps(member, rng)):
                chunk.states[:, t] = state
                chunk.actions[:, t] = action
                chunk.rewards[:, t] = self._reward[state, action]
                chunk.costs[:, t] = self._cost[state, action]
            yield chunk

    def sample_trajectories(self, n_episodes: int, seed: SeedLike = None,
                            weights: Sequence[float] | np.ndarray | None = None) -> Trajectories:
        """Like :meth:`sample`, but keep every step: states and actions of shape ``(n_episodes, horizon)``. Runs in
        the same chunks as :meth:`sample`, so its working memory beyond the returned arrays is bounded too."""
        n = check_count("n_episodes", n_episodes)
        weights = self._check_weights(weights)
        shape = (n, self.horizon)
        trajectories = Trajectories(states=np.empty(shape, dtype=np.intp), actions=np.empty(shape, dtype=np.intp),
                                    rewards=np.empty(shape), costs=np.empty(shape),
                                    policy_index=np.empty(n, dtype=np.intp))
        for _ in self._trajectory_chunks(n, as_generator(seed), weights, out=trajectories):
            pass
        return trajectories

def sample_episodes(
    cmdp: TabularCMDP,
    policies: np.ndarray,
    n_episodes: int,
    horizon: int,
    seed: SeedLike = None,
    weights: Sequence[float] | np.ndarray | None = None,
    gamma: float | None = None,
) -> EpisodeBatch:
    """One-shot form of :class:`EpisodeSampler`: build the tables and sample ``n_episodes`` episodes."""
    return EpisodeSampler(cmdp, policies, horizon).sample(n_episodes, seed=seed, weights=weights, gamma=gamma)
