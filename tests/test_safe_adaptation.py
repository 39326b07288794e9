"""Xu & Zhu's safe closed-form adaptation: the step against a 2-state CMDP solved by hand, the dual method, sampled
advantages, anytime safety on the gridworld, determinism."""

import dataclasses

import numpy as np
import pytest
import scipy.optimize

from cmdp_envs.families.gridworld import PAPER_TEST_NOISE_LEVELS
from cmdp_envs.meta.oracles import ExactSimultaneouslyFeasibleOracle
from cmdp_envs.meta.covering import CoveringResult
from cmdp_envs.meta.policies import TabularPolicy
from cmdp_envs.meta.safe_adaptation import (
    SafeAdaptationConfig,
    SafeMetaRL,
    adapt,
    adaptation_step,
    anytime_safety_evaluation,
    closed_form_policy,
    dual_multiplier,
    linearised_cost,
    plot_anytime_safety,
)
from cmdp_envs.meta.estimators import exact_advantages, sampled_advantages
from cmdp_envs.tabular import EpisodeSampler, TabularCMDP

from conftest import Z

UNIFORM = np.full((2, 2), 0.5)


def two_state_cmdp(cost_limit):
    """State 0: action 0 stays (r = 1, c = 1), action 1 moves to the absorbing state 1 (r = 0, c = 0); state 1 pays
    r = 0.5 at no cost. gamma = 0.5, start in state 0."""
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[0, 1, 1] = P[1, :, 1] = 1.0
    return TabularCMDP(P=P, r=np.array([[1.0, 0.0], [0.5, 0.5]]), c=np.array([[1.0, 0.0], [0.0, 0.0]]),
                       mu=np.array([1.0, 0.0]), gamma=0.5, cost_limit=cost_limit)


def test_advantages_and_visitation_by_hand():
    # Uniform pi_phi: V_r(1) = 1, V_r(0) = 1, Q_r(0, .) = (1.5, 0.5); V_c(0) = 2/3, Q_c(0, .) = (4/3, 0);
    # discounted occupancy d(0) = 1 / (1 - 0.25) = 4/3, d(1) = 2 - 4/3, so nu = (1 - gamma) d = (2/3, 1/3).
    estimate = exact_advantages(two_state_cmdp(1.0), UNIFORM)
    np.testing.assert_allclose(estimate.reward_advantage, [[0.5, -0.5], [0.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(estimate.cost_advantage, [[2 / 3, -2 / 3], [0.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(estimate.visitation, [2 / 3, 1 / 3])
    assert estimate.cost_value == pytest.approx(2 / 3)


def hand_policy(u, reward_kl=0.2, cost_kl=0.2):
    eta = reward_kl + 0.5 * u * cost_kl
    logit = (0.5 - u * 2 / 3) / eta  # (A_r - u A_c)(0, 0) / eta; action 1 has the negative of it
    p = 1 / (1 + np.exp(-2 * logit))
    return np.array([[p, 1 - p], [0.5, 0.5]])


def hand_linearised_cost(p, cost_kl=0.2):
    kl = p * np.log(2 * p) + (1 - p) * np.log(2 * (1 - p))
    return 2 / 3 + (4 / 3) * (2 / 3) * (2 * p - 1) + cost_kl * (2 / 3) * kl


def test_step_matches_the_hand_solution_when_the_constraint_is_slack():
    step = adaptation_step(two_state_cmdp(cost_limit=5.0), UNIFORM, SafeAdaptationConfig(advantages="exact"))
    assert step.multiplier == 0.0
    np.testing.assert_allclose(step.policy, hand_policy(0.0), atol=1e-12)  # p = 1 / (1 + e^-5)


def test_dual_method_finds_the_hand_multiplier():
    cmdp = two_state_cmdp(cost_limit=1.0)
    # The root of the hand-written linearised constraint, found independently by bracketing.
    u_star = scipy.optimize.brentq(lambda u: hand_linearised_cost(hand_policy(u)[0, 0]) - 1.0, 0.0, 50.0)
    config = SafeAdaptationConfig(advantages="exact", dual_step=0.5, dual_iterations=500)
    estimate = exact_advantages(cmdp, UNIFORM)
    u, path = dual_multiplier(UNIFORM, estimate, cmdp.cost_limit, cmdp.gamma, config)
    assert u == pytest.approx(u_star, rel=1e-6) and len(path) == 501
    policy = closed_form_policy(UNIFORM, estimate, u, cmdp.gamma, config)
    np.testing.assert_allclose(policy, hand_policy(u_star), atol=1e-6)
    assert linearised_cost(policy, UNIFORM, estimate, cmdp.gamma, config.cost_kl) == pytest.approx(1.0, abs=1e-6)
    assert hand_linearised_cost(policy[0, 0]) == pytest.approx(1.0, abs=1e-6)


def test_actions_never_taken_stay_impossible():
    policy = np.array([[1.0, 0.0], [0.5, 0.5]])
    step = adaptation_step(two_state_cmdp(5.0), policy, SafeAdaptationConfig(advantages="exact"))
    assert step.policy[0, 1] == 0.0


def test_sampled_advantages_estimate_the_exact_ones(paper_family):
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    policy = np.random.default_rng(0).dirichlet(np.ones(4), size=49)
    exact = exact_advantages(cmdp, policy)
    sampled = sampled_advantages(cmdp, policy, n_episodes=20_000, horizon=120, seed=0)
    batch = EpisodeSampler(cmdp, policy, 120).sample(20_000, seed=0)
    assert sampled.cost_value == pytest.approx(batch.cost_return.mean()), "same seed, same episodes"
    assert abs(sampled.cost_value - exact.cost_value) <= Z * batch.cost_return.std() / np.sqrt(20_000)
    np.testing.assert_allclose(sampled.visitation, exact.visitation, atol=0.01)
    visited = exact.visitation > 0.02
    assert np.abs(sampled.reward_advantage - exact.reward_advantage)[visited].max() < 1.5
    assert np.corrcoef(sampled.cost_advantage[visited].ravel(), exact.cost_advantage[visited].ravel())[0, 1] > 0.95


def test_trajectories_and_episode_sums_come_from_the_same_stream(paper_family):
    cmdp = paper_family.tabular(paper_family.default_task)
    sampler = EpisodeSampler(cmdp, np.full((49, 4), 0.25), horizon=30)
    trajectories, batch = sampler.sample_trajectories(200, seed=5), sampler.sample(200, seed=5)
    discounts = cmdp.gamma ** np.arange(30)
    np.testing.assert_allclose(trajectories.costs @ discounts, batch.cost_return)
    np.testing.assert_allclose(trajectories.rewards @ discounts, batch.reward_return)


@pytest.fixture(scope="module")
def pi_s(paper_family):
    return ExactSimultaneouslyFeasibleOracle(paper_family, iterations=300)(paper_family.sample(50, seed=0), xi=0.0)


def test_anytime_safety_on_the_gridworld_with_exact_advantages(paper_family, pi_s, tmp_path):
    cmdps = [paper_family.tabular(paper_family.task(noise=noise)) for noise in PAPER_TEST_NOISE_LEVELS]
    conservative = SafeAdaptationConfig(advantages="exact", cost_kl=1000.0, dual_step=0.05, dual_iterations=300)
    result = anytime_safety_evaluation(cmdps, pi_s.policy.probabilities, 10, conservative)
    assert result["anytime_safe"]
    for task in result["tasks"]:
        assert max(task["cost_values"]) <= 1.5 and task["violating_steps"] == []
    assert np.mean([t["reward_values"][-1] for t in result["tasks"]]) > np.mean(
        [t["reward_values"][0] for t in result["tasks"]]), "adaptation improves the reward"
    # The baseline setting (lambda = lambda_c = 0.2, 30 dual steps of 1.0) is not anytime safe here, and the
    # evaluation says so instead of hiding it.
    baseline = anytime_safety_evaluation(cmdps, pi_s.policy.probabilities, 10, SafeAdaptationConfig(advantages="exact"))
    assert not baseline["anytime_safe"]
    broken = [task for task in baseline["tasks"] if not task["anytime_safe"]]
    for task in broken:
        assert all(task["cost_values"][k] > 1.5 for k in task["violating_steps"])
    plot_anytime_safety(baseline, str(tmp_path / "baseline.png"))
    assert (tmp_path / "baseline.png").read_bytes()[:4] == b"\x89PNG"


def test_sampled_adaptation_is_deterministic(paper_family, pi_s):
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    config = SafeAdaptationConfig(advantages="sampled", n_episodes=300, horizon=60)
    first, second = (adapt(cmdp, pi_s.policy.probabilities, 3, config, seed=4) for _ in range(2))
    np.testing.assert_array_equal(first.policies, second.policies)
    third = adapt(cmdp, pi_s.policy.probabilities, 3, config, seed=5)
    assert not np.array_equal(first.policies, third.policies)


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="reward_kl > 0"):
        SafeAdaptationConfig(reward_kl=0.0)
    with pytest.raises(ValueError, match="advantages"):
        SafeAdaptationConfig(advantages="learned")
    with pytest.raises(ValueError, match="n_episodes"):
        SafeAdaptationConfig(n_episodes=0)
    with pytest.raises(ValueError, match="shape"):
        adaptation_step(two_state_cmdp(1.0), np.ones((3, 2)) / 2, SafeAdaptationConfig(advantages="exact"))


torch = pytest.importorskip("torch", reason="torch comes with the 'sb3' extra")


def test_meta_training_improves_the_post_adaptation_reward_and_stays_feasible(paper_family, pi_s):
    from cmdp_envs.meta.safe_adaptation import meta_train

    cmdps = [paper_family.tabular(task) for task in paper_family.sample(8, seed=1)]
    config = SafeAdaptationConfig(advantages="exact")
    converged = dataclasses.replace(config, dual_method="bisection")

    def post_adaptation_reward(policy):
        return np.mean([adapt(cmdp, policy, 1, converged).reward_values[1] for cmdp in cmdps])

    result = meta_train(cmdps, config, initial_policy=pi_s.policy.probabilities, iterations=40)
    # The objective is recomputed independently, through adapt() in numpy.
    assert result.objective == pytest.approx(post_adaptation_reward(result.policy), abs=1e-7)
    assert result.objective > post_adaptation_reward(pi_s.policy.probabilities) + 0.05
    for cmdp in cmdps:
        assert adapt(cmdp, result.policy, 0, config).cost_values[0] <= cmdp.cost_limit
    assert len(result.history) == 40 and result.history[0]["max_violation"] <= 0


def test_meta_gradient_is_exact(paper_family, pi_s):
    """Autograd through the exact step, with the multiplier differentiated implicitly, matches central finite
    differences of the objective recomputed from scratch (multiplier re-solved) along a random direction."""
    from cmdp_envs.meta.safe_adaptation import meta_objective

    cmdps = [paper_family.tabular(task) for task in paper_family.sample(3, seed=1)]
    config = SafeAdaptationConfig(advantages="exact")
    theta = torch.tensor(np.log(np.maximum(pi_s.policy.probabilities, 1e-8)), requires_grad=True)
    objective, _ = meta_objective(theta, cmdps, config)
    objective.backward()
    direction = torch.tensor(np.random.default_rng(0).standard_normal(theta.shape))
    h = 1e-5
    with torch.no_grad():
        plus, _ = meta_objective(theta + h * direction, cmdps, config)
        minus, _ = meta_objective(theta - h * direction, cmdps, config)
    finite_difference = float(plus - minus) / (2 * h)
    assert float((theta.grad * direction).sum()) == pytest.approx(finite_difference, rel=1e-4, abs=1e-9)


def test_dual_bisection_meets_the_linearised_constraint(paper_family, pi_s):
    cmdp = paper_family.tabular(paper_family.task(noise=0.34))
    estimate = exact_advantages(cmdp, pi_s.policy.probabilities)
    for method in ("descent", "bisection"):
        config = SafeAdaptationConfig(advantages="exact", dual_method=method)
        u, _ = dual_multiplier(pi_s.policy.probabilities, estimate, 1.5, 0.9, config)
        policy = closed_form_policy(pi_s.policy.probabilities, estimate, u, 0.9, config)
        value = linearised_cost(policy, pi_s.policy.probabilities, estimate, 0.9, config.cost_kl)
        if method == "bisection":
            assert u > 0 and 1.5 - 1e-9 <= value <= 1.5
    with pytest.raises(ValueError, match="dual_method"):
        SafeAdaptationConfig(dual_method="newton")


def test_meta_training_reports_when_no_iterate_is_feasible(paper_family):
    from cmdp_envs.meta.safe_adaptation import meta_train

    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    uniform = np.full((49, 4), 0.25)  # infeasible: it wanders into the unsafe walls
    with pytest.raises(RuntimeError, match="no meta-policy met every training constraint in 1 iterations"):
        meta_train([cmdp], SafeAdaptationConfig(advantages="exact"), initial_policy=uniform, iterations=1)


def distilled_network(policy, action_space):
    from cmdp_envs.meta.safe_adaptation import make_policy_network

    torch.set_num_threads(1)
    network = make_policy_network(49, action_space, seed=0)
    optimizer = torch.optim.Adam(network.parameters(), lr=0.01)
    states, target = torch.eye(49, dtype=torch.float64), torch.tensor(policy)
    for _ in range(500):
        loss = -(target * network.distribution(states).logits.log_softmax(-1)).sum(-1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return network


@pytest.mark.slow
def test_neural_step_on_the_gridworld(paper_family, pi_s, tmp_path):
    import gymnasium as gym

    from cmdp_envs.meta.policies import MLPPolicy
    from cmdp_envs.meta.safe_adaptation import NeuralAdaptationConfig, network_to_mlp_policy, neural_adaptation_step
    from cmdp_envs.tabular import evaluate_policy

    env = gym.make("cmdp_envs/GridWorld-v0", observation_type="onehot")
    task = paper_family.task(noise=0.3)
    env.unwrapped.set_task(task)
    cmdp = paper_family.tabular(task)
    states = torch.eye(49, dtype=torch.float64)
    network = distilled_network(pi_s.policy.probabilities, env.action_space)
    start_reward, _ = evaluate_policy(cmdp, network.distribution(states).probs.detach().numpy())
    config = NeuralAdaptationConfig(reward_kl=2.0, cost_kl=2.0, n_episodes=200, horizon=60, dual_iterations=10)
    rewards = []
    for k in range(3):
        step = neural_adaptation_step(network, env, config, seed=100 * k)
        assert step.network is not network
        network = step.network
        reward_value, cost_value = evaluate_policy(cmdp, network.distribution(states).probs.detach().numpy())
        assert cost_value <= task.cost_limit, f"step {k}: exact J_c = {cost_value}"
        rewards.append(reward_value)
    # Sampled advantages make single steps noisy; over the sequence the reward rises above the start.
    assert max(rewards) > start_reward + 0.05 and rewards[-1] > start_reward, (start_reward, rewards)
    # The adapted network saves pickle-free and acts identically after loading.
    policy = network_to_mlp_policy(network, 49, discrete_observation=False)
    loaded = MLPPolicy.load(policy.save(tmp_path / "adapted.npz"))
    np.testing.assert_allclose([loaded.action_probabilities(s) for s in np.eye(49)],
                               network.distribution(states).probs.detach().numpy(), atol=1e-9)


def test_neural_step_is_deterministic_and_handles_continuous_actions():
    import gymnasium as gym

    from cmdp_envs.meta.safe_adaptation import NeuralAdaptationConfig, make_policy_network, neural_adaptation_step
    from cmdp_envs.wrappers import CostFunction

    torch.set_num_threads(1)
    env = CostFunction(gym.make("Pendulum-v1"), lambda obs, action, next_obs, info: float(abs(action[0]) > 1.0))
    network = make_policy_network(3, env.action_space, seed=0)
    config = NeuralAdaptationConfig(n_episodes=8, horizon=20, dual_iterations=3, inner_steps=2, baseline_steps=20)
    first = neural_adaptation_step(network, env, config, seed=0, gamma=0.9, cost_limit=0.5)
    second = neural_adaptation_step(network, env, config, seed=0, gamma=0.9, cost_limit=0.5)
    for a, b in zip(first.network.parameters(), second.network.parameters()):
        assert torch.equal(a, b)
    assert first.multiplier >= 0 and first.kl_estimate >= 0
    with pytest.raises(ValueError, match="sampled"):
        NeuralAdaptationConfig(advantages="exact")


def test_neural_step_pins_the_task_under_task_sampling(paper_family):
    import gymnasium as gym

    from cmdp_envs.meta.safe_adaptation import NeuralAdaptationConfig, make_policy_network, neural_adaptation_step
    from cmdp_envs.wrappers import TaskSampling

    env = TaskSampling(gym.make("cmdp_envs/GridWorld-v0", observation_type="onehot"), seed=0)
    env.reset(seed=0)
    task = env.unwrapped.task
    seen = []
    original_reset = env.env.reset

    def spying_reset(**kwargs):
        observation, info = original_reset(**kwargs)
        seen.append(info["task"])
        return observation, info

    env.env.reset = spying_reset
    config = NeuralAdaptationConfig(n_episodes=4, horizon=5, dual_iterations=1, inner_steps=1, baseline_steps=1)
    neural_adaptation_step(make_policy_network(49, env.action_space), env, config, seed=0)
    assert seen == [task] * 4, "every rollout ran the task in force"


def test_safe_meta_rl_protocol_counts_sampled_episodes(paper_family, pi_s):
    safe_policy = pi_s.policy.probabilities
    cmdp = paper_family.tabular(paper_family.task(noise=0.3))
    config = SafeAdaptationConfig(n_episodes=500, cost_kl=1000.0)
    training = CoveringResult(policy_values=(), safe_policy=TabularPolicy(safe_policy), n_samples=0, doublings=0,
                              coverage_error=0.0, config={})
    seed = np.random.SeedSequence(0)
    run = SafeMetaRL(config).run_on_tabular(cmdp, training, 2200, 100, seed)
    assert run.lengths.tolist() == [500, 500, 500, 500, 200]
    # Step k samples with seed s + k, s drawn from the SeedSequence: the run executes exactly adapt's sequence.
    expected = adapt(cmdp, safe_policy, 4, config, seed=int(seed.generate_state(1)[0]))
    assert np.array_equal(run.reward_values, expected.reward_values)
    with pytest.raises(ValueError, match="sampled"):
        SafeMetaRL(SafeAdaptationConfig(advantages="exact"))
