"""DOPE and the authors' DOPE+ (meta/dope.py) on the gridworld, every executed policy exact."""

import dataclasses
import math

import numpy as np
import pytest

from cmdp_envs.meta.covering import CoveringResult
from cmdp_envs.meta.dope import DOPE, AuthorsDOPEPlus
from cmdp_envs.meta.policies import TabularPolicy
from cmdp_envs.tabular import evaluate_policy, solve_cmdp, solve_regularised_cmdp


@pytest.fixture(scope="module")
def training(paper_family):
    """Only pi_s matters to DOPE: the authors' one, the regularised optimum at noise 0.4."""
    pi_s = solve_regularised_cmdp(paper_family.tabular(paper_family.task(noise=0.4))).policy
    return CoveringResult(policy_values=(), safe_policy=TabularPolicy(pi_s), n_samples=1, doublings=0,
                          coverage_error=0.0, config={})


def test_dope_as_analysed_never_leaves_the_baseline_here(paper_family, training):
    """K0 = S^2 A H^3 / Delta_n^2 is billions of episodes on the gridworld: the whole run is pi_s."""
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    baseline = training.safe_policy.probabilities
    assert DOPE().warmup_episodes(cmdp, baseline) > 1e9
    run = DOPE().run_on_tabular(cmdp, training, 500, 100, np.random.SeedSequence(0))
    assert len(run.starts) == 1 and run.details == ({"plan": 0},)
    assert (run.reward_values[0], run.cost_values[0]) == evaluate_policy(cmdp, baseline)


def test_the_plan_is_optimistic_yet_feasible_and_tends_to_the_optimum(paper_family, training):
    """With counts of a kernel seen 1e14 times the radii and bonuses vanish: the plan is the LP optimum's value and
    meets the limit. With few counts the pessimistic cost rules every plan out, and DOPE keeps its baseline."""
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    baseline = training.safe_policy.probabilities
    plan = DOPE().plan(cmdp, cmdp.P * 1e14, baseline, n_episodes=40_000)
    reward_value, cost_value = evaluate_policy(cmdp, plan)
    assert cost_value <= cmdp.cost_limit and reward_value == pytest.approx(solve_cmdp(cmdp).reward_value, rel=1e-3)
    assert DOPE().plan(cmdp, cmdp.P * 1000, baseline, n_episodes=40_000) is baseline
    # A baseline without margin gives DOPE nothing to explore with, whatever the counts.
    tight = dataclasses.replace(cmdp, cost_limit=evaluate_policy(cmdp, baseline)[1])
    assert DOPE(warmup=0).plan(tight, cmdp.P * 1e14, baseline, n_episodes=40_000) is baseline


def test_plans_follow_the_doubling_schedule_and_runs_repeat(paper_family, training):
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    method = DOPE(warmup=300, max_block=128)
    run = method.run_on_tabular(cmdp, training, 2000, 50, np.random.SeedSequence(1))
    again = method.run_on_tabular(cmdp, training, 2000, 50, np.random.SeedSequence(1))
    assert run.starts[0] == 0 and run.details[0] == {"plan": 0} and run.starts[1] == 300
    plans = [detail["plan"] for detail in run.details]
    assert plans == sorted(plans) and plans[-1] >= 2, "re-planned as counts doubled"
    assert np.array_equal(run.starts, again.starts) and run.details == again.details
    assert run.n_episodes == 2000
    with pytest.raises(ValueError, match="delta"):
        DOPE(delta=1.5)
    with pytest.raises(ValueError, match="warmup"):
        dataclasses.replace(DOPE(), warmup=-1)


def test_authors_dope_plus_plans_with_their_bonuses_after_their_warm_up(paper_family, training):
    """The gridworld authors' DOPE+: pi_s for 18,000 episodes; then, with counts of a kernel seen 1e12 times per pair
    (transition radii about 1e-10), the plan is the LP optimum of the model with their cost bonus
    ``b = 8 e / sqrt(1 - gamma) + 2 L sqrt(K / ((1 - gamma) A)) / m`` and capped reward, computed here by hand."""
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    baseline = training.safe_policy.probabilities
    run = AuthorsDOPEPlus().run_on_tabular(cmdp, training, 500, 100, np.random.SeedSequence(0))
    assert len(run.starts) == 1 and run.details == ({"plan": 0},)
    m, L, S, A = 1e12 - 1, 1e-4, 49, 4
    e = math.sqrt(4 * L * S / m) + 14 * L * S / (3 * m)
    bonus = 8 * e / math.sqrt(0.1) + 2 * L * math.sqrt(40_000 / (0.1 * A)) / m
    model = dataclasses.replace(cmdp, c=cmdp.c + bonus, r=np.minimum(cmdp.r + bonus / 0.01, 1 + math.sqrt(5e-4)))
    plan = AuthorsDOPEPlus().plan(cmdp, cmdp.P * 1e12, baseline, n_episodes=40_000)
    reward_value, cost_value = evaluate_policy(model, plan)
    optimum = solve_cmdp(model)
    assert cost_value <= cmdp.cost_limit + 1e-6
    assert reward_value == pytest.approx(optimum.reward_value, rel=1e-5)


def test_authors_dope_plus_runs_repeat_and_replan_as_counts_double(paper_family, training):
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    method = AuthorsDOPEPlus(warmup=300, max_block=128)
    run, again = (method.run_on_tabular(cmdp, training, 2000, 50, np.random.SeedSequence(1)) for _ in range(2))
    assert run.starts[1] == 300 and [detail["plan"] for detail in run.details][-1] >= 2
    assert np.array_equal(run.starts, again.starts) and np.array_equal(run.cost_values, again.cost_values)
    assert run.lengths.sum() == 2000
    # Counts come from rollouts of the run's horizon unless rollout_steps (the authors': 600) says otherwise.
    same, longer = (dataclasses.replace(method, rollout_steps=steps).run_on_tabular(
        cmdp, training, 2000, 50, np.random.SeedSequence(1)) for steps in (50, 600))
    assert np.array_equal(same.starts, run.starts) and same.details == run.details
    assert not (np.array_equal(longer.starts, run.starts) and longer.details == run.details)
    with pytest.raises(ValueError, match="rollout_steps"):
        AuthorsDOPEPlus(rollout_steps=1)
    with pytest.raises(ValueError, match="bonus_log"):
        AuthorsDOPEPlus(bonus_log=0.0)
