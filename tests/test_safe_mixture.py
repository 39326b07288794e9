"""Algorithm 2 (safe mixture testing phase) and PCE: constants, the step-by-step object, and the drivers."""

import dataclasses
import math

import numpy as np
import pytest

from cmdp_envs.meta.covering import CoveringResult, PolicyValue, ValueErrors
from cmdp_envs.meta.oracles import DistanceCheck
from cmdp_envs.meta.policies import TabularPolicy
from cmdp_envs.meta.safe_mixture import (
    CertifiedConstants,
    PaperConstants,
    PracticalConstants,
    SafeMixture,
    SafeMixtureMethod,
    run_on_tabular,
)
from cmdp_envs.tabular import evaluate_policy, solve_cmdp


def entry(reward, margin, safe_reward, safe_margin, policy=None, task=None):
    return PolicyValue(task=task, policy=policy, reward_value=reward, margin=margin,
                       safe_reward_value=safe_reward, safe_margin=safe_margin)


def test_paper_constants_follow_eq_5_to_7():
    paper = PaperConstants(eps=1e-5, delta=0.1, value_range=1.0)
    L = 1 / 0.1 + 2 * 0.9 / 0.01
    assert L == pytest.approx(190)
    beta, _ = paper.radii(100, 1000, 0.9, pooled=False, counted=100)
    assert beta == pytest.approx(math.sqrt(2 * math.log(4000 / 0.1) / (100 * 0.01)) + 1e-5 * (L + 1))
    v = 1.0
    weights = paper.weights(v, 0.9)
    first = (v - 2e-5 * (L + 2)) / (v - 2e-5 * (L + 2) + 20)
    ratio = (2 * v + (4 * L + 9) * 1e-5) / (3 * v)
    assert weights[0] == pytest.approx(first)
    assert len(weights) == math.floor(math.log(1e-5) / math.log(ratio)) + 1
    # alpha rises to 1 - (4L + 9) eps / v_s, the fixed point of Eq. 6 (1 - O(eps)).
    assert np.all(np.diff(weights) > 0) and weights[-1] == pytest.approx(1 - (4 * L + 9) * 1e-5 / v, abs=1e-3)
    # Every value term scales with the per-step range R.
    scaled = PaperConstants(eps=1e-5, delta=0.1, value_range=10.0)
    assert scaled.radii(100, 1000, 0.9, pooled=False, counted=100)[0] == pytest.approx(10 * beta)
    assert scaled.weights(10 * v, 0.9) == pytest.approx(weights)
    # The gridworld's margins are far below 2 eps R (L + 2) at eps = 0.01: the faithful setting never mixes.
    assert PaperConstants(eps=0.01, value_range=10).weights(0.6, 0.9) == []
    # C_l >= 1 makes m(l) = log_{C_l} eps negative: no raise at all.
    assert (0.5 - 2 * 0.02 * 8) > 0 and (2 * 0.5 + 33 * 0.02) / 1.5 >= 1, "alpha_1 > 0 but C_l >= 1 (L = 6)"
    assert PaperConstants(eps=0.02).weights(0.5, 0.5) == []
    assert paper.episodes_before_raise(0.0, 1000, 0.9) == math.inf


def test_practical_constants_match_the_authors_schedule():
    practical = PracticalConstants()
    assert practical.radii(5000, 40_000, 0.9, pooled=True, counted=999) == (math.inf, math.inf)
    reward_radius, cost_radius = practical.radii(1000, 40_000, 0.9, pooled=False, counted=1000)
    assert reward_radius == pytest.approx(math.sqrt(4) + 0.08) and cost_radius == pytest.approx(math.sqrt(0.3) + 0.01)
    assert practical.radii(1500, 40_000, 0.9, pooled=True, counted=1000)[1] == pytest.approx(math.sqrt(0.1) + 0.01)
    assert practical.episodes_before_raise(0.5, 40_000, 0.9) == 1000
    assert practical.episodes_before_raise(0.2, 40_000, 0.9) == pytest.approx(2500)
    assert practical.episodes_before_raise(0.01, 40_000, 0.9) == 5200
    m_s = 0.6
    weights = practical.weights(m_s, 0.9)
    assert weights[0] == pytest.approx((m_s - 0.02) / (m_s - 0.02 + 2))
    assert weights[1] == pytest.approx(3 * m_s * weights[0] / ((weights[0] + 2) * m_s + 3 * 0.01))
    assert len(weights) == 1 + math.floor(math.log(0.01) / math.log(2 / 3))


def feed(algorithm, n, reward, margin):
    for _ in range(n):
        algorithm.observe(reward, algorithm.cost_limit - margin)


def test_mixture_weight_rises_when_observations_agree_with_predictions():
    U = [entry(50.0, 0.0, 45.0, 0.6), entry(52.0, 0.1, 44.0, 0.5)]
    algorithm = SafeMixture(U, cost_limit=1.5, gamma=0.9, n_episodes=100_000, constants=PracticalConstants())
    proposal = algorithm.propose()
    assert (proposal.candidate, proposal.alpha) == (1, 0.0), "line 3: the highest u first, alpha_0 = 0"
    assert (proposal.predicted_reward, proposal.predicted_margin) == (44.0, 0.5)
    assert algorithm.episodes_before_change() == 1002
    feed(algorithm, 1001, 44.0, 0.5)
    assert algorithm.m == 0
    feed(algorithm, 1, 44.0, 0.5)
    proposal = algorithm.propose()
    alpha = PracticalConstants().weights(0.5, 0.9)[0]
    assert algorithm.m == 1 and proposal.alpha == pytest.approx(alpha)
    assert proposal.predicted_margin == pytest.approx(alpha * 0.1 + (1 - alpha) * 0.5)


def test_elimination_and_pooled_safe_policy_samples():
    """The pooled bookkeeping (the authors' is traced by hand below)."""
    U = [entry(50.0, 0.0, 45.0, 0.6), entry(52.0, 0.1, 44.0, 0.5)]
    algorithm = SafeMixture(U, cost_limit=1.5, gamma=0.9, n_episodes=100_000,
                            constants=PracticalConstants(bookkeeping="pooled"))
    feed(algorithm, 1002, 44.5, 0.55)  # pi_s, pooled: within both radii of candidate 1's prediction
    assert algorithm.m == 1
    feed(algorithm, 999, 20.0, 0.5)  # the mixture returns far less than predicted; no test before n = 1000
    assert algorithm.candidate == 1
    feed(algorithm, 1, 20.0, 0.5)
    assert algorithm.eliminated == [1] and algorithm.candidate == 0 and algorithm.m == 0
    # pi_s's 1002 pooled samples count for the next candidate: one more agreeing episode raises its alpha.
    feed(algorithm, 1, 45.0, 0.6)
    assert algorithm.m == 1
    feed(algorithm, 1000, 0.0, -5.0)
    assert algorithm.candidate is None and algorithm.eliminated == [1, 0]
    assert algorithm.propose().alpha == 0.0, "with U exhausted, pi_s runs"


def test_unsafe_pce_runs_candidates_directly():
    U = [entry(50.0, 0.0, 45.0, 0.6), entry(49.0, 0.2, 45.0, 0.6)]
    algorithm = SafeMixture(U, 1.5, 0.9, 10_000, PracticalConstants(), mixture=False)
    assert algorithm.propose().alpha == 1.0 and algorithm.propose().predicted_reward == 50.0
    feed(algorithm, 5000, 50.0, 0.0)
    assert algorithm.propose().alpha == 1.0 and algorithm.m == 0 and algorithm.candidate == 0
    while not algorithm.eliminated:  # the candidate turns out infeasible: eliminated, no mixing
        feed(algorithm, 1, 50.0, -1.0)
    assert algorithm.eliminated == [0] and algorithm.candidate == 1 and algorithm.propose().alpha == 1.0


def test_paper_constants_raise_exactly_m_l_times_and_survive_negative_margins():
    paper = PaperConstants(eps=1e-5, delta=0.1, value_range=1.0)
    U = [entry(3.0, 0.5, 1.0, 1.0)]
    algorithm = SafeMixture(U, cost_limit=1.0, gamma=0.5, n_episodes=200_000, constants=paper)
    weights = paper.weights(1.0, 0.5)
    first_raise = algorithm.episodes_before_change()
    assert first_raise == math.ceil(paper.episodes_before_raise(1.0, 200_000, 0.5) + 2)
    while algorithm.k < 190_000:  # observations equal to the predictions: never eliminated, always raised
        proposal = algorithm.propose()
        feed(algorithm, min(algorithm.episodes_before_change(), 190_000 - algorithm.k), proposal.predicted_reward,
             proposal.predicted_margin)
    assert algorithm.m == len(weights) and algorithm.alpha == weights[-1], "line 11 stops at m(l)"
    assert algorithm.episodes_before_change() == 200_000
    # A candidate with a very negative margin: the predicted mixture margin turns negative and raising stops.
    algorithm = SafeMixture([entry(3.0, -30.0, 1.0, 1.0)], 1.0, 0.5, 200_000, paper)
    feed(algorithm, first_raise, 1.0, 1.0)
    proposal = algorithm.propose()
    assert algorithm.m == 1 and proposal.predicted_margin < 0
    assert algorithm.episodes_before_change() == 200_000


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        SafeMixture([], 1.5, 0.9, 10, PracticalConstants())
    algorithm = SafeMixture([entry(1.0, 0.0, 1.0, 0.5)], 1.5, 0.9, 10, PracticalConstants())
    with pytest.raises(ValueError, match="finite"):
        algorithm.observe(math.nan, 0.0)
    assert algorithm.k == 0
    feed(algorithm, 10, 1.0, 0.5)
    with pytest.raises(ValueError, match="all K = 10 episodes"):
        algorithm.observe(1.0, 1.0)
    with pytest.raises(ValueError, match="eps"):
        PaperConstants(eps=0.0)


@pytest.fixture(scope="module")
def small_covering(paper_family):
    """A hand-built Û on the gridworld: LP policies of three noise levels and a full-support pi_s."""
    tasks = [paper_family.task(noise=x) for x in (0.26, 0.30, 0.34)]
    safe_cmdp = paper_family.tabular(paper_family.task(noise=0.4))
    safe = 0.98 * solve_cmdp(safe_cmdp).policy + 0.005
    entries = []
    for task in tasks:
        cmdp = paper_family.tabular(task)
        policy = solve_cmdp(cmdp).policy
        (u, c), (u_s, c_s) = evaluate_policy(cmdp, policy), evaluate_policy(cmdp, safe)
        entries.append(PolicyValue(task, TabularPolicy(policy), u, 1.5 - c, u_s, 1.5 - c_s))
    return CoveringResult(tuple(entries), TabularPolicy(safe), 3, 0, 0.0, {})


def test_tabular_driver_reports_exact_values_of_every_executed_mixture(paper_family, small_covering):
    cmdp = paper_family.tabular(paper_family.task(noise=0.30796535))
    constants = PracticalConstants(min_episodes=200, raise_min=200, raise_max=400)

    def run(seed):
        algorithm = SafeMixture(small_covering.policy_values, 1.5, 0.9, 6000, constants)
        return algorithm, run_on_tabular(algorithm, small_covering, cmdp, horizon=100, seed=seed)

    algorithm, test_run = run(3)
    assert algorithm.k == 6000 == test_run.lengths.sum()
    assert len(test_run.starts) > 3, "alpha was raised several times"
    safe_values = np.array(evaluate_policy(cmdp, small_covering.safe_policy.probabilities))
    for detail, reward_value, cost_value in zip(test_run.details, test_run.reward_values, test_run.cost_values):
        # An episode-level mixture: its values are the weighted values of its members.
        alpha, values = detail["alpha"], (1 - detail["alpha"]) * safe_values
        if detail["candidate"] is not None:
            member = small_covering.policy_values[detail["candidate"]].policy.probabilities
            values = values + alpha * np.array(evaluate_policy(cmdp, member))
        assert (reward_value, cost_value) == pytest.approx(tuple(values))
    _, again = run(3)
    assert np.array_equal(again.starts, test_run.starts) and again.details == test_run.details


def test_paper_constants_execute_only_the_safe_policy(paper_family, small_covering):
    cmdp = paper_family.tabular(paper_family.task(noise=0.34453611))
    algorithm = SafeMixture(small_covering.policy_values, 1.5, 0.9, 3000, PaperConstants(value_range=10))
    test_run = run_on_tabular(algorithm, small_covering, cmdp, horizon=100, seed=0)
    assert {detail["alpha"] for detail in test_run.details} == {0.0}
    assert test_run.violating_policies == 0


@pytest.mark.slow
def test_the_safe_mixture_under_the_meta_test_protocol(paper_family, small_covering):
    """LearnedSafeMixture runs Algorithm 2 through the protocol's recording envs: K whole episodes, each mixture
    declared (labelled with its candidate and alpha) before it runs, pi_s alone first; the same seed repeats the
    run. The protocol's Monte Carlo check of each executed mixture covers its exact discounted cost, the mixture of
    its members' exact costs."""
    from cmdp_envs.meta.safe_mixture import LearnedSafeMixture
    from cmdp_envs.meta.test_time import meta_test

    task = paper_family.task(noise=0.3)
    cmdp = paper_family.tabular(task)
    method = LearnedSafeMixture("safe_mixture", small_covering, PracticalConstants(min_episodes=20, raise_min=20,
                                                                                   raise_max=20))
    (result,), (again,) = (meta_test(method, paper_family, [task], budget=80, seed=0, n_check_episodes=400,
                                     confidence=0.99) for _ in range(2))
    np.testing.assert_array_equal(result.costs, again.costs)
    assert len(result.returns) == 80 and result.unfinished == 0 and result.straddling == 0
    labels = [check.label for check in result.executed]
    assert labels[0] == {"candidate": None, "alpha": 0.0} and max(label["alpha"] for label in labels) > 0
    assert all(a != b for a, b in zip(labels, labels[1:])), "a mixture is declared when it changes, not per phase"
    assert sum(check.episodes for check in result.executed) == 80
    safe_cost = evaluate_policy(cmdp, small_covering.safe_policy.probabilities)[1]
    for check in result.executed:
        exact = (1 - check.label["alpha"]) * safe_cost
        if check.label["alpha"] > 0:
            candidate = small_covering.policy_values[check.label["candidate"]].policy
            exact += check.label["alpha"] * evaluate_policy(cmdp, candidate.probabilities)[1]
        assert check.cost.confidence == 0.99
        assert abs(check.cost.value - exact) <= check.cost.half_width + 1e-3  # 200-step episodes: 0.9^200 truncation


def test_the_authors_bookkeeping_against_a_hand_computed_trace():
    """Two candidates (u = 10, then 5), pi_s's margin 1 on both, d = 1.5; radii sqrt(4/n) (a phase's own samples)
    and sqrt(1/n) (pi_s's pool), at least 3 episodes of a phase before eliminating, 5 before raising; rewards always
    as predicted. Worked by hand from the authors' code:

    * phase A (candidate 0, alpha 0), margins 0.3, 0.3, 0.3, 1.7, 1.7: the running means miss 1 by 0.7, 0.35, 0.14,
      inside sqrt(4/3), sqrt(4/4), sqrt(4/5); after the fifth episode alpha rises to 1/3;
    * phase B (alpha 1/3, predicted margin 0.4/3 + 2/3 = 0.8), margins -2: eliminated at its third episode
      (2.8 >= sqrt(4/3));
    * phase C (candidate 1, alpha 0), margins 0: the pool of pi_s's eight samples has mean 4.3/8 = 0.5375, which
      misses 1 by 0.4625 >= sqrt(1/8) at the phase's third episode: eliminated, and pi_s runs alone after.

    With the pooled bookkeeping the first candidate is held to the pool's radius from the start, and phase A ends at
    its third episode (0.7 >= sqrt(1/3))."""
    values = (PolicyValue(None, None, 10.0, 0.4, 8.0, 1.0), PolicyValue(None, None, 5.0, 0.4, 8.0, 1.0))

    def trace(bookkeeping, margins):
        constants = PracticalConstants(eps=0.01, reward_lipschitz=0.0, cost_lipschitz=0.0, min_episodes=3,
                                       reward_scale=1e6, cost_scale=4.0, pooled_cost_scale=1.0, raise_scale=0.0,
                                       raise_min=3, raise_max=3, bookkeeping=bookkeeping)
        algorithm = SafeMixture(values, 1.5, 0.9, 100, constants)
        proposals = []
        for margin in margins:
            proposal = algorithm.propose()
            proposals.append((proposal.candidate, round(proposal.alpha, 12)))
            reward = proposal.predicted_reward if proposal.candidate is not None else 0.0  # pi_s alone: no test
            algorithm.observe(reward, 1.5 - margin)
        return proposals

    margins = [0.3, 0.3, 0.3, 1.7, 1.7] + [-2.0] * 3 + [0.0] * 3 + [0.0]
    third = round(1 / 3, 12)
    assert trace("authors", margins) == [(0, 0.0)] * 5 + [(0, third)] * 3 + [(1, 0.0)] * 3 + [(None, 0.0)]
    assert trace("pooled", margins)[:4] == [(0, 0.0)] * 3 + [(1, 0.0)]
    assert PracticalConstants().name == "practical" and PracticalConstants(bookkeeping="pooled").name == (
        "practical_pooled")
    with pytest.raises(ValueError, match="bookkeeping"):
        PracticalConstants(bookkeeping="mine")


def test_the_certified_raise_against_a_hand_computed_certificate():
    """pi_s runs alone while its returns agree with the prediction; at the phase's minimum the weight goes to
    LCB_s / (LCB_s - b_l), with LCB_s from pi_s's margin sequence and b_l the smallest candidate margin over the
    calibration rows whose pi_s values lie in both of pi_s's intervals (row 0 here; rows 1 and 2 miss one each)."""
    table = np.array([[1.0, 0.5, 9.0, -0.2],   # matches pi_s's values: b_l = -0.2
                      [1.0, 1.2, 9.0, -5.0],   # pi_s's margin outside its interval
                      [1.8, 0.5, 9.0, -3.0]])  # pi_s's return outside its interval
    errors = ValueErrors(0.01, 0.01, 0.01, 0.01, n_tasks=3, across_tasks=table)
    values = (PolicyValue(None, None, 1.2, 0.0, 1.0, 0.5, value_errors=errors),)
    constants = CertifiedConstants(reward_range=(0.0, 0.2), cost_range=(0.0, 0.2), delta=0.1, min_episodes=200)
    algorithm = SafeMixture(values, 1.5, 0.9, 1000, constants)
    rng = np.random.default_rng(0)
    returns, margins = 1.0 + rng.uniform(-0.01, 0.01, 200), 0.5 + rng.uniform(-0.01, 0.01, 200)
    reward_sequence, margin_sequence = constants.sequences(1.5, 0.9, 0.1 / 4)
    for step, (reward, margin) in enumerate(zip(returns, margins)):
        assert algorithm.propose().alpha == 0.0 and algorithm.candidate == 0, f"no raise before episode {step}"
        algorithm.observe(reward, 1.5 - margin)
        reward_sequence.update(reward)
        margin_sequence.update(margin)
    assert reward_sequence.lower <= 1.0 <= reward_sequence.upper < 1.8
    assert margin_sequence.lower <= 0.5 <= margin_sequence.upper < 1.2 and margin_sequence.lower > 0
    lcb = margin_sequence.lower
    assert algorithm.propose().alpha == pytest.approx(lcb / (lcb + 0.2), rel=1e-12)
    with pytest.raises(ValueError, match="safe_policy_ran"):
        algorithm.observe(1.0, 1.0)
    algorithm.observe(1.0, 1.0, safe_policy_ran=False)  # a draw of pi_l: pi_s's sequences do not move
    assert algorithm._safe_sequences[1].n == 200
    uncalibrated = (PolicyValue(None, None, 1.2, 0.0, 1.0, 0.5),)
    with pytest.raises(ValueError, match=r"calibrated value errors .* entries \[0\]"):
        SafeMixture(uncalibrated, 1.5, 0.9, 1000, constants)
    with pytest.raises(ValueError, match="min_raise"):
        CertifiedConstants((0.0, 10.0), (0.0, 10.0), min_raise=0.0)
    with pytest.raises(ValueError, match=r"cost_range must be \(low, high\) with finite low < high, got \(1, 1\)"):
        CertifiedConstants((0.0, 10.0), (1, 1))


def test_the_certified_setting_raises_and_stays_feasible_on_the_gridworld(paper_family, small_covering):
    """With value errors calibrated on sampled tasks, every executed mixture is feasible (exact values) and the
    weight rises well above 0, so the regret is below pi_s's alone."""
    from cmdp_envs.meta.covering import calibrate_value_errors

    tasks = paper_family.sample(2000, seed=1)
    calibrated = dataclasses.replace(small_covering, policy_values=calibrate_value_errors(
        paper_family, small_covering.policy_values, small_covering.safe_policy, tasks,
        DistanceCheck(paper_family, parameter="noise"), eps=0.02))
    cmdp = paper_family.tabular(paper_family.task(noise=0.30796535))
    constants = CertifiedConstants(reward_range=(0.0, 10.0), cost_range=(0.0, 10.0))
    test_run = SafeMixtureMethod(constants).run_on_tabular(cmdp, calibrated, 20_000, 100, np.random.SeedSequence(0))
    assert test_run.violating_policies == 0 and test_run.max_cost_value <= 1.5
    assert max(detail["alpha"] for detail in test_run.details) > 0.3
    optimum = solve_cmdp(cmdp).reward_value
    safe_reward = evaluate_policy(cmdp, small_covering.safe_policy.probabilities)[0]
    assert test_run.regret(optimum)[-1] < 0.8 * 20_000 * (optimum - safe_reward)


def test_the_certified_setting_under_the_meta_test_protocol(paper_family, small_covering):
    """LearnedSafeMixture runs the certified setting through any env (each episode tells it whether pi_s ran), and
    refuses a family whose costs are not discounted like its rewards, since the certificate's ranges assume so."""
    import copy

    from cmdp_envs.meta.covering import calibrate_value_errors
    from cmdp_envs.meta.safe_mixture import LearnedSafeMixture
    from cmdp_envs.meta.test_time import meta_test

    calibrated = dataclasses.replace(small_covering, policy_values=calibrate_value_errors(
        paper_family, small_covering.policy_values, small_covering.safe_policy, paper_family.sample(500, seed=2),
        DistanceCheck(paper_family, parameter="noise"), eps=0.02))
    constants = CertifiedConstants(reward_range=(0.0, 10.0), cost_range=(0.0, 10.0), min_episodes=20)
    method = LearnedSafeMixture("certified", calibrated, constants)
    task = paper_family.task(noise=0.3)
    (result,) = meta_test(method, paper_family, [task], budget=60, seed=0, n_check_episodes=100)
    assert len(result.returns) == 60 and sum(check.episodes for check in result.executed) == 60
    assert result.executed[0].label == {"candidate": None, "alpha": 0.0}
    episode_costs = copy.copy(paper_family)
    episode_costs.cost_semantics = "undiscounted"
    with pytest.raises(ValueError, match="cost discount is 1 and its gamma 0.9"):
        meta_test(method, episode_costs, [task], budget=10, seed=0, n_check_episodes=10)
