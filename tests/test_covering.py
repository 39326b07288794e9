"""Algorithm 1 (covering training phase) with exact oracles on the gridworld."""

import dataclasses
import math

import numpy as np
import pytest

from cmdp_envs.meta.covering import (
    CoveringResult,
    coverage_error,
    greedy_cover,
    initial_sample_size,
    train,
)
from cmdp_envs.meta.executors import LocalExecutor
from cmdp_envs.meta.oracles import DistanceCheck, ExactLPOracle, ExactSimultaneouslyFeasibleOracle
from cmdp_envs.tabular import evaluate_policy, solve_cmdp


def noise_check(family):
    # The paper's O_c for this family: compare noise levels (Appendix H.1).
    return DistanceCheck(family, parameter="noise")


def test_sample_size_and_coverage_error_formulas():
    assert initial_sample_size(0.1) == math.ceil(math.log(0.1) ** 2 / 0.01) == 531
    assert coverage_error(5, 100, 0.1) == pytest.approx(math.sqrt(5 * math.log(2000) / 95))
    assert coverage_error(10, 10, 0.1) == math.inf
    with pytest.raises(ValueError, match="delta"):
        initial_sample_size(1.0)


def test_greedy_cover_is_greedy_and_stops_at_the_uncovered_budget(paper_family):
    tasks = [paper_family.task(noise=x) for x in (0.10, 0.11, 0.12, 0.30, 0.31, 0.45)]
    check = noise_check(paper_family)
    cover = greedy_cover(tasks, check, eps=0.011, max_uncovered=0)
    assert cover[0] == 1, "0.11 covers three tasks, more than any other"
    covered = {j for i in cover for j in range(len(tasks)) if check(tasks[i], tasks[j], 0.011)}
    assert covered == set(range(len(tasks)))
    assert len(greedy_cover(tasks, check, eps=0.011, max_uncovered=1)) == len(cover) - 1
    lam = DistanceCheck(paper_family, distance=lambda a, b: abs(a.noise - b.noise))
    np.testing.assert_array_equal(check.matrix(tasks, 0.011), lam.matrix(tasks, 0.011))
    assert greedy_cover(tasks, lambda a, b, eps: check(a, b, eps), 0.011, 0) == cover, "no matrix: same cover"
    with pytest.raises(ValueError, match="own ball"):
        greedy_cover(tasks, lambda a, b, eps: False, 0.1, 0)


@pytest.fixture(scope="module")
def result(paper_family):
    return train(
        paper_family, ExactLPOracle(paper_family), noise_check(paper_family),
        ExactSimultaneouslyFeasibleOracle(paper_family, iterations=300), delta=0.2, eps=0.02, xi=0.05, seed=0,
    )


def test_training_phase_with_exact_oracles(paper_family, result):
    assert result.coverage_error <= 0.2
    assert result.n_samples == initial_sample_size(0.2) * 2**result.doublings
    assert 1 <= result.cover_size < result.n_samples
    for entry in result.policy_values:
        cmdp = paper_family.tabular(entry.task)
        optimum = solve_cmdp(cmdp)
        assert entry.reward_value == pytest.approx(optimum.reward_value)
        assert entry.margin >= 0
        safe_reward, safe_cost = evaluate_policy(cmdp, result.safe_policy.probabilities)
        assert entry.safe_reward_value == pytest.approx(safe_reward)
        assert entry.safe_margin == pytest.approx(cmdp.cost_limit - safe_cost)
        assert entry.safe_margin >= 0.05, "pi_s keeps the margin xi on every member of the cover"
    # Members of the cover are at least eps apart in noise, by construction of the greedy cover.
    noises = sorted(entry.task.noise for entry in result.policy_values)
    assert all(b - a > 0.02 for a, b in zip(noises, noises[1:]))


def test_training_is_deterministic_and_executor_independent(paper_family, result):
    again = train(
        paper_family, ExactLPOracle(paper_family), noise_check(paper_family),
        ExactSimultaneouslyFeasibleOracle(paper_family, iterations=300), delta=0.2, eps=0.02, xi=0.05, seed=0,
        executor=LocalExecutor(max_workers=2),
    )
    assert [e.task for e in again.policy_values] == [e.task for e in result.policy_values]
    np.testing.assert_array_equal(again.safe_policy.probabilities, result.safe_policy.probabilities)


def test_result_saves_and_loads_without_pickle(paper_family, result, tmp_path):
    result.save(tmp_path / "run")
    loaded = CoveringResult.load(tmp_path / "run", paper_family)
    assert [e.task for e in loaded.policy_values] == [e.task for e in result.policy_values]
    assert loaded.cover_size == result.cover_size and loaded.config == result.config
    np.testing.assert_array_equal(loaded.policy_values[0].policy.probabilities,
                                  result.policy_values[0].policy.probabilities)
    (tmp_path / "run" / "covering.json").write_text("{")
    with pytest.raises(ValueError, match="covering.json: not valid JSON"):
        CoveringResult.load(tmp_path / "run", paper_family)


def test_training_reports_an_unreachable_coverage(paper_family):
    with pytest.raises(RuntimeError, match="coverage error stayed above"):
        train(paper_family, ExactLPOracle(paper_family), noise_check(paper_family),
              ExactSimultaneouslyFeasibleOracle(paper_family), delta=0.3, eps=0.0, xi=0.0, max_doublings=1)


def test_a_learner_breaking_the_relaxed_feasibility_contract_is_reported(paper_family):
    lp = ExactLPOracle(paper_family)

    def loose_learner(task, seed=0, cost_limit=None):
        # A learner that optimises against a looser limit than asked, as an under-trained one effectively does.
        return lp(task, seed=seed, cost_limit=task.cost_limit + 1.0)

    with pytest.raises(RuntimeError, match="relaxed eps-feasible limit"):
        train(paper_family, loose_learner, noise_check(paper_family), ExactSimultaneouslyFeasibleOracle(paper_family),
              delta=0.3, eps=0.05, xi=0.05, seed=0)


def test_calibrated_value_errors_are_the_largest_changes_over_each_ball(paper_family, result, tmp_path):
    """calibrate_value_errors against a direct computation; they survive a save and load; a family without exact
    values is refused."""
    from cmdp_envs.meta.covering import calibrate_value_errors

    check = noise_check(paper_family)
    tasks = paper_family.sample(300, seed=5)
    calibrated = calibrate_value_errors(paper_family, result.policy_values, result.safe_policy, tasks, check,
                                        eps=0.02, max_ball_tasks=40, max_tasks=50)
    safe = result.safe_policy.probabilities
    for entry in calibrated:
        ball = [entry.task] + [task for task in tasks if abs(task.noise - entry.task.noise) <= 0.02][:40]
        changes = []
        for task in ball:
            cmdp = paper_family.tabular(task)
            (u, c), (u_s, c_s) = evaluate_policy(cmdp, entry.policy.probabilities), evaluate_policy(cmdp, safe)
            changes.append((u - entry.reward_value, 1.5 - c - entry.margin, u_s - entry.safe_reward_value,
                            1.5 - c_s - entry.safe_margin))
        errors = entry.value_errors
        assert errors.n_tasks == len(ball) and 10 < len(ball) <= 41
        np.testing.assert_allclose([errors.reward, errors.margin, errors.safe_reward, errors.safe_margin],
                                   np.abs(changes).max(axis=0), rtol=1e-9, atol=1e-12)
        assert errors.margin > 0 and errors.safe_margin > 0, "values move across a ball of noise width 0.04"
        first = paper_family.tabular(tasks[0])
        (u, c), (u_s, c_s) = evaluate_policy(first, entry.policy.probabilities), evaluate_policy(first, safe)
        assert errors.across_tasks.shape == (50, 4)
        np.testing.assert_allclose(errors.across_tasks[0], [u_s, 1.5 - c_s, u, 1.5 - c])
    saved = dataclasses.replace(result, policy_values=calibrated)
    saved.save(tmp_path / "calibrated")
    loaded = CoveringResult.load(tmp_path / "calibrated", paper_family)
    for before, after in zip(calibrated, loaded.policy_values):
        assert after.value_errors.as_dict() == before.value_errors.as_dict()
    assert np.all(errors.half_widths == 0), "exact values"


class Rollouts:
    """A tabular policy seen only through act(): its values can only be estimated by rollouts."""

    def __init__(self, policy):
        self.policy = policy

    def act(self, observation):
        return self.policy.act(observation)


def test_calibration_by_monte_carlo_bounds_the_exact_changes(paper_family, result):
    """Policies without exact values are calibrated by rollouts: every ball error is the estimated change plus its
    half-width, which covers the exact change; the table keeps the estimates and their half-widths."""
    from cmdp_envs.meta.covering import calibrate_value_errors

    tasks = paper_family.sample(300, seed=5)
    seen_through_rollouts = [dataclasses.replace(entry, policy=Rollouts(entry.policy)) for entry in result.policy_values]
    kwargs = dict(eps=0.02, max_ball_tasks=3, max_tasks=4)
    estimated = calibrate_value_errors(paper_family, seen_through_rollouts, Rollouts(result.safe_policy), tasks,
                                       noise_check(paper_family), n_episodes=200, horizon=100, **kwargs)
    exact = calibrate_value_errors(paper_family, result.policy_values, result.safe_policy, tasks,
                                   noise_check(paper_family), **kwargs)
    for rollouts, values in zip(estimated, exact):
        e, x = rollouts.value_errors, values.value_errors
        assert e.n_tasks == x.n_tasks == 4
        assert np.all(e.half_widths > 0) and np.all(np.abs(e.across_tasks - x.across_tasks) <= 2 * e.half_widths)
        for name in ("reward", "margin", "safe_reward", "safe_margin"):
            assert getattr(e, name) >= getattr(x, name), name
