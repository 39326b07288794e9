"""The navigation families (both lanes): checkers, tasks and layouts, single against vector env, autoreset, costs,
misuse, SB3 training on the native vector env."""

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import cmdp_envs
from cmdp_envs.families.navigation import (
    ButtonFamily,
    CircleFamily,
    GoalFamily,
    NavigationEnv,
    NavigationVectorEnv,
    RobotState,
)
from cmdp_envs.task import Uniform

NAVIGATION_IDS = [i for i in cmdp_envs.registered_ids()
                  if i.split("/")[1].startswith("Point") and "Navigation" not in i]


@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
def test_checkers_pass(env_id):
    check_env(gym.make(env_id).unwrapped)
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker", reason="SB3 is in the 'sb3' extra")
    sb3_checker.check_env(gym.make(env_id))


@pytest.mark.parametrize("env_id", NAVIGATION_IDS)
def test_render_draws_the_scene(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    assert len(np.unique(image.reshape(-1, 3), axis=0)) >= 3


def test_render_draws_the_lidar_towards_what_it_sees():
    """A goal straight ahead of the robot: the goal group's rays (green) lie ahead of the robot, none behind it."""
    from cmdp_envs.families.navigation import GoalFamily
    from cmdp_envs.families.navigation.render import COLOURS, LIDAR_RAY, PIXELS, render_world

    family = GoalFamily(level=1, n_hazards=0, n_vases=0)
    env = NavigationEnv(family=family, render_mode="rgb_array")
    observation, _ = env.reset(options={"task": family.task(agent=(0.0, 0.0, 0.0), goal=(1.2, 0.0))})
    world = env._world
    green = np.all(render_world(world, 0, observation) == COLOURS["goal"], axis=2)
    without = np.all(render_world(world, 0) == COLOURS["goal"], axis=2)
    rays = green & ~without
    half = family.placement.extents[2] + 0.5
    rows, columns = np.nonzero(rays)
    x = (columns + 0.5) / PIXELS * 2 * half - half
    assert rays.sum() > 10 and np.all(x > 0.05) and np.all(x < 0.1 + LIDAR_RAY + 0.05)


def test_sampling_is_deterministic_and_layout_seeds_rebuild_tasks():
    family = GoalFamily()
    assert family.sample(5, seed=3) == family.sample(5, seed=3)
    assert family.sample(5, seed=3) != family.sample(5, seed=4)
    seeds = family.layout_seeds(5, seed=3)
    assert [family.task(layout_seed=s) for s in seeds] == family.sample(5, seed=3)


def test_goal_arc_family_keeps_goals_in_the_arc():
    family = GoalFamily(goal_arc=140.0, goal_distance=(0.5, 2.0))
    for task in family.sample(20, seed=0):
        x, y, heading = task.agent
        bearing = math.atan2(task.goal[1] - y, task.goal[0] - x) - heading
        assert abs(math.degrees(math.atan2(math.sin(bearing), math.cos(bearing)))) <= 70.0
        assert 0.5 <= math.dist(task.goal, (x, y)) <= 2.0


def test_explicit_layout_and_dynamics_tasks():
    family = GoalFamily(n_hazards=3, n_vases=0, mass_scale=Uniform(0.5, 2.0))
    task = family.task(agent=(0.0, 0.0, 0.0), goal=(1.0, 0.0), hazards=[(0.5, 0.5)], mass_scale=2.0)
    assert task.hazards == ((0.5, 0.5),) and task.mass_scale == 2.0
    with pytest.raises(ValueError, match="mass_scale"):
        family.task(mass_scale=3.0)
    with pytest.raises(ValueError, match="slots"):
        family.task(hazards=[(0.0, 1.0)] * 4)
    with pytest.raises(ValueError, match="layout_seed"):
        family.task(layout_seed=-1)
    with pytest.raises(ValueError, match="unknown task parameter"):
        family.task(gaol=(1.0, 0.0))


def test_heavier_robot_accelerates_less():
    family = GoalFamily(n_hazards=0, n_vases=0, mass_scale=Uniform(0.5, 2.0))
    distances = []
    for scale in (1.0, 2.0):
        env = NavigationEnv(kind="goal", family=family)
        env.reset(options={"task": family.task(agent=(0.0, 0.0, 0.0), goal=(1.0, 1.0), mass_scale=scale)})
        for _ in range(20):
            env.step(np.array([1.0, 0.0]))
        distances.append(env.unwrapped._world.position[0, 0])
    assert distances[1] < 0.8 * distances[0]


def test_meta_cpo_circle_family():
    assert gym.make("cmdp_envs/PointCircleMetaCPO-v0").unwrapped.family == CircleFamily.meta_cpo()
    family = CircleFamily.meta_cpo()
    for task in family.sample(50, seed=0):
        assert 1.0 <= task.radius <= 1.5 and 0.55 <= task.wall / task.radius <= 0.75
    with pytest.raises(ValueError, match="wall / radius"):
        family.task(radius=1.0, wall=0.9)


def test_hazard_cost_indicator_and_depth():
    for indicator, expected in ((True, 1.0), (False, 0.2 - 0.05)):
        family = GoalFamily(n_hazards=1, n_vases=0, constrain_indicator=indicator)
        env = NavigationEnv(kind="goal", family=family)
        task = family.task(agent=(0.05, 0.0, 0.0), goal=(1.0, 1.0), hazards=[(0.0, 0.0)])
        env.reset(options={"task": task})
        _, _, _, _, info = env.step(np.zeros(2))
        assert info["cost_hazards"] == pytest.approx(expected) and info["cost"] == pytest.approx(expected)


def test_robot_pushes_vases_and_level_two_charges_for_them():
    family = GoalFamily(level=2, n_hazards=0, n_vases=1)
    env = NavigationEnv(kind="goal", family=family)
    env.reset(options={"task": family.task(agent=(-0.5, 0.0, 0.0), goal=(1.5, 1.5), vases=[(0.0, 0.0)])})
    contacts = moving = 0
    for step in range(60):  # push, then back off: the vase stops, the costs stop
        _, _, _, _, info = env.step(np.array([1.0 if step < 30 else -1.0, 0.0]))
        contacts += info["cost_vases_contact"] > 0
        moving += info["cost_vases_velocity"] > 0
    assert env.unwrapped._world.vases[0, 0, 0] > 0.15, "the vase was pushed along x"
    assert contacts > 0 and moving > 0 and info["cost"] == 0.0


@pytest.mark.parametrize("level", [1, 2])
def test_single_env_and_vector_env_agree(level):
    """The single env steps its rewards and costs on Python floats, the vector env on arrays: same numbers.
    Forward-biased actions at level 2 push vases and cross hazards."""
    family = GoalFamily(level=level)
    tasks = family.sample(4, seed=1)
    vector = NavigationVectorEnv(4, family=family)
    vector_obs, _ = vector.reset(seed=0, options={"tasks": tasks})
    singles = [NavigationEnv(family=family) for _ in tasks]
    single_obs = [env.reset(seed=0, options={"task": task})[0] for env, task in zip(singles, tasks)]
    np.testing.assert_allclose(vector_obs, np.array(single_obs), atol=1e-12)
    rng = np.random.default_rng(0)
    costly = 0
    for _ in range(300):
        actions = rng.uniform([-0.5, -1], [1, 1], (4, 2))
        vector_obs, vector_reward, _, _, infos = vector.step(actions)
        results = [env.step(action) for env, action in zip(singles, actions)]
        if infos["goal_met"].any():
            break  # a new goal is a draw from each env's own stream
        np.testing.assert_allclose(vector_obs, np.array([r[0] for r in results]), atol=1e-9)
        np.testing.assert_allclose(vector_reward, [r[1] for r in results], atol=1e-9)
        np.testing.assert_array_equal(infos["cost"], [r[4]["cost"] for r in results])
        for key in ("cost_vases_contact", "cost_vases_velocity") if level == 2 else ():
            np.testing.assert_allclose(infos[key], [r[4][key] for r in results], atol=1e-12)
        costly += infos["cost"].sum()
    assert costly > 0, "the run must meet costs to compare them"


def test_vector_env_is_deterministic_and_cycles_tasks():
    family = GoalFamily()
    tasks = family.sample(3, seed=0)
    runs = []
    for _ in range(2):
        env = NavigationVectorEnv(7, family=family)
        env.reset(seed=5, options={"tasks": tasks})
        assert env.tasks == [tasks[i % 3] for i in range(7)]
        rng = np.random.default_rng(1)
        runs.append([env.step(rng.uniform(-1, 1, (7, 2)))[0] for _ in range(300)])
    np.testing.assert_array_equal(np.array(runs[0]), np.array(runs[1]))


def test_next_step_and_same_step_autoreset():
    family = CircleFamily()
    env = NavigationVectorEnv(2, kind="circle", family=family, max_episode_steps=3)
    env.reset(seed=0)
    for step in range(3):
        _, _, _, truncated, _ = env.step(np.ones((2, 2)))
    assert truncated.all()
    observation, reward, _, truncated, info = env.step(np.ones((2, 2)))
    assert not truncated.any() and (reward == 0).all() and (info["cost"] == 0).all()
    assert np.all(np.abs(observation[:, 3:6]) < 1e-12), "a reset robot is at rest"

    same = NavigationVectorEnv(2, kind="circle", family=family, max_episode_steps=3, autoreset_mode="same_step")
    same.reset(seed=0)
    for _ in range(3):
        observation, _, _, truncated, info = same.step(np.ones((2, 2)))
    assert truncated.all() and info["_final_obs"].all()
    assert np.all(np.abs(observation[:, 3:6]) < 1e-12) and np.abs(info["final_obs"][0][3:6]).max() > 0


def test_make_vec_vector_entry_point():
    try:
        env = gym.make_vec("cmdp_envs/PointGoal1-v0", num_envs=16, vectorization_mode="vector_entry_point")
    except gym.error.Error as error:
        assert "vectorization mode" in str(error)
        pytest.skip("Gymnasium 0.28.1's make_vec has no vector_entry_point mode; there NavigationVectorEnv is made "
                    "directly")
    assert isinstance(env, NavigationVectorEnv) and env.max_episode_steps == 1000
    observation, _ = env.reset(seed=0, options={"tasks": env.family.sample(4, seed=0)})
    assert observation.shape == (16, 60)
    assert str(env.metadata["autoreset_mode"]).lower().replace("_", "").endswith("nextstep")


def test_bad_input_is_refused_before_state_changes():
    env = NavigationEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(2))
    env.reset(seed=0)
    before = env.unwrapped._world.position.copy()
    for action in (np.zeros(3), np.array([np.nan, 0.0]), "go"):
        with pytest.raises(ValueError, match="action"):
            env.step(action)
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"taks": None})
    with pytest.raises(TypeError, match="RobotState"):
        env.reset(options={"state": (0.0, 0.0, 0.0)})
    with pytest.raises(ValueError, match="GoalTask"):
        env.reset(options={"task": CircleFamily().default_task})
    np.testing.assert_array_equal(env.unwrapped._world.position, before)
    vector = NavigationVectorEnv(2)
    with pytest.raises(ValueError, match="tasks"):
        vector.reset(options={"tasks": []})
    with pytest.raises(TypeError, match="unexpected keyword"):
        gym.make("cmdp_envs/PointGoal1-v0", levle=2)


def test_state_option_starts_from_a_given_pose():
    env = NavigationEnv()
    observation, _ = env.reset(options={"state": RobotState((0.3, -0.2, 1.0), (0.1, 0.0, 0.0))})
    assert env.unwrapped._world.position[:, 0] == pytest.approx([0.3, -0.2, 1.0])
    assert observation[9:11] == pytest.approx([-0.5 * math.sin(1.0), -0.5 * math.cos(1.0)])


@pytest.mark.slow
def test_sb3_ppo_lagrangian_trains_on_the_native_vector_env():
    pytest.importorskip("stable_baselines3", reason="SB3 is in the 'sb3' extra")
    from cmdp_envs.meta.sb3_lagrangian import lagrangian_learner
    from cmdp_envs.wrappers import SB3VecEnv

    family = GoalFamily(cost_semantics="undiscounted", cost_limit=cmdp_envs.Fixed(5.0))
    vector = NavigationVectorEnv(16, family=family, max_episode_steps=100, autoreset_mode="same_step")
    vector.set_tasks(family.sample(16, seed=0))
    model, callback = lagrangian_learner("PPO", SB3VecEnv(vector, lagrangian=True), cost_limit=5.0,
                                         gamma=family.gamma, discounted=False, n_steps=64, batch_size=256)
    model.learn(4096, callback=callback)
    assert callback.history, "episodes ended and the multiplier was updated"
    assert all(row["episode_cost"] >= 0 for row in callback.history)
    assert model.num_timesteps >= 4096


@pytest.mark.parametrize("family", [CircleFamily(level=2), GoalFamily(level=2), ButtonFamily()],
                         ids=["circle", "goal", "button"])
def test_one_world_on_floats_equals_the_array_code(family):
    """The single env's float path (step_one) against the vector env's array code, same states: the compiled robot
    and lidar serve both, so everything agrees to rounding."""
    from cmdp_envs.families.navigation.world import make_world

    rng = np.random.default_rng(0)
    task = family.sample(1, seed=3)[0]
    one, many = make_world(family, 1), make_world(family, 2)
    for world in (one, many):
        for index in range(world.n):
            world.set_task(index, task)
            world.reset(index, np.random.default_rng(5), state=RobotState((0.9, 0.3, 0.4), (0.2, -0.1, 0.5)))
    for _ in range(200):
        action = rng.uniform([-0.2, -1], [1, 1], 2)
        reward, costs = one.step_one(tuple(action), np.random.default_rng(1))
        rewards, array_costs = many.step(np.array([action, action]), np.random.default_rng(1))
        assert reward == pytest.approx(rewards[0], abs=1e-12)
        assert costs == {name: pytest.approx(value[0], abs=1e-12) for name, value in array_costs.items()}
        np.testing.assert_allclose(one.observation()[0], many.observation()[0], atol=1e-12)


def test_hidden_goal_drops_the_goal_lidar():
    seen, hidden = (gym.make("cmdp_envs/PointGoalArc1-v0", hidden_goal=flag) for flag in (False, True))
    task = seen.unwrapped.family.task(layout_seed=3)
    observation, _ = seen.reset(options={"task": task})
    hidden_observation, _ = hidden.reset(options={"task": task})
    assert observation.shape == (60,) and hidden_observation.shape == (44,)
    np.testing.assert_array_equal(hidden_observation, np.concatenate([observation[:12], observation[28:]]))


@pytest.mark.parametrize("n_bins, alias", [(16, True), (16, False), (10, True)])
def test_lidar_follows_safety_gymnasiums_formula_object_by_object(n_bins, alias):
    """The compiled lidar against Safety-Gymnasium's formula written out per object in the robot's frame (its
    ``obs_lidar_pseudo``): bin of the bearing mod 2 pi, strength ``max(0, max_dist - d) / max_dist``, alias weights
    into the neighbouring bins, maxima per bin; absent objects read nothing. Ten bins take the modulo path."""
    from cmdp_envs.families.navigation.lidar import ABSENT, PseudoLidar

    rng = np.random.default_rng(0)
    n_envs, group, max_dist = 64, np.array([0, 1, 1, 1, 2, 1]), 3.0
    lidar = PseudoLidar(n_envs, group, 3, max_dist, n_bins=n_bins, alias=alias)
    origin, heading = rng.uniform(-2, 2, (n_envs, 2)), rng.uniform(-10, 10, n_envs)
    objects = rng.uniform(-4, 4, (n_envs, len(group), 2))
    objects[::3, 2] = ABSENT
    out = np.full((n_envs, 3 * n_bins + 5), -1.0)  # a view with a stride, as the observation's lidar part is
    lidar(origin, heading, objects, out[:, 5:])
    assert np.all(out[:, :5] == -1.0), "the lidar writes only its own columns"
    width = 2 * math.pi / n_bins
    for i in range(n_envs):
        expected = np.zeros(3 * n_bins)
        cos_psi, sin_psi = math.cos(heading[i]), math.sin(heading[i])
        for (ox, oy), g in zip(objects[i], group):
            dx, dy = ox - origin[i, 0], oy - origin[i, 1]
            ex, ey = cos_psi * dx + sin_psi * dy, -sin_psi * dx + cos_psi * dy
            strength = max(0.0, max_dist - math.hypot(ex, ey)) / max_dist
            angle = math.atan2(ey, ex) % (2 * math.pi)
            bin_ = int(angle / width)
            expected[g * n_bins + bin_] = max(expected[g * n_bins + bin_], strength)
            if alias:
                fraction = angle / width - bin_
                for neighbour, value in (((bin_ + 1) % n_bins, fraction * strength),
                                         ((bin_ - 1) % n_bins, (1 - fraction) * strength)):
                    expected[g * n_bins + neighbour] = max(expected[g * n_bins + neighbour], value)
        np.testing.assert_allclose(out[i, 5:], expected, atol=1e-9)
    assert np.count_nonzero(out[:, 5:]) > n_envs, "most objects are within reach"
