"""The iterations of :func:`cmdp_envs.tabular.solve_regularised_cmdp` compiled with numba: ten thousand iterations
of a few small array operations each, where numpy's per-call overhead was most of the cost. Transitions are read
in sparse rows (``next_states[row_start[i]:row_start[i + 1]]`` with their ``probabilities``, row ``i = s A + a``):
a gridworld move reaches at most five cells of 49. Imported when the solver first runs, so importing
:mod:`cmdp_envs.tabular` does not load numba."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _expected_next(row: int, values: np.ndarray, row_start: np.ndarray, next_states: np.ndarray,
                   probabilities: np.ndarray) -> float:
    """``P(s, a) . values`` for row ``s A + a``."""
    total = 0.0
    for k in range(row_start[row], row_start[row + 1]):
        total += probabilities[k] * values[next_states[k]]
    return total


@numba.njit(cache=True)
def _sweeps(values: np.ndarray, policy: np.ndarray, reward: np.ndarray, bonus: np.ndarray, row_start: np.ndarray,
            next_states: np.ndarray, probabilities: np.ndarray, gamma: float, sweeps: int,
            tolerance: float) -> np.ndarray:
    """``V <- sum_a pi(a|s) (x(s, a) + gamma P(s, a) . V) + bonus(s)``, each sweep from the last one's values (not in
    place), until a sweep moves no value by more than ``tolerance``, at most ``sweeps`` times."""
    S, A = policy.shape
    updated = np.empty(S)
    for _ in range(sweeps):
        change = 0.0
        for s in range(S):
            total = 0.0
            for a in range(A):
                expected = _expected_next(s * A + a, values, row_start, next_states, probabilities)
                total += policy[s, a] * (reward[s, a] + gamma * expected)
            updated[s] = total + bonus[s]
            change = max(change, abs(updated[s] - values[s]))
        values = updated.copy()
        if change <= tolerance:
            break
    return values


@numba.njit(cache=True)
def regularised_iterations(row_start: np.ndarray, next_states: np.ndarray, probabilities: np.ndarray, r: np.ndarray,
                           c: np.ndarray, mu: np.ndarray, gamma: float, cost_limit: float, beta: float, eta: float,
                           dual_step: float, iterations: int, sweeps: int, tolerance: float
                           ) -> tuple[np.ndarray, float]:
    """The method's iterations from ``pi_0 = softmax(r / beta)``; the last policy and multiplier."""
    S, A = r.shape
    keep = 1.0 - eta * beta / (1.0 - gamma)
    policy = np.empty((S, A))
    for s in range(S):
        peak = np.max(r[s]) / beta
        for a in range(A):
            policy[s, a] = np.exp(r[s, a] / beta - peak)
        policy[s] /= np.sum(policy[s])
    value, cost_value, multiplier = np.zeros(S), np.zeros(S), 0.0
    zero = np.zeros(S)
    bonus, q = np.empty(S), np.empty(A)
    for _ in range(iterations):
        reward = r - multiplier * c
        for s in range(S):
            entropy = 0.0
            for a in range(A):
                if policy[s, a] > 0.0:
                    entropy -= policy[s, a] * np.log(policy[s, a])
            bonus[s] = beta * entropy
        value = _sweeps(value, policy, reward, bonus, row_start, next_states, probabilities, gamma, sweeps,
                        tolerance)
        for s in range(S):
            for a in range(A):
                q[a] = reward[s, a] + gamma * _expected_next(s * A + a, value, row_start, next_states,
                                                             probabilities)
            peak = np.max(q)
            for a in range(A):
                logit = eta * (q[a] - peak) / (1.0 - gamma)
                if keep != 0.0:  # with keep = 0 the old policy drops out, zeros included
                    logit += keep * np.log(policy[s, a]) if policy[s, a] > 0.0 else -np.inf
                q[a] = logit
            peak = np.max(q)
            for a in range(A):
                policy[s, a] = np.exp(q[a] - peak)
            policy[s] /= np.sum(policy[s])
        cost_value = _sweeps(cost_value, policy, c, zero, row_start, next_states, probabilities, gamma, sweeps,
                             tolerance)
        multiplier = max(0.0, multiplier + dual_step * (np.dot(mu, cost_value) - cost_limit))
    return policy, multiplier
