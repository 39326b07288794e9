"""LB-SGD and Safe Meta-RL under the meta-test protocol, and the pi_s options they need."""

import numpy as np
import pytest

from cmdp_envs.meta import lb_sgd, safe_adaptation
from cmdp_envs.meta.oracles import ExactSimultaneouslyFeasibleOracle
from cmdp_envs.meta.safe_adaptation import exact_advantages
from cmdp_envs.tabular import evaluate_policy


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
    config = lb_sgd.LBSGDConfig(smoothness=0.1, n_episodes=200)
    run = lb_sgd.run_on_tabular(cmdp, safe_policy, 8000, config, seed=0)
    assert run.lengths.sum() == 8000 and len(run.starts) == 40
    assert run.violating_policies == 0
    assert run.reward_values[-1] > run.reward_values[0] + 0.3
    again = lb_sgd.run_on_tabular(cmdp, safe_policy, 8000, config, seed=0)
    assert np.array_equal(again.reward_values, run.reward_values)


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
        lb_sgd.run_on_tabular(cmdp, deterministic, 100, lb_sgd.LBSGDConfig())
    with pytest.raises(ValueError, match="barrier"):
        lb_sgd.LBSGDConfig(barrier=0.0)


def test_safe_meta_rl_protocol_counts_sampled_episodes(paper_family, safe_policy):
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    config = safe_adaptation.SafeAdaptationConfig(n_episodes=500, cost_kl=1000.0)
    run = safe_adaptation.run_on_tabular(cmdp, safe_policy, 2200, config, seed=0)
    assert run.lengths.tolist() == [500, 500, 500, 500, 200]
    expected = safe_adaptation.adapt(cmdp, safe_policy, 4, config, seed=0)
    assert np.allclose(run.reward_values, expected.reward_values)
    with pytest.raises(ValueError, match="sampled"):
        safe_adaptation.run_on_tabular(cmdp, safe_policy, 100, safe_adaptation.SafeAdaptationConfig(
            advantages="exact"))
