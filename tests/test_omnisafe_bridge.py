"""The OmniSafe bridge (lane B: Python 3.10 with the 'omnisafe' extra): real OmniSafe training on GridWorld."""

import importlib.util

import gymnasium as gym
import numpy as np
import pytest

from conftest import Z

if importlib.util.find_spec("omnisafe") is None:
    pytest.skip("OmniSafe is in the 'omnisafe' extra (Python 3.10, lane B)", allow_module_level=True)

import omnisafe  # noqa: E402
import torch  # noqa: E402

from cmdp_envs.meta.policies import tabular_policy_from_omnisafe  # noqa: E402
from cmdp_envs.tabular import EpisodeSampler, evaluate_policy  # noqa: E402
from cmdp_envs.wrappers import RecordEpisodeCost  # noqa: E402
from cmdp_envs.wrappers.omnisafe_bridge import (  # noqa: E402
    bridge_settings,
    cost_limit_keys,
    omnisafe_custom_cfgs,
    register_omnisafe_envs,
    register_omnisafe_task,
    unregister_omnisafe_task,
)


@pytest.fixture(scope="module", autouse=True)
def registered():
    torch.set_num_threads(1)
    return register_omnisafe_envs()


def test_every_id_is_an_omnisafe_env(registered):
    from omnisafe.envs.core import support_envs

    assert set(registered) <= set(support_envs())
    assert register_omnisafe_envs() == registered, "idempotent"


def test_cost_limit_keys_per_algorithm_family():
    assert cost_limit_keys("PPOLag") == [("lagrange_cfgs", "cost_limit")]
    assert cost_limit_keys("TRPOLag") == [("lagrange_cfgs", "cost_limit")]
    assert cost_limit_keys("CPO") == [("algo_cfgs", "cost_limit")]
    assert cost_limit_keys("PPOSaute") == [("algo_cfgs", "safety_budget")]
    with pytest.raises(ValueError, match="unknown OmniSafe algorithm"):
        cost_limit_keys("DQN")


def make_bridge(env_id, num_envs=1, **kwargs):
    from omnisafe.envs.core import make

    return make(env_id, num_envs=num_envs, device="cpu", **kwargs)


def test_spaces_tensors_and_seeding():
    env = make_bridge("cmdp_envs/GridWorld-v0")
    assert isinstance(env.observation_space, gym.spaces.Box) and env.observation_space.shape == (49,)
    assert isinstance(env.action_space, gym.spaces.Box) and env.action_space.shape == (4,)
    assert env.max_episode_steps == 200
    env.set_seed(3)
    first, _ = env.reset()
    env.set_seed(3)
    again, _ = env.reset()
    assert torch.equal(first, again) and first.dtype == torch.float32 and first.sum() == 1.0
    action = torch.tensor([0.1, 0.9, -0.3, 0.0])  # argmax 1: right
    observation, reward, cost, terminated, truncated, info = env.step(action)
    assert observation.shape == (49,) and reward.shape == () and cost.dtype == torch.float32
    assert terminated.dtype == torch.bool and "final_observation" in info


def test_cost_semantics():
    """Discounted: step costs stay raw (for the critic) and info["original_cost"], which OmniSafe sums into EpCost,
    adds up to RecordEpisodeCost's discounted cost. Undiscounted: no original_cost, EpCost is the plain sum."""
    bridge = make_bridge("cmdp_envs/GridWorld-v0")
    plain = make_bridge(register_omnisafe_task("cmdp_envs/GridWorld-v0", cost_semantics="undiscounted"))
    reference = RecordEpisodeCost(gym.make("cmdp_envs/GridWorld-v0"), gamma=0.9)
    rng = np.random.default_rng(0)
    for env in (bridge, plain):
        env.set_seed(11)
        env.reset()
    reference.reset(seed=11)
    totals = np.zeros(3)
    for _ in range(200):
        a = int(rng.integers(4))
        vector = torch.nn.functional.one_hot(torch.tensor(a), 4).float()
        *_, info_discounted = step = bridge.step(vector)
        *_, info_plain = plain_step = plain.step(vector)
        assert step[2].item() == plain_step[2].item(), "the step cost is the raw cost under both semantics"
        assert "original_cost" not in info_plain
        totals += [info_discounted["original_cost"].item(), step[2].item(), plain_step[2].item()]
        *_, info = reference.step(a)
    assert totals[0] == pytest.approx(info["episode"]["c_discounted"])
    assert totals[1] == totals[2] == pytest.approx(info["episode"]["c"])


def test_vectorised_bridge_resets_finished_episodes():
    env = make_bridge(register_omnisafe_task("cmdp_envs/GridWorld-v0", max_episode_steps=3), num_envs=2)
    env.set_seed(0)
    observation, _ = env.reset()
    assert observation.shape == (2, 49)
    for step in range(3):
        observation, reward, cost, terminated, truncated, info = env.step(torch.zeros(2, 4))
    assert truncated.tolist() == [True, True]
    assert info["final_observation"].shape == (2, 49)


def test_a_fixed_task_for_any_algorithm(paper_family):
    task = paper_family.task(noise=0.1)
    omnisafe_id = register_omnisafe_task("cmdp_envs/GridWorld-v0", task=task)
    assert bridge_settings(omnisafe_id).task == task
    assert register_omnisafe_task("cmdp_envs/GridWorld-v0", task=task) == omnisafe_id, "stable names"
    env = make_bridge(omnisafe_id)
    assert env.task == task
    cfgs = omnisafe_custom_cfgs("CPO", omnisafe_id, total_steps=1000)
    assert cfgs["algo_cfgs"]["cost_limit"] == task.cost_limit and cfgs["algo_cfgs"]["gamma"] == 0.9
    with pytest.raises(ValueError, match="outside its range"):
        register_omnisafe_task("cmdp_envs/GridWorld-v0", task=paper_family.task(noise=0.1).__class__(noise=0.9))


def test_tasks_drawn_per_episode_and_every_episode_recorded(paper_family):
    """``tasks=``: each episode of each sub-env draws one of the tasks (pre-training on a distribution); the bridge,
    when asked, records every finished episode's step count, return and cost (OmniSafe's own log averages the last
    50)."""
    tasks = paper_family.sample(3, seed=0)
    omnisafe_id = register_omnisafe_task(paper_family, tasks=tasks, max_episode_steps=3)
    assert bridge_settings(omnisafe_id).tasks == tuple(tasks)
    env = make_bridge(omnisafe_id, num_envs=2)
    env.record_episodes = True  # off by default: long runs keep no growing list
    env.set_seed(0)
    env.reset()
    seen = set()
    for _ in range(30):
        env.step(torch.zeros(2, 4))
        seen |= {sub.unwrapped.task for sub in env._envs.envs}
    assert seen == set(tasks)
    assert [steps for steps, _, _ in env.episodes] == [steps for steps in range(6, 61, 6) for _ in range(2)]
    assert all(cost >= 0 for _, _, cost in env.episodes)
    with pytest.raises(ValueError, match="either task or tasks"):
        register_omnisafe_task(paper_family, task=tasks[0], tasks=tasks)


def test_envs_built_by_a_given_make_env(paper_family):
    """``make_env=``: every sub-env is the caller's own, fixed on the task (its time limit too); the id is new each
    time and is dropped by unregister_omnisafe_task."""
    task = paper_family.task(noise=0.1)
    built = []

    def make_env():
        built.append(paper_family.make_env(task=task, max_episode_steps=3))
        return built[-1]

    omnisafe_id = register_omnisafe_task(paper_family, task=task, make_env=make_env)
    assert omnisafe_id != register_omnisafe_task(paper_family, task=task, make_env=make_env)
    env = make_bridge(omnisafe_id, num_envs=2)
    assert env._envs.envs == built[-2:] and env.task == task
    env.reset(seed=0)
    truncated = [env.step(torch.zeros(2, 4))[4] for _ in range(3)]
    assert [t.tolist() for t in truncated] == [[False, False], [False, False], [True, True]]
    unregister_omnisafe_task(omnisafe_id)
    with pytest.raises(KeyError, match="not registered"):
        bridge_settings(omnisafe_id)
    with pytest.raises(ValueError, match="pass task="):
        register_omnisafe_task(paper_family, make_env=make_env)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["PPOLag", "TRPOLag", "CPO"])
def test_omnisafe_trains_and_the_result_is_evaluated_exactly(algo, tmp_path, paper_family):
    cfgs = omnisafe_custom_cfgs(algo, "cmdp_envs/GridWorld-v0", total_steps=2000, steps_per_epoch=1000, seed=0,
                                log_dir=str(tmp_path))
    agent = omnisafe.Agent(algo, "cmdp_envs/GridWorld-v0", custom_cfgs=cfgs)
    ep_ret, ep_cost, ep_len = agent.learn()
    assert ep_len == 200 and np.isfinite(ep_ret) and ep_cost >= 0
    actor = agent.agent._actor_critic.actor
    policy = tabular_policy_from_omnisafe(actor, 49, n_samples=20_000)
    cmdp = paper_family.tabular(paper_family.default_task)
    reward_value, cost_value = evaluate_policy(cmdp, policy.probabilities)
    # The exact values of the extracted policy agree with rollouts of the actor itself through the bridge.
    env = make_bridge("cmdp_envs/GridWorld-v0")
    env.set_seed(1)
    observation, _ = env.reset()
    n_episodes, horizon = 300, 60
    returns = np.zeros((n_episodes, 2))
    with torch.no_grad():
        for episode in range(n_episodes):
            discount = 1.0
            for t in range(horizon):
                action = actor.predict(observation, deterministic=False)
                observation, reward, cost, *_, info = env.step(action)
                returns[episode] += [discount * reward.item(), info["original_cost"].item()]  # gamma^t c_t
                discount *= 0.9
            observation, _ = env.reset()
    mean, stderr = returns.mean(axis=0), returns.std(axis=0, ddof=1) / np.sqrt(n_episodes)
    # Tolerance: Z standard errors, plus the probability estimate's error and the 60-step truncation.
    assert abs(mean[0] - reward_value) <= Z * stderr[0] + 0.5, (mean[0], reward_value)
    assert abs(mean[1] - cost_value) <= Z * stderr[1] + 0.1, (mean[1], cost_value)
    batch = EpisodeSampler(cmdp, policy.probabilities, horizon=60).sample(20_000, seed=0)
    assert abs(batch.cost_return.mean() - cost_value) <= Z * batch.cost_return.std() / np.sqrt(20_000) + 1e-3


@pytest.mark.slow
def test_env_cfgs_fix_the_task_for_ppolag(tmp_path):
    cfgs = omnisafe_custom_cfgs("PPOLag", "cmdp_envs/GridWorld-v0", total_steps=1000, steps_per_epoch=1000,
                                log_dir=str(tmp_path), env_cfgs={"task": {"noise": 0.05}})
    agent = omnisafe.Agent("PPOLag", "cmdp_envs/GridWorld-v0", custom_cfgs=cfgs)
    assert agent.agent._env._env.task.noise == 0.05


def test_navigation_bridge_steps_the_native_vector_env_in_one_call():
    """num_envs > 1 on a navigation family: one NavigationVectorEnv behind the bridge, the same numbers as Gymnasium
    envs stepped in turn, episodes reset by the bridge, the family's undiscounted cost semantics."""
    from cmdp_envs import Fixed
    from cmdp_envs.families.navigation import GoalFamily

    family = GoalFamily(cost_semantics="undiscounted", cost_limit=Fixed(25.0))
    native = make_bridge(register_omnisafe_task(family, max_episode_steps=30), num_envs=4)
    in_turn = make_bridge(register_omnisafe_task(family, max_episode_steps=30, render_mode=None), num_envs=4)
    assert type(native._envs).__name__ == "_NativeSubEnvs" and type(in_turn._envs).__name__ == "_GymSubEnvs"
    assert native.cost_semantics == "undiscounted"
    cfgs = omnisafe_custom_cfgs("PPOLag", register_omnisafe_task(family, max_episode_steps=30), total_steps=1000)
    assert cfgs["lagrange_cfgs"]["cost_limit"] == 25.0
    for env in (native, in_turn):
        env.set_seed(0)
    observations = [native.reset()[0], in_turn.reset()[0]]
    assert observations[0].shape == (4, 60)
    torch.testing.assert_close(observations[0], observations[1])
    actions = torch.as_tensor(np.random.default_rng(0).uniform(-1, 1, (30, 4, 2)), dtype=torch.float32)
    for action in actions:
        native_step, in_turn_step = native.step(action), in_turn.step(action)
        for ours, theirs in zip(native_step[:5], in_turn_step[:5]):
            torch.testing.assert_close(ours, theirs)
        assert "original_cost" not in native_step[5]
    assert native_step[4].all(), "the 30th step truncates every sub-env"
    torch.testing.assert_close(native_step[5]["final_observation"], in_turn_step[5]["final_observation"])


@pytest.mark.slow
def test_omnisafe_ppolag_trains_on_a_navigation_family_with_several_envs(tmp_path):
    from cmdp_envs.families.navigation import GoalFamily

    omnisafe_id = register_omnisafe_task(GoalFamily(), max_episode_steps=200)
    cfgs = omnisafe_custom_cfgs("PPOLag", omnisafe_id, total_steps=4000, steps_per_epoch=2000, log_dir=str(tmp_path),
                                train_cfgs={"vector_env_nums": 4}, algo_cfgs={"update_iters": 2})
    episode_return, episode_cost, episode_length = omnisafe.Agent("PPOLag", omnisafe_id, custom_cfgs=cfgs).learn()
    assert np.isfinite(episode_return) and episode_cost >= 0 and episode_length == 200
