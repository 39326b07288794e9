"""Semantics of every wrapper in cmdp_envs.wrappers."""

import doctest
import importlib

import gymnasium as gym
import numpy as np
import pytest

from cmdp_envs.wrappers import (
    CostFunction,
    GymnasiumToSafetyGymnasium,
    LagrangianReward,
    RecordEpisodeCost,
    SafetyGymnasiumToGymnasium,
    TaskSampling,
)

WRAPPER_MODULES = ["task_sampling", "episode_cost", "cost_function", "lagrangian", "safety_gymnasium_api"]


@pytest.mark.parametrize("module", WRAPPER_MODULES)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(f"cmdp_envs.wrappers.{module}"), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


# TaskSampling ----------------------------------------------------------------------------------------------------


def test_task_sampling_draws_from_the_family_reproducibly():
    def tasks(seed):
        env = TaskSampling(gym.make("cmdp_envs/GridWorldVaried-v0"), seed=seed)
        return [env.reset()[1]["task"] for _ in range(30)]

    first = tasks(0)
    assert first == tasks(0) and first != tasks(1)
    assert len(set(first)) == 30
    family = gym.make("cmdp_envs/GridWorldVaried-v0").unwrapped.family
    for task in first:
        family.check_task(task)
    assert len({t.goal for t in first}) > 1 and len({t.unsafe_cells for t in first}) > 1


def test_task_sampling_follows_reset_seeds_like_the_env():
    env = TaskSampling(gym.make("cmdp_envs/GridWorld-v0"))
    env.reset()  # an unseeded first reset must not make later seeds ineffective
    first = [env.reset(seed=11 if i == 0 else None)[1]["task"] for i in range(5)]
    again = [env.reset(seed=11 if i == 0 else None)[1]["task"] for i in range(5)]
    assert first == again
    assert env.reset(seed=0)[1]["task"] == env.reset(seed=0)[1]["task"]
    seeded = TaskSampling(gym.make("cmdp_envs/GridWorld-v0"), seed=3)
    assert seeded.reset(seed=0)[1]["task"] != env.reset(seed=0)[1]["task"], "the constructor seed enters the stream"


def test_task_sampling_sub_envs_of_a_vector_env_draw_different_tasks():
    vector = gym.vector.SyncVectorEnv(
        [lambda: TaskSampling(gym.make("cmdp_envs/GridWorld-v0"), seed=0) for _ in range(3)]
    )
    _, info = vector.reset(seed=0)
    noises = [task.noise for task in info["task"]]
    assert len(set(noises)) == 3
    _, info_again = vector.reset(seed=0)
    assert [task.noise for task in info_again["task"]] == noises


def test_task_sampling_from_a_list_and_explicit_tasks_win(paper_family):
    pool = [paper_family.task(noise=i) for i in (0.1, 0.2)]
    env = TaskSampling(gym.make("cmdp_envs/GridWorld-v0"), tasks=pool, seed=0)
    drawn = [env.reset()[1]["task"] for _ in range(50)]
    assert set(drawn) == set(pool)
    explicit = paper_family.task(noise=0.4)
    _, info = env.reset(options={"task": explicit})
    assert info["task"] == explicit == env.unwrapped.task


def test_task_sampling_bad_input(paper_family, varied_family):
    with pytest.raises(TypeError, match="needs an env with .family"):
        TaskSampling(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="must not be empty"):
        TaskSampling(gym.make("cmdp_envs/GridWorld-v0"), tasks=[])
    with pytest.raises(ValueError, match="fixed at"):
        TaskSampling(gym.make("cmdp_envs/GridWorld-v0"), tasks=[varied_family.task(goal=(0, 6))])


# RecordEpisodeCost -----------------------------------------------------------------------------------------------


def test_record_episode_cost_sums_match_the_steps():
    env = RecordEpisodeCost(gym.make("cmdp_envs/GridWorld-v0", max_episode_steps=40), gamma=0.9)
    env.reset(seed=2)
    env.action_space.seed(2)
    rewards, costs = [], []
    done = False
    while not done:
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        rewards.append(reward)
        costs.append(info["cost"])
        done = terminated or truncated
        assert ("episode" in info) == done
    discounts = 0.9 ** np.arange(len(costs))
    episode = info["episode"]
    assert episode["l"] == 40 and episode["r"] == pytest.approx(sum(rewards))
    assert episode["c"] == pytest.approx(sum(costs))
    assert episode["c_discounted"] == pytest.approx(discounts @ costs)
    assert episode["r_discounted"] == pytest.approx(discounts @ rewards)
    assert list(env.cost_queue) == [episode["c"]] and list(env.return_queue) == [episode["r"]]


def test_record_episode_cost_extends_gymnasium_statistics():
    inner = gym.wrappers.RecordEpisodeStatistics(gym.make("cmdp_envs/GridWorld-v0", max_episode_steps=5))
    env = RecordEpisodeCost(inner)
    env.reset(seed=0)
    for _ in range(5):
        _, _, _, truncated, info = env.step(0)
    assert truncated and {"r", "l", "t", "c"} <= set(info["episode"])
    assert "c_discounted" not in info["episode"]


def test_record_episode_cost_extends_sb3_monitor():
    monitor = pytest.importorskip("stable_baselines3.common.monitor", reason="stable-baselines3 is in the 'sb3' extra")
    env = RecordEpisodeCost(monitor.Monitor(gym.make("cmdp_envs/GridWorld-v0", max_episode_steps=5)))
    env.reset(seed=0)
    for _ in range(5):
        _, _, _, truncated, info = env.step(0)
    assert {"r", "l", "t", "c"} <= set(info["episode"])


def test_record_episode_cost_in_an_sb3_make_vec_env_stack():
    env_util = pytest.importorskip("stable_baselines3.common.env_util", reason="stable-baselines3 is in the 'sb3' extra")
    vec_env = env_util.make_vec_env(
        "cmdp_envs/GridWorld-v0", n_envs=2, seed=0, env_kwargs={"max_episode_steps": 10},
        wrapper_class=RecordEpisodeCost, wrapper_kwargs={"gamma": 0.9},
    )
    vec_env.reset()
    for _ in range(10):
        _, _, dones, infos = vec_env.step(np.array([0, 1]))
    assert dones.all()
    for info in infos:
        assert {"r", "l", "t", "c", "c_discounted"} <= set(info["episode"])


def test_record_episode_cost_bad_use():
    with pytest.raises(RuntimeError, match="reset"):
        RecordEpisodeCost(gym.make("cmdp_envs/GridWorld-v0")).step(0)
    env = RecordEpisodeCost(gym.make("CartPole-v1"))
    env.reset(seed=0)
    with pytest.raises(KeyError, match="CostFunction"):
        env.step(0)
    with pytest.raises(ValueError, match="gamma"):
        RecordEpisodeCost(gym.make("CartPole-v1"), gamma=1.5)


# CostFunction ----------------------------------------------------------------------------------------------------


def test_cost_function_on_cartpole():
    calls = []

    def off_centre(observation, action, next_observation, info):
        calls.append((observation.copy(), action, next_observation.copy()))
        return float(abs(next_observation[0]) > 0.05)

    env = RecordEpisodeCost(CostFunction(gym.make("CartPole-v1"), off_centre))
    observation, info = env.reset(seed=0)
    assert info["cost"] == 0.0
    total, done = 0.0, False
    while not done:
        previous = observation
        observation, _, terminated, truncated, info = env.step(1)
        assert info["cost"] == float(abs(observation[0]) > 0.05)
        np.testing.assert_array_equal(calls[-1][0], previous)
        total += info["cost"]
        done = terminated or truncated
    assert total > 0 and info["episode"]["c"] == total


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "x", None])
def test_cost_function_rejects_invalid_costs(bad):
    env = CostFunction(gym.make("CartPole-v1"), lambda *args: bad)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="cost"):
        env.step(0)


def test_cost_function_bad_use():
    with pytest.raises(TypeError, match="callable"):
        CostFunction(gym.make("CartPole-v1"), 1.0)
    with pytest.raises(RuntimeError, match="reset"):
        CostFunction(gym.make("CartPole-v1"), lambda *args: 0.0).step(0)
    env = CostFunction(gym.make("cmdp_envs/GridWorld-v0"), lambda *args: 1.0)
    with pytest.raises(ValueError, match="overwrite=True"):
        env.reset(seed=0)  # the conflict shows at reset, before the inner env ever steps
    env = CostFunction(gym.make("cmdp_envs/GridWorld-v0"), lambda *args: 1.0, overwrite=True)
    env.reset(seed=0)
    assert env.step(0)[-1]["cost"] == 1.0


# LagrangianReward ------------------------------------------------------------------------------------------------


def test_lagrangian_reward_and_runtime_multiplier():
    env = LagrangianReward(gym.make("cmdp_envs/GridWorld-v0"), multiplier=0.0)
    env.reset(seed=0)
    env.unwrapped._state = 16  # (2, 2): unsafe
    _, reward, _, _, info = env.step(0)
    assert reward == 0.0 and info["cost"] == 10.0 and info["reward"] == 0.0
    env.multiplier = 0.3
    env.unwrapped._state = 16
    _, reward, _, _, _ = env.step(0)
    assert reward == pytest.approx(-3.0)
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="multiplier"):
            env.set_multiplier(bad)
    assert env.multiplier == 0.3


def test_lagrangian_multiplier_through_sb3_vector_envs_behind_monitor():
    env_util = pytest.importorskip("stable_baselines3.common.env_util", reason="stable-baselines3 is in the 'sb3' extra")
    # make_vec_env puts Monitor outside the env_kwargs-built env: the multiplier must still reach the reward.
    vec_env = env_util.make_vec_env(lambda: LagrangianReward(gym.make("cmdp_envs/GridWorld-v0")), n_envs=2, seed=0)
    vec_env.env_method("set_multiplier", 2.0)
    vec_env.reset()
    rng = np.random.default_rng(0)
    total_cost = 0.0
    for _ in range(300):
        _, rewards, _, infos = vec_env.step(rng.integers(4, size=2))
        for reward, info in zip(rewards, infos):
            assert reward == pytest.approx(info["reward"] - 2.0 * info["cost"])
            total_cost += info["cost"]
    assert total_cost > 0, "the check saw costly steps"


def test_lagrangian_needs_costs():
    env = LagrangianReward(gym.make("CartPole-v1"))
    env.reset(seed=0)
    with pytest.raises(KeyError, match="info\\['cost'\\]"):
        env.step(0)


# Safety-Gymnasium API --------------------------------------------------------------------------------------------


def test_safety_gymnasium_round_trip_preserves_every_element():
    plain = gym.make("cmdp_envs/GridWorld-v0")
    safe = GymnasiumToSafetyGymnasium(gym.make("cmdp_envs/GridWorld-v0"))
    back = SafetyGymnasiumToGymnasium(GymnasiumToSafetyGymnasium(gym.make("cmdp_envs/GridWorld-v0")))
    for env in (plain, safe, back):
        env.reset(seed=9)
    for action in [0, 1, 2, 3] * 30:
        o1, r1, te1, tr1, i1 = plain.step(action)
        o2, r2, c2, te2, tr2, i2 = safe.step(action)
        o3, r3, te3, tr3, i3 = back.step(action)
        assert o1 == o2 == o3 and r1 == r2 == r3 and te1 == te2 == te3 and tr1 == tr2 == tr3
        assert i1["cost"] == c2 == i2["cost"] == i3["cost"]
        assert isinstance(c2, float)


def test_safety_gymnasium_adapters_bad_input():
    env = GymnasiumToSafetyGymnasium(gym.make("CartPole-v1"))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="no 'cost'"):
        env.step(0)
    env = SafetyGymnasiumToGymnasium(gym.make("cmdp_envs/GridWorld-v0"))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="expected a 6-tuple"):
        env.step(0)


def test_adapters_match_safety_gymnasiums_own_conversion_wrappers():
    """Lane B has safety-gymnasium (through OmniSafe): our adapters must give exactly what its own wrappers give."""
    safety_gymnasium = pytest.importorskip(
        "safety_gymnasium", reason="safety-gymnasium comes with the 'omnisafe' extra (Python 3.10, lane B)"
    )
    from safety_gymnasium.wrappers import Gymnasium2SafetyGymnasium, SafetyGymnasium2Gymnasium

    ours = SafetyGymnasiumToGymnasium(safety_gymnasium.make("SafetyPointGoal1-v0"))
    theirs = SafetyGymnasium2Gymnasium(safety_gymnasium.make("SafetyPointGoal1-v0"))
    o1, _ = ours.reset(seed=0)
    o2, _ = theirs.reset(seed=0)
    np.testing.assert_array_equal(o1, o2)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(50, 2))
    for action in actions:
        a, b = ours.step(action), theirs.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4] and a[4]["cost"] == b[4]["cost"]
    ours = GymnasiumToSafetyGymnasium(gym.make("cmdp_envs/GridWorld-v0"))
    theirs = Gymnasium2SafetyGymnasium(gym.make("cmdp_envs/GridWorld-v0"))
    ours.reset(seed=1)
    theirs.reset(seed=1)
    for action in [0, 1, 2, 3] * 25:
        a, b = ours.step(action), theirs.step(action)
        assert a[:5] == b[:5] and a[5] == b[5]
