"""The point-navigation family: the env contract, its dynamics, rewards and costs, the family, and a short SB3 run."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

import cmdp_envs
from cmdp_envs.cli import main
from cmdp_envs.families.point_navigation import (
    PointNavigationEnv,
    PointNavigationFamily,
    PointNavigationTask,
)
from cmdp_envs.meta.estimators import ValueEstimate, monte_carlo_values

ENV_ID = "cmdp_envs/PointNavigation-v0"


@pytest.fixture(scope="module")
def family() -> PointNavigationFamily:
    return PointNavigationFamily()


def test_gymnasium_check_env():
    gymnasium_check_env(gym.make(ENV_ID, render_mode="rgb_array").unwrapped, skip_render_check=False)


def test_sb3_check_env():
    sb3_env_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3_env_checker.check_env(gym.make(ENV_ID), warn=False)


def test_registered_id_and_spaces(family):
    env = gym.make(ENV_ID)
    assert ENV_ID in cmdp_envs.registered_ids() and env.spec.max_episode_steps == 50
    assert env.action_space == gym.spaces.Discrete(4)
    assert env.observation_space == gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    base = env.unwrapped
    assert base.family.gamma == 0.95 and base.task == family.default_task
    assert not hasattr(base, "tabular") and not hasattr(base.family, "tabular"), "the oracles' non-tabular signal"


def test_episodes_truncate_at_50_with_a_cost_on_every_step():
    env = gym.make(ENV_ID)
    observation, info = env.reset(seed=0)
    assert info == {"task": env.unwrapped.task, "cost": 0.0}
    assert -0.1 <= observation[0] <= 0.1 and -0.9 <= observation[1] <= -0.7, "the start box"
    for step in range(1, 51):
        observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert type(info["cost"]) is float and info["cost"] in (0.0, 1.0)
        assert 0.0 <= reward <= 1.0 and not terminated and env.observation_space.contains(observation)
        assert truncated == (step == 50)


def test_same_seed_same_trajectory():
    def trajectory(seed):
        env = gym.make(ENV_ID)
        out = [env.reset(seed=seed)[0].tolist()]
        for step in range(50):
            observation, reward, _, _, info = env.step(step % 4)
            out += [observation.tolist(), reward, info["cost"]]
        return out

    assert trajectory(3) == trajectory(3)
    assert trajectory(3) != trajectory(4)


def test_moves_noise_and_clipping(family):
    env = PointNavigationEnv(task=family.task(noise=0.0))
    env.reset(seed=0)
    for action, move in enumerate([(0.0, 0.1), (0.1, 0.0), (0.0, -0.1), (-0.1, 0.0)]):
        env._position = np.array([0.3, 0.3])
        observation = env.step(action)[0]
        assert observation.dtype == np.float32 and np.allclose(observation, np.add([0.3, 0.3], move))
    env._position = np.array([0.95, -0.98])
    assert np.allclose(env.step(1)[0], [1.0, -0.98]), "clipped to the square"
    noisy = PointNavigationEnv(task=family.task(noise=0.05))
    noisy.reset(seed=0)
    steps = []
    for _ in range(2000):
        noisy._position = np.zeros(2)
        steps.append(noisy.step(0)[0] - [0.0, 0.1])
    assert np.std(steps, axis=0) == pytest.approx([0.05, 0.05], rel=0.1)


def test_costs_inside_the_hazard_and_rewards_at_the_goal(family):
    task = family.task(noise=0.0, hazard_x=0.1, hazard_y=-0.2, hazard_radius=0.3, goal_x=-0.3, goal_y=0.6)
    env = gym.make(ENV_ID)
    env.reset(seed=0, options={"task": task})
    base = env.unwrapped
    for position, cost in (((0.1, -0.2), 1.0), ((0.35, -0.2), 1.0), ((0.41, -0.2), 0.0), ((-0.3, 0.6), 0.0)):
        base._position = np.array(position)
        assert env.step(0)[4]["cost"] == cost, position
    base._position = np.array([-0.3, 0.45])
    assert env.step(3)[1] == 1.0, "within 0.2 of the goal"
    base._position = np.array([-0.3, -0.4])
    assert env.step(3)[1] == pytest.approx(1.0 - 1.0 / 2.0), "1 - distance / 2 outside the goal"
    base._position = np.array([1.0, -1.0])
    assert env.step(3)[1] == 0.0, "no reward beyond distance 2"


def test_tasks_are_set_by_reset_options_and_set_task(family):
    env = gym.make(ENV_ID)
    task = family.task(goal_x=0.3, noise=0.0)
    _, info = env.reset(seed=0, options={"task": task})
    assert info["task"] == task == env.unwrapped.task
    assert env.reset(seed=0)[1]["task"] == task, "a reset without a task keeps the task in force"
    other = family.task(goal_x=-0.3)
    env.unwrapped.set_task(other)
    assert env.unwrapped.task == other


def test_invalid_use_raises_before_any_state_change(family):
    env = PointNavigationEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    position, task = env._position.copy(), env.task
    for action in (4, -1, 1.5, "up"):
        with pytest.raises(ValueError, match=r"action must be an int in \[0, 3\]"):
            env.step(action)
    generator_state = env.np_random.bit_generator.state
    with pytest.raises(ValueError, match="expected a PointNavigationTask"):
        env.reset(seed=5, options={"task": {"noise": 0.01}})
    with pytest.raises(ValueError, match="outside its range"):
        env.set_task(PointNavigationTask(noise=0.3))
    assert np.array_equal(env._position, position) and env.task == task
    assert env.np_random.bit_generator.state == generator_state, "a refused reset does not reseed"
    with pytest.raises(ValueError, match="render_mode"):
        PointNavigationEnv(render_mode="human")
    with pytest.raises(ValueError, match="either family or family keyword"):
        PointNavigationEnv(family=family, gamma=0.9)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"noise": 0.2}, r"'noise' = 0.2 is outside its range \[0.0, 0.05\]"),
        ({"goal_y": 0.0}, r"'goal_y' = 0.0 is outside its range \[0.5, 0.7\]"),
        ({"hazard_radius": -0.1}, "'hazard_radius'"),
        ({"cost_limit": float("nan")}, "'cost_limit' must be finite"),
        ({"goal_x": "left"}, "'goal_x' must be a number"),
        ({"goal": (0, 1)}, r"unknown task parameter\(s\) \['goal'\]"),
    ],
)
def test_task_validation_names_the_parameter(family, params, message):
    with pytest.raises(ValueError, match=message):
        family.task(**params)


def test_family_distributions_must_stay_within_the_models_bounds():
    with pytest.raises(ValueError, match=r"'noise' = 0.9 is outside \[0.0, 0.5\]"):
        PointNavigationFamily(noise=cmdp_envs.Uniform(0.0, 0.9))
    with pytest.raises(ValueError, match=r"'goal_x' = 1.5 is outside \[-1.0, 1.0\]"):
        PointNavigationFamily(goal_x=cmdp_envs.Fixed(1.5))
    with pytest.raises(ValueError, match="gamma"):
        PointNavigationFamily(gamma=1.0)
    with pytest.raises(TypeError, match="hazard_radius must be a ParameterDistribution"):
        PointNavigationFamily(hazard_radius=0.3)
    wide = PointNavigationFamily(noise=cmdp_envs.Uniform(0.0, 0.5), cost_limit=cmdp_envs.Fixed(2.0))
    assert wide.task(noise=0.4).cost_limit == 2.0
    env = gym.make(ENV_ID, noise=cmdp_envs.Uniform(0.0, 0.5))
    assert env.unwrapped.family.parameters["noise"] == cmdp_envs.Uniform(0.0, 0.5)


def test_sampling_is_seeded_and_stays_in_the_documented_ranges(family):
    tasks = family.sample(200, seed=0)
    assert tasks == family.sample(200, seed=0) and tasks != family.sample(200, seed=1)
    assert len(set(tasks)) == 200 and all(isinstance(task, PointNavigationTask) for task in tasks)
    for task in tasks:
        assert 0.5 <= task.cost_limit <= 1.5 and 0.0 <= task.noise <= 0.05 and 0.2 <= task.hazard_radius <= 0.35
        assert -0.4 <= task.goal_x <= 0.4 and 0.5 <= task.goal_y <= 0.7
        hazard_to_goal = np.hypot(task.goal_x - task.hazard_x, task.goal_y - task.hazard_y)
        assert hazard_to_goal > task.hazard_radius and task.hazard_y - task.hazard_radius > -0.7
    assert "goal_x: Uniform[-0.4, 0.4]" in family.describe()


def test_distance_is_the_largest_parameter_difference(family):
    a, b, c = family.sample(3, seed=2)
    assert family.distance(a, a) == 0.0 and family.distance(a, b) == family.distance(b, a) > 0
    assert family.distance(a, c) <= family.distance(a, b) + family.distance(b, c)
    base = family.task()
    assert family.distance(base, family.task(goal_x=0.25, noise=0.04)) == pytest.approx(0.25)
    assert family.distance(base, family.task(cost_limit=0.6)) == pytest.approx(0.4)
    with pytest.raises(ValueError, match="expected a PointNavigationTask"):
        family.distance(base, cmdp_envs.Task(cost_limit=1.0))


def test_env_pickles_mid_episode():
    env = PointNavigationEnv()
    env.reset(seed=0)
    env.step(0)
    clone = pickle.loads(pickle.dumps(env))
    assert [clone.step(1)[0].tolist() for _ in range(10)] == [env.step(1)[0].tolist() for _ in range(10)]


def test_render_rgb_array(family):
    env = gym.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0, options={"task": family.task(goal_x=-0.4, hazard_x=0.1, hazard_y=-0.1, hazard_radius=0.3)})
    env.unwrapped._position = np.array([0.8, -0.8])
    image = env.render()
    assert image.shape == (200, 200, 3) and image.dtype == np.uint8

    def pixel(x, y):  # world (x, y) to the image's (row, column); y = 1 is the top row
        return image[int((1 - y) / 2 * 200), int((x + 1) / 2 * 200)]

    assert tuple(pixel(-0.4, 0.6)) == (90, 190, 90) and tuple(pixel(0.1, -0.1)) == (230, 80, 80)
    assert tuple(pixel(0.8, -0.8)) == (40, 70, 200) and tuple(pixel(-0.9, -0.9)) == (255, 255, 255)
    with pytest.warns(UserWarning, match="without a render_mode"):
        assert PointNavigationEnv().render() is None


def test_cli_lists_and_describes_the_family(capsys):
    assert main(["list"]) == 0
    assert ENV_ID in capsys.readouterr().out
    assert main(["describe", ENV_ID]) == 0
    out = capsys.readouterr().out
    for text in ("Discrete(4)", "Box(-1.0, 1.0, (2,), float32)", "max episode steps:  50", "discount (gamma):   0.95",
                 "exact tabular model: no", "hazard_radius: Uniform[0.2, 0.35]"):
        assert text in out, text


class _UniformRandom:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def act(self, observation):
        return int(self.rng.integers(4))


def test_sb3_lagrangian_oracle_learns_and_reports_monte_carlo_intervals(family):
    pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in the 'sb3' extra")
    import torch

    from cmdp_envs.meta.oracles.sb3_learners import SB3LagrangianOracle

    torch.set_num_threads(1)
    oracle = SB3LagrangianOracle(family, total_timesteps=4000, n_eval_episodes=200, n_steps=128, learning_rate=1e-3)
    task = family.default_task
    result = oracle(task, seed=0)
    assert result.task == task and result.info["curve"] and result.info["total_timesteps"] == 4000
    for estimate in (result.reward, result.cost):
        assert isinstance(estimate, ValueEstimate) and not estimate.exact
        assert estimate.confidence == 0.95 and estimate.half_width > 0
    assert result.feasible == (result.cost.value + result.cost.half_width <= task.cost_limit)
    random_reward, _ = monte_carlo_values(gym.make(ENV_ID), _UniformRandom(0), task, family.gamma, 200, 50)
    # Uniform actions reach about 5.9 and a scripted straight line 14.2; 4000 steps of PPO get most of the way.
    assert result.reward.value - result.reward.half_width > random_reward.value + random_reward.half_width + 3.0
