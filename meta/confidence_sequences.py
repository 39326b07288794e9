"""Anytime-valid confidence sequences for the mean of bounded i.i.d. observations.

:class:`EmpiricalBernsteinCS` is the predictable plug-in empirical-Bernstein confidence sequence of Waudby-Smith &
Ramdas ("Estimating means of bounded random variables by betting", JRSS-B 2024, Theorem 2, PrPl-EB). For
observations rescaled to ``[0, 1]``, with ``mu_hat_t = (1/2 + sum_{i<=t} x_i) / (t + 1)`` and
``sigma2_t = (1/4 + sum_{i<=t} (x_i - mu_hat_i)^2) / (t + 1)``, it bets

``lambda_t = min(sqrt(2 log(2/delta) / (sigma2_{t-1} t log(1 + t))), c)``

on the ``t``-th observation and reports

``sum lambda_i x_i / sum lambda_i  +/-  (log(2/delta) + sum v_i psi_E(lambda_i)) / sum lambda_i``,

with ``v_i = 4 (x_i - mu_hat_{i-1})^2`` and ``psi_E(l) = (-log(1 - l) - l) / 4``, intersected over time. With
probability at least ``1 - delta`` the interval holds the mean at every ``t`` simultaneously, so it may be read after
every observation and acted on at any data-dependent time. Its width adapts to the observed variance; a term of order
``range log(2/delta) / (c t)`` remains, the price of not knowing that no observation will come near the range's end.
"""

from __future__ import annotations

import math

from cmdp_envs.validation import check_number

__all__ = ["EmpiricalBernsteinCS"]


class EmpiricalBernsteinCS:
    """A running confidence sequence for the mean of observations in ``[low, high]``, at level ``1 - delta``
    (module docstring). ``update(x)`` after each observation; :attr:`lower` and :attr:`upper` are the current bounds
    (the whole range before the first observation).

    :param low, high: the range every observation lies in (known in advance: a bound, not the observed extremes).
    :param delta: the probability that the sequence ever misses the mean.
    :param max_bet: ``c``, the cap on the bet (the paper suggests 1/2 or 3/4).
    """

    def __init__(self, low: float, high: float, delta: float, max_bet: float = 0.5):
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"need finite low < high, got low = {low}, high = {high}")
        self.low, self.high = float(low), float(high)
        self.delta = check_number("delta", delta, 0.0, 1.0, low_open=True, high_open=True)
        self.max_bet = check_number("max_bet", max_bet, 0.0, 1.0, low_open=True, high_open=True)
        self._log_term = math.log(2 / self.delta)
        self.n = 0
        self._sum = 0.0  # sum of the rescaled observations
        self._squares = 0.0  # sum of (x_i - mu_hat_i)^2
        self._bets = 0.0  # sum of lambda_i
        self._weighted = 0.0  # sum of lambda_i x_i
        self._penalty = 0.0  # sum of v_i psi_E(lambda_i)
        self._lower, self._upper = 0.0, 1.0  # rescaled, intersected over time

    def update(self, x: float) -> None:
        """Add one observation (it must lie in ``[low, high]``)."""
        if not self.low <= x <= self.high:
            raise ValueError(f"observation {x} is outside the sequence's range [{self.low}, {self.high}]")
        y = (x - self.low) / (self.high - self.low)
        t = self.n + 1
        mean_before = (0.5 + self._sum) / t
        variance_before = (0.25 + self._squares) / t
        bet = min(math.sqrt(2 * self._log_term / (variance_before * t * math.log(1 + t))), self.max_bet)
        self._bets += bet
        self._weighted += bet * y
        self._penalty += 4 * (y - mean_before) ** 2 * (-math.log1p(-bet) - bet) / 4
        self._sum += y
        self._squares += (y - (0.5 + self._sum) / (t + 1)) ** 2
        self.n = t
        centre = self._weighted / self._bets
        width = (self._log_term + self._penalty) / self._bets
        self._lower = max(self._lower, centre - width)
        self._upper = min(self._upper, centre + width)

    def _scaled(self, y: float) -> float:
        return self.low + y * (self.high - self.low)

    @property
    def lower(self) -> float:
        return self._scaled(min(self._lower, self._upper))

    @property
    def upper(self) -> float:
        return self._scaled(max(self._upper, self._lower))

    @property
    def mean(self) -> float:
        """The plain running mean (``nan`` before the first observation)."""
        return self._scaled(self._sum / self.n) if self.n else math.nan
