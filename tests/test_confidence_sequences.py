"""The anytime-valid empirical-Bernstein confidence sequence (meta/confidence_sequences.py)."""

import math

import numpy as np
import pytest

from cmdp_envs.meta.confidence_sequences import EmpiricalBernsteinCS


def run(values, low=0.0, high=1.0, delta=0.1):
    sequence = EmpiricalBernsteinCS(low, high, delta)
    bounds = []
    for value in values:
        sequence.update(float(value))
        bounds.append((sequence.lower, sequence.upper))
    return sequence, np.array(bounds)


def test_the_mean_stays_inside_at_every_time_in_all_but_a_delta_share_of_runs():
    """200 runs of 2,000 skewed draws (mean 0.1, a few large values, like episode costs): a run misses if its
    interval excludes the mean at any time. Allowed: delta = 0.1 of them plus three binomial deviations."""
    rng = np.random.default_rng(0)
    misses = 0
    for _ in range(200):
        values = np.where(rng.random(2000) < 0.05, rng.uniform(0.5, 1.0, 2000), rng.uniform(0.0, 0.08, 2000))
        mean = 0.05 * 0.75 + 0.95 * 0.04
        _, bounds = run(values)
        misses += bool(np.any((bounds[:, 0] > mean) | (bounds[:, 1] < mean)))
    assert misses <= 0.1 * 200 + 3 * math.sqrt(200 * 0.1 * 0.9)


def test_intervals_only_shrink_adapt_to_the_variance_and_respect_the_range():
    rng = np.random.default_rng(1)
    _, steady = run(np.full(5000, 30.0) + rng.normal(0, 0.1, 5000), low=0.0, high=100.0)
    _, noisy = run(rng.uniform(0.0, 60.0, 5000), low=0.0, high=100.0)
    widths = steady[:, 1] - steady[:, 0]
    assert np.all(np.diff(widths) <= 1e-12), "the running intersection never widens"
    assert widths[-1] < (noisy[-1, 1] - noisy[-1, 0]) / 3, "a low-variance stream gets a narrower interval"
    assert steady[-1, 0] <= 30.0 <= steady[-1, 1] and noisy[-1, 0] <= 30.0 <= noisy[-1, 1]
    fresh = EmpiricalBernsteinCS(-2.0, 3.0, 0.05)
    assert (fresh.lower, fresh.upper) == (-2.0, 3.0) and math.isnan(fresh.mean)


def test_bad_input_is_rejected_before_any_state_changes():
    sequence = EmpiricalBernsteinCS(0.0, 1.0, 0.1)
    with pytest.raises(ValueError, match=r"outside the sequence's range \[0.0, 1.0\]"):
        sequence.update(1.5)
    assert sequence.n == 0 and (sequence.lower, sequence.upper) == (0.0, 1.0)
    with pytest.raises(ValueError, match="low < high"):
        EmpiricalBernsteinCS(1.0, 1.0, 0.1)
    with pytest.raises(ValueError, match="delta"):
        EmpiricalBernsteinCS(0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="max_bet"):
        EmpiricalBernsteinCS(0.0, 1.0, 0.1, max_bet=1.0)
