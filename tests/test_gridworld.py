"""The gridworld family against SPECS.md, Gymnasium's and SB3's env checkers, and its own exact model."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gymnasium_check_env

import cmdp_envs
import cmdp_envs.families.gridworld
from cmdp_envs.families.gridworld import (
    PAPER_TEST_NOISE_LEVELS,
    GridWorldEnv,
    GridWorldFamily,
    cell_to_state,
)
from cmdp_envs.tabular import evaluate_policy, solve_cmdp

from conftest import Z

IDS = [env_id for env_id in cmdp_envs.registered_ids() if "GridWorld" in env_id]


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("observation_type", ["discrete", "onehot"])
def test_gymnasium_check_env(env_id, observation_type):
    env = gym.make(env_id, observation_type=observation_type)
    gymnasium_check_env(env.unwrapped, skip_render_check=False)


@pytest.mark.parametrize("env_id", IDS)
@pytest.mark.parametrize("observation_type", ["discrete", "onehot"])
def test_sb3_check_env(env_id, observation_type):
    sb3_env_checker = pytest.importorskip(
        "stable_baselines3.common.env_checker", reason="stable-baselines3 is in the 'sb3' extra"
    )
    env = gym.make(env_id, observation_type=observation_type)
    sb3_env_checker.check_env(env, warn=False)


def _cell(x, y):
    return cell_to_state((x, y))


def test_transitions_follow_the_reference_noise_model(paper_family):
    P = paper_family.tabular(paper_family.task(noise=0.2)).P
    up, right, down, left = range(4)
    # Interior cell (3, 3), up: intended (3, 4) gets 1 - i + i/4, the other three neighbours i/4 each.
    row = P[_cell(3, 3), up]
    assert row[_cell(3, 4)] == pytest.approx(0.85)
    for cell in ((4, 3), (3, 2), (2, 3)):
        assert row[_cell(*cell)] == pytest.approx(0.05)
    assert row.sum() == pytest.approx(1.0) and np.count_nonzero(row) == 4
    # Edge cell (0, 3), left into the wall: the intended cell is "stay", which joins the three in-grid neighbours.
    row = P[_cell(0, 3), left]
    assert row[_cell(0, 3)] == pytest.approx(0.85)
    for cell in ((0, 4), (1, 3), (0, 2)):
        assert row[_cell(*cell)] == pytest.approx(0.05)
    # Corner (0, 0), up: only two in-grid neighbours, no "stay" from noise.
    row = P[_cell(0, 0), up]
    assert row[_cell(0, 1)] == pytest.approx(0.9) and row[_cell(1, 0)] == pytest.approx(0.1)
    assert row[_cell(0, 0)] == 0.0
    # Edge cell (0, 3), right (into the grid): three neighbours, no stay.
    row = P[_cell(0, 3), right]
    assert row[_cell(1, 3)] == pytest.approx(0.8 + 0.2 / 3)
    assert row[_cell(0, 3)] == 0.0
    # The goal is absorbing for every action.
    goal = _cell(3, 6)
    assert (P[goal, :, goal] == 1.0).all()
    del down


def test_random_action_noise_model():
    family = GridWorldFamily(noise_model="random_action")
    P = family.tabular(family.task(noise=0.2)).P
    row = P[_cell(0, 3), 3]  # left into the wall: stays with 1 - i + i/4 (the random "left" also stays)
    assert row[_cell(0, 3)] == pytest.approx(0.85)
    assert row[_cell(0, 4)] == row[_cell(1, 3)] == row[_cell(0, 2)] == pytest.approx(0.05)
    row = P[_cell(0, 0), 0]  # corner, up: random left and down both stay
    assert row[_cell(0, 0)] == pytest.approx(0.1) and row[_cell(0, 1)] == pytest.approx(0.85)


def test_rewards_costs_and_initial_distribution(paper_family):
    cmdp = paper_family.tabular(paper_family.default_task)
    unsafe = [_cell(x, y) for x in (2, 4) for y in range(1, 5)]
    assert sorted(unsafe) == [9, 11, 16, 18, 23, 25, 30, 32]
    assert (cmdp.r[45] == 10).all() and cmdp.r.sum() == 40
    assert (cmdp.c[unsafe] == 10).all() and cmdp.c.sum() == 8 * 4 * 10
    assert np.count_nonzero(cmdp.mu) == 41 and np.allclose(cmdp.mu[cmdp.mu > 0], 1 / 41)
    assert cmdp.mu[45] > 0 and (cmdp.mu[unsafe] == 0).all()
    assert cmdp.gamma == 0.9 and cmdp.cost_limit == 1.5


def test_paper_test_noise_levels_are_feasible_and_ordered(paper_family):
    values = []
    for noise in sorted(PAPER_TEST_NOISE_LEVELS):
        solution = solve_cmdp(paper_family.tabular(paper_family.task(noise=noise)))
        assert solution.cost_value <= 1.5
        values.append(solution.reward_value)
    # More noise, less achievable reward.
    assert all(a > b for a, b in zip(values, values[1:]))


def test_reset_reports_the_task_and_options_set_it(env, paper_family):
    _, info = env.reset(seed=0)
    assert info["task"] == paper_family.default_task and info["cost"] == 0.0
    task = paper_family.task(noise=0.1)
    _, info = env.reset(seed=0, options={"task": task})
    assert info["task"] == task == env.unwrapped.task
    _, info = env.reset(seed=0)
    assert info["task"] == task, "a reset without a task keeps the task in force"
    other = paper_family.task(noise=0.2)
    env.unwrapped.set_task(other)
    assert env.unwrapped.tabular().P[_cell(3, 3), 0, _cell(3, 4)] == pytest.approx(0.85)


def test_step_returns_costs_in_info(env):
    env.reset(seed=0)
    for _ in range(300):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert isinstance(info["cost"], float) and info["cost"] in (0.0, 10.0)
        assert reward in (0.0, 10.0) and not terminated
        if truncated:
            break
    assert truncated, "episodes end by truncation at max_episode_steps = 200"


def test_unsafe_cells_cost_and_goal_pays():
    env = gym.make("cmdp_envs/GridWorld-v0")
    family = env.unwrapped.family
    env.reset(seed=0, options={"task": family.task(noise=0.0)})
    env.unwrapped._state = _cell(2, 2)
    _, reward, _, _, info = env.step(0)
    assert info["cost"] == 10.0 and reward == 0.0
    env.unwrapped._state = _cell(3, 6)
    observation, reward, _, _, info = env.step(2)
    assert observation == _cell(3, 6) and reward == 10.0 and info["cost"] == 0.0


def test_one_hot_observations():
    env = gym.make("cmdp_envs/GridWorld-v0", observation_type="onehot")
    observation, _ = env.reset(seed=0)
    assert observation.dtype == np.float32 and observation.shape == (49,) and observation.sum() == 1.0
    assert env.observation_space.contains(observation)


def test_same_seed_same_trajectory():
    def trajectory(seed):
        env = gym.make("cmdp_envs/GridWorldVaried-v0")
        env.action_space.seed(seed)
        out = [env.reset(seed=seed)[0]]
        for _ in range(100):
            observation, reward, _, _, info = env.step(env.action_space.sample())
            out += [observation, reward, info["cost"]]
        return out

    assert trajectory(5) == trajectory(5)
    assert trajectory(5) != trajectory(6)


def test_invalid_use_raises_before_any_state_change(paper_family):
    env = GridWorldEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    state, task = env._state, env.task
    for action in (4, -1, 1.5, "up"):
        with pytest.raises(ValueError, match=r"action must be an int in \[0, 3\]"):
            env.step(action)
    with pytest.raises(ValueError, match="outside its range"):
        env.set_task(GridWorldFamily(noise=cmdp_envs.Uniform(0.0, 0.9)).task(noise=0.8))
    generator_state = env.np_random.bit_generator.state
    with pytest.raises(ValueError, match="expected a GridWorldTask"):
        env.reset(seed=123, options={"task": {"noise": 0.3}})
    assert env._state == state and env.task == task
    assert env.np_random.bit_generator.state == generator_state, "a refused reset does not reseed"
    with pytest.raises(ValueError, match="observation_type"):
        GridWorldEnv(observation_type="rgb")
    with pytest.raises(ValueError, match="render_mode"):
        GridWorldEnv(render_mode="human")
    with pytest.raises(ValueError, match="either family or family keyword"):
        GridWorldEnv(family=paper_family, noise_model="reference")
    with pytest.raises(TypeError):
        gym.make("cmdp_envs/GridWorld-v0", unknown_argument=1)


def test_an_explicit_family_replaces_the_ids_family(varied_family):
    family = cmdp_envs.families.gridworld.GridWorldFamily.varied(noise_model="random_action")
    env = gym.make("cmdp_envs/GridWorldVaried-v0", family=family)
    assert env.unwrapped.family is family
    assert gym.make("cmdp_envs/GridWorldVaried-v0").unwrapped.family.parameters == varied_family.parameters
    with pytest.raises(ValueError, match="variant"):
        GridWorldEnv(variant="hard")


def test_env_pickles_mid_episode():
    import pickle

    env = GridWorldEnv()
    env.reset(seed=0)
    env.step(0)
    clone = pickle.loads(pickle.dumps(env))
    assert [clone.step(1)[:2] for _ in range(20)] == [env.step(1)[:2] for _ in range(20)]


def test_family_keywords_go_through_gym_make():
    env = gym.make("cmdp_envs/GridWorld-v0", noise_model="random_action", noise=cmdp_envs.Uniform(0.0, 0.5))
    family = env.unwrapped.family
    assert family.noise_model == "random_action"
    assert family.parameters["noise"] == cmdp_envs.Uniform(0.0, 0.5)


def test_render_modes():
    env = gym.make("cmdp_envs/GridWorld-v0", render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    lines = text.strip().split("\n")
    assert len(lines) == 7 and lines[0].split()[3] == "G" and text.count("X") == 8 and text.count("A") == 1
    env = gym.make("cmdp_envs/GridWorld-v0", render_mode="rgb_array")
    env.reset(seed=0)
    env.unwrapped._state = _cell(0, 0)
    image = env.render()
    assert image.shape == (224, 224, 3) and image.dtype == np.uint8
    assert tuple(image[224 - 16, 16]) == (40, 70, 200), "the agent is drawn in its cell, bottom left"
    assert tuple(image[16, 3 * 32 + 16]) == (90, 190, 90), "the goal (3, 6) is drawn top middle"
    assert tuple(image[224 - 2 * 32 + 8, 2 * 32 + 8]) == (230, 80, 80), "(2, 1) is unsafe"


@pytest.mark.parametrize("env_id, seed", [("cmdp_envs/GridWorld-v0", 0), ("cmdp_envs/GridWorldVaried-v0", 1)])
def test_monte_carlo_rollouts_agree_with_exact_values(env_id, seed):
    """Discounted returns of env rollouts are unbiased estimates of the exact values, up to the truncation at 200
    steps (bias below 0.9^200 * 100 / 0.1 < 1e-6); the check is a Z-sigma confidence interval."""
    env = gym.make(env_id)
    base = env.unwrapped
    task = base.family.sample(1, seed=seed)[0]
    cmdp = base.family.tabular(task)
    rng = np.random.default_rng(seed)
    # A stochastic policy that visits unsafe cells and reaches the goal: half optimal, half uniform.
    policy = 0.5 * solve_cmdp(cmdp).policy + 0.5 / 4
    exact_reward, exact_cost = evaluate_policy(cmdp, policy)
    n_episodes = 1500
    returns = np.zeros((n_episodes, 2))
    cumulative = policy.cumsum(axis=1)
    env.reset(seed=seed, options={"task": task})
    for episode in range(n_episodes):
        state, _ = env.reset()
        discount, truncated = 1.0, False
        while not truncated:
            action = int(np.searchsorted(cumulative[state], rng.random(), side="right"))
            state, reward, _, truncated, info = env.step(min(action, 3))
            returns[episode] += discount * np.array([reward, info["cost"]])
            discount *= cmdp.gamma
    mean, stderr = returns.mean(axis=0), returns.std(axis=0, ddof=1) / np.sqrt(n_episodes)
    assert abs(mean[0] - exact_reward) <= Z * stderr[0] + 1e-6, (mean[0], exact_reward, stderr[0])
    assert abs(mean[1] - exact_cost) <= Z * stderr[1] + 1e-6, (mean[1], exact_cost, stderr[1])
    assert stderr[1] > 0 and stderr[0] > 0
