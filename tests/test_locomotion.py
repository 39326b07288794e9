"""The locomotion families on Gymnasium's own MuJoCo robots (cmdp_envs/families/locomotion.py), in both lanes: v5
robots on Gymnasium 1.x, v4 on 0.28.1."""

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("mujoco", reason='MuJoCo comes with the "mujoco" extra (lane A) or safety-gymnasium (lane B)')

import cmdp_envs  # noqa: E402
from cmdp_envs.families.locomotion import HEAD_HEIGHT_THRESHOLD, ROBOTS, LocomotionFamily  # noqa: E402
from cmdp_envs.task import Choice  # noqa: E402

LOCOMOTION_IDS = [env_id for env_id in cmdp_envs.registered_ids() if "Locomotion" in env_id
                  or "NiKamgarpour" in env_id or env_id.endswith("Velocity-v0")]
MODEL_FIELDS = ("body_mass", "body_inertia", "geom_friction", "dof_damping")


def rollout(env, seed, actions):
    observations = [env.reset(seed=seed)[0]]
    for action in actions:
        observation, *_ = env.step(action)
        observations.append(observation)
    return np.array(observations)


@pytest.mark.parametrize("robot", list(ROBOTS))
def test_the_default_task_runs_gymnasiums_robot_state_for_state(robot):
    """Same seed, same actions: our env's observations are the raw Gymnasium env's, bit for bit, with the default
    task (unit scales); a heavier task moves differently."""
    family = LocomotionFamily(robot=robot, mass_scale=Choice((1.0, 1.5)))
    ours = family.make_env()
    raw = gym.make(ROBOTS[robot].gymnasium_id)
    actions = np.random.default_rng(0).uniform(ours.action_space.low, ours.action_space.high,
                                               (30, *ours.action_space.shape))
    np.testing.assert_array_equal(rollout(ours, 3, actions), rollout(raw, 3, actions))
    heavy = family.make_env(task=family.task(mass_scale=1.5))
    assert not np.array_equal(rollout(heavy, 3, actions), rollout(raw, 3, actions))
    for env in (ours, raw, heavy):
        env.close()


def test_a_thousand_task_changes_leave_the_model_as_compiled():
    family = LocomotionFamily(robot="Ant", mass_scale=cmdp_envs.task.Uniform(0.5, 2.0),
                              friction_scale=cmdp_envs.task.Uniform(0.5, 2.0),
                              damping_scale=cmdp_envs.task.Uniform(0.5, 2.0),
                              gravity_scale=cmdp_envs.task.Uniform(0.5, 1.5))
    env = family.make_env()
    model = env.unwrapped._env.model
    pristine = gym.make(ROBOTS["Ant"].gymnasium_id).unwrapped.model
    tasks = family.sample(1000, seed=0)
    for task in tasks:
        env.unwrapped.set_task(task)
    last = tasks[-1]
    np.testing.assert_array_equal(model.body_mass, pristine.body_mass * last.mass_scale)
    np.testing.assert_array_equal(model.opt.gravity, pristine.opt.gravity * last.gravity_scale)
    env.reset(options={"task": dataclasses.replace(last, mass_scale=1.0, friction_scale=1.0, damping_scale=1.0,
                                                   gravity_scale=1.0)})
    for name in MODEL_FIELDS:
        assert getattr(model, name).tobytes() == getattr(pristine, name).tobytes(), name
    assert model.opt.gravity.tobytes() == pristine.opt.gravity.tobytes()
    env.close()


def test_rewards_and_costs_follow_their_definitions():
    """Target velocity, direction and Gymnasium's own reward; Safety-Gymnasium's velocity indicator (forward
    velocity for HalfCheetah, planar speed for Ant), the control effort and the head-height indicator."""
    rng = np.random.default_rng(1)
    cases = [("HalfCheetah", "target_velocity", "velocity"), ("Ant", "direction", "velocity"),
             ("Hopper", "gymnasium", "control"), ("HalfCheetah", "target_velocity", "head_height")]
    for robot, reward_kind, cost_kind in cases:
        family = LocomotionFamily(robot=robot, reward=reward_kind, cost=cost_kind,
                                  cost_threshold=cmdp_envs.task.Fixed(0.3) if cost_kind == "velocity" else None)
        env = family.make_env()
        task = family.sample(1, seed=4)[0]
        env.reset(seed=0, options={"task": task})
        costs = []
        for _ in range(40):
            action = rng.uniform(env.action_space.low, env.action_space.high)
            _, reward, terminated, truncated, info = env.step(action)
            v = info["x_velocity"]
            expected_reward = {"target_velocity": -abs(v - task.target_velocity), "direction": task.direction * v,
                               "gymnasium": info["gymnasium_reward"]}[reward_kind]
            assert reward == pytest.approx(expected_reward)
            if cost_kind == "velocity":
                speed = math.hypot(v, info["y_velocity"]) if ROBOTS[robot].planar_speed else v
                assert info["cost"] == float(speed > 0.3)
            elif cost_kind == "control":
                assert info["cost"] == pytest.approx(float(np.sum(action**2)))
            else:
                head = env.unwrapped._env.data.geom_xpos[env.unwrapped._head][2]
                assert info["cost"] == float(head > HEAD_HEIGHT_THRESHOLD)
            costs.append(info["cost"])
            if terminated or truncated:
                break
        assert all(cost >= 0 for cost in costs)
        env.close()


def test_registered_ids_and_the_papers_settings():
    assert len(LOCOMOTION_IDS) == 14
    hopper = gym.make("cmdp_envs/HopperNiKamgarpour-v0")
    family = hopper.unwrapped.family
    assert (family.robot, family.cost, family.reward) == ("Hopper", "control", "target_velocity")
    targets = np.array([task.target_velocity for task in family.sample(4000, seed=0)])
    assert targets.min() >= 0 and targets.max() <= 1 and 0.45 < targets.mean() < 0.55
    cheetah = gym.make("cmdp_envs/HalfCheetahNiKamgarpour-v0").unwrapped.family
    assert cheetah.cost == "head_height" and cheetah.default_task.cost_threshold == HEAD_HEIGHT_THRESHOLD
    velocity = gym.make("cmdp_envs/AntVelocity-v0").unwrapped.family
    assert velocity.cost_semantics == "undiscounted" and velocity.default_task.cost_threshold == 2.6222
    assert hopper.spec.max_episode_steps == 1000
    hopper.close()


def test_the_papers_hopper_runs_on_after_a_fall():
    """With a reward of -|v_x - target| <= 0, ending the episode by falling would be the best policy: the paper's
    Hopper runs every episode to its time limit, while Gymnasium's termination stays the default elsewhere."""
    lengths = {}
    for env_id in ("cmdp_envs/HopperNiKamgarpour-v0", "cmdp_envs/HopperLocomotion-v0"):
        env = gym.make(env_id, max_episode_steps=300)
        env.reset(seed=0)
        env.action_space.seed(0)
        for step in range(1, 301):
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            assert reward <= 0 or env_id.endswith("Locomotion-v0")
            if terminated or truncated:
                break
        lengths[env_id] = (step, terminated)
    assert lengths["cmdp_envs/HopperNiKamgarpour-v0"] == (300, False)
    assert lengths["cmdp_envs/HopperLocomotion-v0"][1] and lengths["cmdp_envs/HopperLocomotion-v0"][0] < 100
    assert "terminate_when_unhealthy=False" in repr(gym.make("cmdp_envs/HopperNiKamgarpour-v0").unwrapped.family)
    with pytest.raises(ValueError, match="HalfCheetah never terminates"):
        LocomotionFamily("HalfCheetah", terminate_when_unhealthy=False)


@pytest.mark.parametrize("env_id", ["cmdp_envs/HalfCheetahLocomotion-v0", "cmdp_envs/HopperNiKamgarpour-v0"])
def test_env_checkers(env_id):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()
    sb3 = pytest.importorskip("stable_baselines3.common.env_checker", reason='SB3 comes with the "sb3" extra')
    env = gym.make(env_id)
    sb3.check_env(env, warn=True)
    env.close()


def test_bad_input_is_refused_with_the_accepted_range():
    with pytest.raises(ValueError, match="robot must be one of"):
        LocomotionFamily(robot="Dog")
    with pytest.raises(ValueError, match="head_height cost is HalfCheetah's"):
        LocomotionFamily(robot="Hopper", cost="head_height")
    with pytest.raises(ValueError, match="mass_scale.*outside"):
        LocomotionFamily(robot="Hopper", mass_scale=cmdp_envs.task.Fixed(0.0))
    family = LocomotionFamily(robot="Hopper")
    env = family.make_env()
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"tasks": []})
    with pytest.raises(ValueError, match="target_velocity"):
        family.task(target_velocity=3.0)
    env.close()


@pytest.mark.parametrize("robot", list(ROBOTS))
def test_velocity_ids_match_safety_gymnasium(robot):
    """Lane B: ``<Robot>Velocity-v0`` against Safety-Gymnasium's ``Safety<Robot>Velocity-v1`` under the same seed and
    actions: observations, rewards and costs identical, step for step, until either ends."""
    safety_gymnasium = pytest.importorskip("safety_gymnasium",
                                           reason="safety-gymnasium comes with the 'omnisafe' extra (lane B)")
    theirs = safety_gymnasium.make(f"Safety{robot}Velocity-v1")
    ours = gym.make(f"cmdp_envs/{robot}Velocity-v0")
    observation, _ = theirs.reset(seed=5)
    np.testing.assert_array_equal(ours.reset(seed=5)[0], observation)
    rng = np.random.default_rng(0)
    for _ in range(300):
        action = rng.uniform(ours.action_space.low, ours.action_space.high)
        observation, reward, cost, terminated, truncated, _ = theirs.step(action)
        our_observation, our_reward, our_terminated, our_truncated, info = ours.step(action)
        np.testing.assert_array_equal(our_observation, observation)
        assert (our_reward, info["cost"], our_terminated) == (reward, cost, terminated)
        if terminated:
            break
    theirs.close()
    ours.close()


def make_hopper():
    import cmdp_envs  # noqa: F401  (registers the ids in a worker process)

    return gym.make("cmdp_envs/HopperLocomotion-v0")


def test_vector_envs_give_each_sub_env_its_own_task():
    """``reset(options={"tasks": ...})`` on the vector entry point's env (built directly on Gymnasium 0.28.1), and
    ``set_attr("task", tasks)`` on Gymnasium's async vector env and SB3's ``SubprocVecEnv``: every sub-env runs its own
    task, and a sub-env runs exactly what a single env with its task runs."""
    from cmdp_envs.families.locomotion import LocomotionVectorEnv

    try:
        envs = gym.make_vec("cmdp_envs/HalfCheetahLocomotion-v0", num_envs=3, vectorization_mode="vector_entry_point")
        assert isinstance(envs, LocomotionVectorEnv)
    except gym.error.Error:  # Gymnasium 0.28.1's make_vec has no such mode: the class is built directly there
        envs = LocomotionVectorEnv(3, id_defaults=gym.spec("cmdp_envs/HalfCheetahLocomotion-v0").kwargs["id_defaults"])
    tasks = envs.family.sample(2, seed=0)
    observations, _ = envs.reset(seed=[0, 1, 2], options={"tasks": tasks})
    assert list(envs.get_attr("task")) == [tasks[0], tasks[1], tasks[0]]
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 3, 6))
    rewards = []
    for action in actions:
        _, reward, _, _, info = envs.step(action)
        rewards.append(reward)
        assert np.asarray(info["cost"]).shape == (3,)
    single = gym.make("cmdp_envs/HalfCheetahLocomotion-v0", family=envs.family, task=tasks[1])
    single.reset(seed=1)
    np.testing.assert_array_equal([single.step(action[1])[1] for action in actions], np.array(rewards)[:, 1])
    with pytest.raises(ValueError, match="target_velocity"):
        envs.reset(options={"tasks": [dataclasses.replace(tasks[0], target_velocity=5.0)]})
    assert envs.get_attr("task")[0] == tasks[0], "a bad task list changes nothing"
    envs.close()
    single.close()

    if hasattr(gym.Wrapper, "set_wrapper_attr"):  # Gymnasium 1.x: set_attr reaches the env through its wrappers
        async_envs = gym.make_vec("cmdp_envs/HopperLocomotion-v0", num_envs=2, vectorization_mode="async")
        family = async_envs.get_attr("family")[0]
        async_tasks = [family.task(target_velocity=0.1), family.task(target_velocity=0.9)]
        async_envs.set_attr("task", async_tasks)
        async_envs.reset(seed=0)
        _, rewards, _, _, info = async_envs.step(np.zeros((2, 3)))
        np.testing.assert_allclose(rewards, -np.abs(info["x_velocity"] - np.array([0.1, 0.9])))
        async_envs.close()

    vec_env = pytest.importorskip("stable_baselines3.common.vec_env", reason='SB3 comes with the "sb3" extra')

    subprocess_envs = vec_env.SubprocVecEnv([make_hopper, make_hopper])
    family = subprocess_envs.get_attr("family")[0]
    hopper_tasks = [family.task(target_velocity=0.1), family.task(target_velocity=0.9)]
    for index, task in enumerate(hopper_tasks):
        subprocess_envs.env_method("set_task", task, indices=[index])
    subprocess_envs.reset()
    _, rewards, _, infos = subprocess_envs.step(np.zeros((2, 3)))
    # The reward -|v_x - target| shows which target each worker's env runs.
    for reward, info, task in zip(rewards, infos, hopper_tasks):
        assert reward == pytest.approx(-abs(info["x_velocity"] - task.target_velocity))
    subprocess_envs.close()


def test_rgb_array_rendering_through_gymnasiums_renderer(tmp_path):
    """In a fresh process with MuJoCo's EGL backend (the variable must be set before MuJoCo loads); skipped, with the
    backend's error, where no OpenGL backend exists."""
    import os
    import subprocess
    import sys

    code = ("import gymnasium as gym, numpy as np, cmdp_envs\n"
            "env = gym.make('cmdp_envs/HalfCheetahLocomotion-v0', render_mode='rgb_array')\n"
            "env.reset(seed=0)\n"
            "image = env.render()\n"
            "print(image.shape, image.dtype, int(np.ptp(image)))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "MUJOCO_GL": "egl"}, timeout=120)
    if result.returncode != 0:
        pytest.skip(f"no OpenGL backend for MuJoCo here: {result.stderr.strip().splitlines()[-1]}")
    shape, dtype, spread = result.stdout.split(")")[0] + ")", *result.stdout.split(")")[1].split()
    assert shape == "(480, 480, 3)" and dtype == "uint8" and int(spread) > 50, result.stdout
