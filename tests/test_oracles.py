"""The oracle protocol: exact LP oracle, SB3 and OmniSafe learner oracles, O_c and O_s, policy files."""

import dataclasses
import importlib.util

import gymnasium as gym
import numpy as np
import pytest

from cmdp_envs.families.gridworld import GridWorldFamily
from cmdp_envs.meta.oracles import (
    DistanceCheck,
    ExactLPOracle,
    ExactSimultaneouslyFeasibleOracle,
    LearnedSimultaneouslyFeasibleOracle,
    NoFeasiblePolicyError,
    ReferenceTaskOptimum,
    RegularisedOracle,
    ValueEstimate,
    evaluate,
)
from cmdp_envs.meta.estimators import monte_carlo_values
from cmdp_envs.meta.oracles.learned import LearnedOracle
from cmdp_envs.meta.policies import TabularPolicy, gaussian_argmax_probabilities
from cmdp_envs.tabular import evaluate_policy, solve_cmdp, solve_regularised_cmdp

from conftest import Z


def test_exact_oracle_answers_with_the_lp_optimum(paper_family):
    task = paper_family.task(noise=0.3)
    answer = ExactLPOracle(paper_family)(task)
    solution = solve_cmdp(paper_family.tabular(task))
    assert answer.reward.exact and answer.reward.value == solution.reward_value
    assert answer.feasible and answer.cost.value <= task.cost_limit
    tighter = ExactLPOracle(paper_family)(task, cost_limit=1.2)
    assert tighter.cost.value <= 1.2 and tighter.reward.value < answer.reward.value
    with pytest.raises(TypeError, match="tabular family"):
        ExactLPOracle(object())


def test_the_authors_oracles(paper_family):
    """RegularisedOracle answers with the regularised optimum and its exact values (a tighter limit on request);
    ReferenceTaskOptimum gives the noise-0.4 optimum whatever U, with exact values on U, and refuses a margin U does
    not allow."""
    task = paper_family.task(noise=0.3)
    answer = RegularisedOracle(paper_family)(task)
    solution = solve_regularised_cmdp(paper_family.tabular(task))
    assert answer.reward.exact and answer.reward.value == solution.reward_value
    assert answer.info["oracle"] == "entropy_regularised_primal_dual"
    assert RegularisedOracle(paper_family)(task, cost_limit=1.2).cost.value == pytest.approx(1.2, abs=1e-6)
    oracle = ReferenceTaskOptimum(paper_family, paper_family.task(noise=0.4))
    assert oracle.info["reference_cost"] == pytest.approx(1.5, abs=1e-9)
    tasks = [paper_family.task(noise=n) for n in (0.26, 0.34)]
    result = oracle(tasks, xi=0.05)
    assert result.policy is oracle.policy and result.cost[0].exact
    assert result.cost[1].value == evaluate_policy(paper_family.tabular(tasks[1]), oracle.policy.probabilities)[1]
    with pytest.raises(NoFeasiblePolicyError, match="margin xi = 0.5"):
        oracle(tasks, xi=0.5)
    with pytest.raises(TypeError, match="tabular family"):
        RegularisedOracle(object())


def test_distance_check(paper_family):
    check = DistanceCheck(paper_family)
    a, b = paper_family.task(noise=0.30), paper_family.task(noise=0.31)
    assert check(a, b, eps=0.0075 + 1e-12) and not check(a, b, eps=0.007)
    by_noise = DistanceCheck(paper_family, distance=lambda x, y: abs(x.noise - y.noise))
    assert by_noise(a, b, eps=0.0100001) and not by_noise(a, b, eps=0.0099)
    with pytest.raises(ValueError, match="eps"):
        check(a, b, eps=-1.0)
    assert DistanceCheck(paper_family, parameter="noise")(a, b, eps=0.0100001)
    exact = check.matrix([a, b], eps=0.0075 + 1e-12)
    assert exact.tolist() == [[True, True], [True, True]]
    with pytest.raises(ValueError, match="unknown task parameter"):
        DistanceCheck(paper_family, parameter="friction")


def test_exact_simultaneously_feasible_oracle(paper_family):
    tasks = paper_family.sample(12, seed=0)
    result = ExactSimultaneouslyFeasibleOracle(paper_family, iterations=600)(tasks, xi=0.1)
    # Checked exactly, task by task, independently of the oracle's own bookkeeping.
    for task in tasks:
        reward_value, cost_value = evaluate_policy(paper_family.tabular(task), result.policy.probabilities)
        assert cost_value <= task.cost_limit - 0.1
    assert np.all(result.margins >= 0.1)
    # Close to the best such policy: the LP policy of the noisiest task with the same margin is a lower bound.
    noisiest = max(tasks, key=lambda t: t.noise)
    lp = ExactLPOracle(paper_family)(noisiest, cost_limit=noisiest.cost_limit - 0.1)
    lp_mean = np.mean([evaluate(paper_family, t, lp.policy)[0].value for t in tasks])
    assert np.mean([r.value for r in result.reward]) >= lp_mean - 0.5


def test_simultaneously_feasible_oracle_reports_an_impossible_margin(paper_family):
    tasks = [paper_family.task(noise=0.42)]  # smallest achievable cost ~1.37: at most ~0.13 of margin exists
    with pytest.raises(NoFeasiblePolicyError, match="margin xi = 0.5") as error:
        ExactSimultaneouslyFeasibleOracle(paper_family, iterations=300)(tasks, xi=0.5)
    assert error.value.worst_margin < 0.5


def test_learned_simultaneously_feasible_oracle_moves_to_the_worst_task():
    family = GridWorldFamily.varied()
    tasks = [family.task(goal=(0, 6), noise=0.2, cost_limit=1.0), family.task(goal=(0, 6), noise=0.4, cost_limit=2.0)]
    # The tightest limit is task 0, but task 1's noise makes task 0's optimum violate it: a second round is needed.
    oracle = LearnedSimultaneouslyFeasibleOracle(ExactLPOracle(family), max_rounds=4)
    result = oracle(tasks, xi=0.05)
    assert np.all(result.margins >= 0.05)
    assert result.info["rounds"] == 2
    with pytest.raises(NoFeasiblePolicyError, match="1 rounds"):
        LearnedSimultaneouslyFeasibleOracle(ExactLPOracle(family), max_rounds=1)(tasks, xi=0.05)


def test_tabular_policy_files_round_trip_without_pickle(tmp_path, paper_family):
    policy = ExactLPOracle(paper_family)(paper_family.default_task).policy
    path = policy.save(tmp_path / "pi.npz")
    loaded = TabularPolicy.load(path)
    np.testing.assert_array_equal(loaded.probabilities, policy.probabilities)
    np.savez(tmp_path / "object.npz", probabilities=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ValueError, match="not a saved TabularPolicy"):
        TabularPolicy.load(tmp_path / "object.npz")
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="not a saved TabularPolicy"):
        TabularPolicy.load(tmp_path / "corrupt.npz")
    with pytest.raises(ValueError, match="shape"):
        TabularPolicy(np.ones(4))


def test_tabular_policy_acts_on_indices_and_one_hot_vectors():
    policy = TabularPolicy(np.array([[0.0, 1.0], [1.0, 0.0]]), seed=0)
    assert policy.act(0) == 1 and policy.act(np.array([0.0, 1.0])) == 0
    with pytest.raises(ValueError, match="outside"):
        policy.act(2)


def test_monte_carlo_values_cover_the_exact_values(paper_family):
    env = gym.make("cmdp_envs/GridWorld-v0")
    task = paper_family.task(noise=0.3)
    policy = TabularPolicy(0.5 * solve_cmdp(paper_family.tabular(task)).policy + 0.125, seed=0)
    reward, cost = monte_carlo_values(env, policy, task, gamma=0.9, n_episodes=600, horizon=150, confidence=0.9999)
    exact_reward, exact_cost = evaluate(paper_family, task, policy)
    assert abs(reward.value - exact_reward.value) <= reward.half_width
    assert abs(cost.value - exact_cost.value) <= cost.half_width
    assert not reward.exact and "CI" in str(reward) and "exact" in str(exact_reward)


def test_gaussian_argmax_probabilities():
    probabilities = gaussian_argmax_probabilities(np.array([[0.0, 0.0], [3.0, 0.0]]), np.array([1.0, 1.0]),
                                                  n_samples=40_000, seed=0)
    assert probabilities[0] == pytest.approx([0.5, 0.5], abs=Z * 0.5 / 200)
    # P(x0 > x1) with x0 - x1 ~ N(3, 2): Phi(3 / sqrt 2)
    assert probabilities[1, 0] == pytest.approx(0.98305, abs=Z * 0.5 / 200)
    exact = gaussian_argmax_probabilities(np.array([[1.0, 0.0]]), np.array([0.0, 0.0]))
    assert exact.tolist() == [[1.0, 0.0]]


@pytest.mark.skipif(importlib.util.find_spec("stable_baselines3") is None,
                    reason="stable-baselines3 is in the 'sb3' extra")
def test_sb3_oracle_returns_an_exactly_evaluated_policy(paper_family):
    import torch

    from cmdp_envs.meta.oracles.sb3_learners import SB3LagrangianOracle

    torch.set_num_threads(1)
    oracle = SB3LagrangianOracle(paper_family, total_timesteps=2048, n_envs=2, n_steps=256,
                                 env_kwargs={"max_episode_steps": 50})
    task = paper_family.task(noise=0.2)
    answer = oracle(task, seed=0)
    assert isinstance(answer.policy, TabularPolicy) and answer.reward.exact
    assert (answer.reward.value, answer.cost.value) == pytest.approx(
        evaluate_policy(paper_family.tabular(task), answer.policy.probabilities))
    assert oracle(task, seed=0).policy.probabilities.tolist() == answer.policy.probabilities.tolist(), "seeded"


@pytest.mark.skipif(importlib.util.find_spec("stable_baselines3") is None,
                    reason="stable-baselines3 is in the 'sb3' extra")
def test_sb3_oracle_trains_and_evaluates_under_the_family_it_was_given():
    """Regression: an oracle built from an id trained under the caller's gym.make kwargs but evaluated under the
    id's default family (gamma 0.9 instead of 0.5). Now the one family is used for both."""
    import torch

    from cmdp_envs.meta.oracles.sb3_learners import SB3LagrangianOracle

    torch.set_num_threads(1)
    family = GridWorldFamily(gamma=0.5)
    oracle = SB3LagrangianOracle(family, total_timesteps=512, n_envs=1, n_steps=256)
    assert oracle.make_env().unwrapped.family is family
    task = family.task(noise=0.2)
    answer = oracle(task, seed=0)
    exact = evaluate_policy(family.tabular(task), answer.policy.probabilities)
    assert (answer.reward.value, answer.cost.value) == pytest.approx(exact)
    assert exact != pytest.approx(evaluate_policy(GridWorldFamily().tabular(task), answer.policy.probabilities))
    with pytest.raises(TypeError, match="TaskFamily"):
        SB3LagrangianOracle("cmdp_envs/GridWorld-v0")
    with pytest.raises(ValueError, match="family"):
        SB3LagrangianOracle(family, env_kwargs={"gamma": 0.5, "family": family})


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("omnisafe") is None,
                    reason="OmniSafe is in the 'omnisafe' extra (Python 3.10, lane B)")
@pytest.mark.parametrize("algo", ["PPOLag", "CPO"])
def test_omnisafe_oracle_returns_an_exactly_evaluated_policy(algo, paper_family):
    import torch

    from cmdp_envs.meta.oracles.omnisafe_learners import OmniSafeOracle

    torch.set_num_threads(1)
    task = paper_family.task(noise=0.25)
    answer = OmniSafeOracle(paper_family, algo=algo, total_steps=2000, steps_per_epoch=1000)(task, seed=0)
    assert isinstance(answer.policy, TabularPolicy) and answer.cost.exact
    assert answer.info["cost_semantics"] == "discounted"
    assert answer.cost.value == pytest.approx(
        evaluate_policy(paper_family.tabular(task), answer.policy.probabilities)[1])


def test_value_estimate_feasibility_uses_the_upper_confidence_bound(paper_family):
    from cmdp_envs.meta.oracles import OracleResult

    task = paper_family.default_task
    policy = TabularPolicy(np.full((49, 4), 0.25))
    assert OracleResult(task, policy, ValueEstimate(1.0), ValueEstimate(1.4, 0.05, 0.95)).feasible
    assert not OracleResult(task, policy, ValueEstimate(1.0), ValueEstimate(1.4, 0.2, 0.95)).feasible
    assert dataclasses.replace(ValueEstimate(1.0), half_width=0.1).exact is False


@pytest.mark.skipif(importlib.util.find_spec("stable_baselines3") is None,
                    reason="stable-baselines3 is in the 'sb3' extra")
@pytest.mark.parametrize("observation_type", ["discrete", "onehot"])
def test_mlp_policy_reproduces_an_sb3_actor_and_round_trips(observation_type, tmp_path):
    import torch
    from stable_baselines3 import PPO

    from cmdp_envs.meta.policies import MLPPolicy, tabular_policy_from_sb3

    env = gym.make("cmdp_envs/GridWorld-v0", observation_type=observation_type)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, seed=0, device="cpu")
    model.learn(128)
    policy = MLPPolicy.from_sb3(model, seed=0)
    exact = tabular_policy_from_sb3(model, 49, one_hot=observation_type == "onehot").probabilities
    observations = np.eye(49, dtype=np.float32) if observation_type == "onehot" else range(49)
    ours = np.array([policy.action_probabilities(o) for o in observations])
    np.testing.assert_allclose(ours, exact, atol=1e-6)
    loaded = MLPPolicy.load(policy.save(tmp_path / "actor.npz"))
    np.testing.assert_array_equal([loaded.forward(o) for o in observations], [policy.forward(o) for o in observations])
    (tmp_path / "bad.npz").write_bytes(b"nonsense")
    with pytest.raises(ValueError, match="not a saved MLPPolicy"):
        MLPPolicy.load(tmp_path / "bad.npz")
    del torch


@pytest.mark.skipif(importlib.util.find_spec("omnisafe") is None,
                    reason="OmniSafe is in the 'omnisafe' extra (Python 3.10, lane B)")
def test_mlp_policy_reproduces_an_omnisafe_actor(tmp_path):
    import torch
    from omnisafe.models.actor.gaussian_learning_actor import GaussianLearningActor

    from cmdp_envs.meta.policies import MLPPolicy

    actor = GaussianLearningActor(gym.spaces.Box(0, 1, (49,)), gym.spaces.Box(-1, 1, (4,)), [16, 16], "tanh")
    policy = MLPPolicy.from_omnisafe(actor, gym.spaces.Discrete(49), discrete_actions=True, seed=0)
    with torch.no_grad():
        means = actor(torch.eye(49)).mean.numpy()
    np.testing.assert_allclose([policy.forward(s) for s in range(49)], means, atol=1e-5)
    assert policy.act(3, deterministic=True) == int(np.argmax(means[3]))
    loaded = MLPPolicy.load(policy.save(tmp_path / "actor.npz"))
    assert loaded.output == "gaussian_argmax" and np.array_equal(loaded.log_std, policy.log_std)


def test_mlp_policy_validates_its_shapes():
    from cmdp_envs.meta.policies import MLPPolicy

    with pytest.raises(ValueError, match="do not chain"):
        MLPPolicy([np.zeros((4, 3))], [np.zeros(4)], ["tanh"], "categorical", observation_size=5,
                  discrete_observation=False)
    with pytest.raises(ValueError, match="log_std"):
        MLPPolicy([np.zeros((4, 5))], [np.zeros(4)], ["tanh"], "gaussian", observation_size=5,
                  discrete_observation=False)
    policy = MLPPolicy([np.zeros((2, 5))], [np.zeros(2)], ["identity"], "categorical", 5, False, seed=0)
    assert policy.action_probabilities(np.ones(5)).tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="5"):
        policy.act(np.ones(3))


@pytest.mark.skipif(importlib.util.find_spec("stable_baselines3") is None,
                    reason="stable-baselines3 is in the 'sb3' extra")
def test_monte_carlo_path_of_a_network_policy_covers_its_exact_values(paper_family):
    """The path non-tabular families take: an MLPPolicy rolled out through the env, with a confidence interval."""
    from stable_baselines3 import PPO

    from cmdp_envs.meta.policies import MLPPolicy, tabular_policy_from_sb3

    env = gym.make("cmdp_envs/GridWorld-v0", observation_type="onehot")
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, seed=1, device="cpu")
    task = paper_family.default_task
    reward, cost = evaluate(paper_family, task, MLPPolicy.from_sb3(model, seed=0), env, n_episodes=400,
                            horizon=120, confidence=0.9999)
    exact_reward, exact_cost = evaluate(paper_family, task, tabular_policy_from_sb3(model, 49))
    assert not cost.exact and abs(cost.value - exact_cost.value) <= cost.half_width
    assert abs(reward.value - exact_reward.value) <= reward.half_width


def test_mlp_policy_maps_gaussian_actions_onto_the_bounds(tmp_path):
    from cmdp_envs.meta.policies import MLPPolicy

    bounds = (np.array([0.0, -2.0]), np.array([4.0, 2.0]))
    policy = MLPPolicy([np.zeros((2, 3))], [np.array([1.0, -1.0])], ["identity"], "gaussian", 3, False,
                       log_std=np.zeros(2), action_bounds=bounds)
    # Agent units [-1, 1] -> [low, high], as OmniSafe's ActionScale does: +1 -> high, -1 -> low.
    np.testing.assert_allclose(policy.act(np.zeros(3), deterministic=True), [4.0, -2.0])
    loaded = MLPPolicy.load(policy.save(tmp_path / "p.npz"))
    np.testing.assert_allclose(loaded.act(np.zeros(3), deterministic=True), [4.0, -2.0])
    with pytest.raises(ValueError, match="action_bounds"):
        MLPPolicy([np.zeros((2, 3))], [np.zeros(2)], ["identity"], "categorical", 3, False, action_bounds=bounds)


class _ConstantActionOracle(LearnedOracle):
    """A learner oracle whose "training" returns a fixed policy: always move down, away from the hazard. Enough to
    see where O_s evaluates."""

    class _Down:
        def act(self, observation):
            return 2

    def _train(self, task, seed, cost_limit):
        return self._Down(), {"oracle": "constant"}


def test_learned_o_s_evaluates_in_the_learners_own_env():
    """Regression: O_s rolled out in family.make_env() (50-step episodes) while the learner used its env_kwargs
    (7-step episodes); both must use the learner's env."""
    from cmdp_envs.families.point_navigation import PointNavigationFamily

    family = PointNavigationFamily()
    learner = _ConstantActionOracle(family, env_kwargs={"max_episode_steps": 7}, n_eval_episodes=20)
    task = family.default_task
    result = LearnedSimultaneouslyFeasibleOracle(learner, max_rounds=1, n_episodes=20, horizon=200)([task], xi=0.0)
    short = monte_carlo_values(learner.make_env(), learner._Down(), task, family.gamma, 20, 200)
    long = monte_carlo_values(family.make_env(), learner._Down(), task, family.gamma, 20, 200)
    assert result.reward[0].value == short[0].value != long[0].value


def test_learned_oracles_refuse_a_second_discount_and_bad_env_arguments():
    pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in the 'sb3' extra")
    from cmdp_envs.meta.oracles.sb3_learners import SB3LagrangianOracle

    family = GridWorldFamily(gamma=0.5)
    with pytest.raises(ValueError, match=r"the discount is the family's \(gamma = 0.5\)"):
        SB3LagrangianOracle(family, gamma=0.99)
    with pytest.raises(ValueError, match="family keyword arguments"):
        SB3LagrangianOracle(family, env_kwargs={"noise_model": "random_action"})  # at construction, not training


@pytest.mark.skipif(importlib.util.find_spec("omnisafe") is None,
                    reason="OmniSafe is in the 'omnisafe' extra (Python 3.10, lane B)")
def test_omnisafe_cfgs_refuse_a_discount_other_than_the_familys():
    from cmdp_envs.wrappers.omnisafe_bridge import omnisafe_custom_cfgs, register_omnisafe_task

    omnisafe_id = register_omnisafe_task(GridWorldFamily(gamma=0.5))
    assert omnisafe_custom_cfgs("PPOLag", omnisafe_id, total_steps=1000)["algo_cfgs"]["gamma"] == 0.5
    with pytest.raises(ValueError, match=r"algo_cfgs.gamma = 0.99 differs from the family's discount gamma = 0.5"):
        omnisafe_custom_cfgs("PPOLag", omnisafe_id, total_steps=1000, algo_cfgs={"gamma": 0.99})
