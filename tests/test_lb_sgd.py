"""LB-SGD: its policy gradients against finite differences, its safe step by hand, its run under the meta-test
protocol (feasible, improving, reproducible), and the pi_s options it needs."""

import math

import numpy as np
import pytest
import scipy.stats

from cmdp_envs.meta import lb_sgd
from cmdp_envs.meta.covering import CoveringResult
from cmdp_envs.meta.estimators import exact_advantages, trajectory_advantages
from cmdp_envs.meta.oracles import ExactSimultaneouslyFeasibleOracle
from cmdp_envs.meta.policies import TabularPolicy
from cmdp_envs.tabular import EpisodeSampler, evaluate_policy


def training_with(safe_policy: np.ndarray) -> CoveringResult:
    """Training artefacts that hold only pi_s: all LB-SGD reads of them."""
    return CoveringResult(policy_values=(), safe_policy=TabularPolicy(safe_policy), n_samples=0, doublings=0,
                          coverage_error=0.0, config={})


@pytest.fixture(scope="module")
def safe_policy(paper_family):
    oracle = ExactSimultaneouslyFeasibleOracle(paper_family, iterations=300,
                                               reference_tasks=[paper_family.task(noise=0.4)], exploration=0.02)
    result = oracle([paper_family.task(noise=0.3)], xi=0.05)
    assert len(result.reward) == 1, "values are reported for U only"
    # xi-feasible on the reference task too, and every action keeps probability >= rho / A.
    _, cost = evaluate_policy(paper_family.tabular(paper_family.task(noise=0.4)), result.policy.probabilities)
    assert cost <= 1.5 - 0.05
    assert result.policy.probabilities.min() >= 0.02 / 4 - 1e-12
    return result.policy.probabilities


def test_lb_sgd_stays_feasible_and_improves(paper_family, safe_policy):
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    method = lb_sgd.LBSGD(lb_sgd.LBSGDConfig(smoothness=0.1, n_episodes=200))
    run = method.run_on_tabular(cmdp, training_with(safe_policy), 8000, 100, np.random.SeedSequence(0))
    assert run.lengths.sum() == 8000 and len(run.starts) == 40
    assert run.violating_policies == 0
    assert run.reward_values[-1] > run.reward_values[0] + 0.3
    again = method.run_on_tabular(cmdp, training_with(safe_policy), 8000, 100, np.random.SeedSequence(0))
    assert np.array_equal(again.reward_values, run.reward_values)
    other = method.run_on_tabular(cmdp, training_with(safe_policy), 8000, 100, np.random.SeedSequence(1))
    assert not np.array_equal(other.reward_values, run.reward_values)


def test_policy_gradients_match_finite_differences(paper_family, safe_policy):
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    logits = np.log(safe_policy)
    reward_gradient, cost_gradient = lb_sgd.policy_gradients(safe_policy, exact_advantages(cmdp, safe_policy), 0.9)
    direction = np.random.default_rng(0).standard_normal(logits.shape)

    def values(theta):
        policy = np.exp(theta - theta.max(axis=1, keepdims=True))
        return np.array(evaluate_policy(cmdp, policy / policy.sum(axis=1, keepdims=True)))

    h = 1e-5
    numeric = (values(logits + h * direction) - values(logits - h * direction)) / (2 * h)
    assert numeric == pytest.approx([(reward_gradient * direction).sum(), (cost_gradient * direction).sum()],
                                    rel=1e-5, abs=1e-8)


def test_lb_sgd_needs_full_support(paper_family):
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    deterministic = np.eye(4)[np.zeros(cmdp.n_states, dtype=int)]
    with pytest.raises(ValueError, match="full support"):
        lb_sgd.LBSGD().run_on_tabular(cmdp, training_with(deterministic), 100, 100, np.random.SeedSequence(0))
    with pytest.raises(ValueError, match="barrier"):
        lb_sgd.LBSGDConfig(barrier=0.0)


def test_safe_step_size_by_hand(paper_family, safe_policy):
    """One step against the formula: with margin alpha and direction g = grad J_r - eta grad J_c / alpha, the step is
    min(1 / M_B, alpha / (2 |<grad J_c, g>| + sqrt(alpha M) |g|)); a tiny M leaves the second term binding and a huge
    one the first."""
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    logits = np.log(safe_policy)
    for smoothness in (1e-6, 1e6):
        config = lb_sgd.LBSGDConfig(smoothness=smoothness, n_episodes=50)
        new_logits, step = lb_sgd.lb_sgd_step(cmdp, logits, config, np.random.default_rng(3))
        # The same sample again, to recompute the step by hand.
        trajectories = EpisodeSampler(cmdp, safe_policy, config.horizon).sample_trajectories(
            50, seed=np.random.default_rng(3))
        estimate = trajectory_advantages(cmdp, trajectories)
        costs = trajectories.costs @ cmdp.gamma ** np.arange(config.horizon)
        margin = 1.5 - estimate.cost_value - scipy.stats.norm.ppf(0.95) * costs.std(ddof=1) / math.sqrt(50)
        grad_r, grad_c = lb_sgd.policy_gradients(safe_policy, estimate, cmdp.gamma)
        direction = grad_r - config.barrier * grad_c / margin
        norm = np.linalg.norm(direction)
        slope = float((grad_c * direction).sum())
        barrier_smoothness = (smoothness + 2 * config.barrier * smoothness / margin
                              + 4 * config.barrier * (slope / norm) ** 2 / margin**2)
        expected = min(1 / barrier_smoothness, margin / (2 * abs(slope) + math.sqrt(margin * smoothness) * norm))
        assert margin > 0 and step == pytest.approx(expected, rel=1e-12)
        np.testing.assert_allclose(new_logits, logits + expected * direction, rtol=0, atol=1e-12)


def test_lb_sgd_steps_down_the_cost_without_margin(paper_family):
    """With no margin left (the limit below pi's cost) the iteration descends J_c alone, by 1 / M."""
    task = paper_family.task(noise=0.3)
    cmdp = paper_family.tabular(task)
    uniform = np.full((cmdp.n_states, cmdp.n_actions), 0.25)
    assert evaluate_policy(cmdp, uniform)[1] > 1.5, "the uniform policy violates the limit"
    config = lb_sgd.LBSGDConfig(smoothness=10.0, n_episodes=400)
    new_logits, step = lb_sgd.lb_sgd_step(cmdp, np.log(uniform), config, np.random.default_rng(0))
    assert step == pytest.approx(0.1)
    new_policy = np.exp(new_logits) / np.exp(new_logits).sum(axis=1, keepdims=True)
    assert evaluate_policy(cmdp, new_policy)[1] < evaluate_policy(cmdp, uniform)[1]
