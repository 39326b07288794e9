"""SB3 Lagrangian learners (both lanes): the dual-ascent callback keeps PPO under the cost limit where plain PPO
violates it, checked by exact evaluation of the learned policies."""

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in the 'sb3' extra")
torch = pytest.importorskip("torch", reason="torch comes with the 'sb3' extra")

from cmdp_envs.meta.sb3_lagrangian import DualAscentCallback, lagrangian_learner  # noqa: E402
from cmdp_envs.tabular import evaluate_policy  # noqa: E402

PPO_KWARGS = dict(
    env_kwargs={"observation_type": "onehot", "max_episode_steps": 50},
    n_steps=256, batch_size=256, n_epochs=10, learning_rate=1e-3,
)


@pytest.fixture(autouse=True)
def one_torch_thread():
    # Two lanes' tests may share the machine's two cores; oversubscribed torch threads slow training tenfold.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def exact_values(model, cmdp):
    with torch.no_grad():
        probabilities = model.policy.get_distribution(torch.eye(cmdp.n_states)).distribution.probs.numpy()
    probabilities = probabilities.astype(np.float64)
    return evaluate_policy(cmdp, probabilities / probabilities.sum(axis=1, keepdims=True))


@pytest.mark.slow
def test_ppo_lagrangian_meets_the_limit_where_plain_ppo_violates_it():
    cmdp = gym.make("cmdp_envs/GridWorld-v0").unwrapped.tabular()
    results = {}
    for name, multiplier_lr in (("plain", 0.0), ("lagrangian", 0.05)):
        model, callback = lagrangian_learner(
            "PPO", "cmdp_envs/GridWorld-v0", cost_limit=1.5, gamma=0.9, seed=0, multiplier_lr=multiplier_lr,
            **PPO_KWARGS,
        )
        model.learn(60_000, callback=callback)
        results[name] = (exact_values(model, cmdp), callback)
    (plain_reward, plain_cost), plain_callback = results["plain"]
    (reward, cost), callback = results["lagrangian"]
    assert plain_cost > 1.5 * 2, f"plain PPO should violate the limit clearly, J_c = {plain_cost:.3f}"
    assert plain_callback.multiplier == 0.0
    assert cost <= 1.5 * 1.1, f"PPO-Lagrangian should end near or under the limit, J_c = {cost:.3f}"
    assert reward > 0.8 * 51.96, "and still reach the goal (constrained optimum J_r = 51.96)"
    assert callback.multiplier > 0 and len(callback.history) > 10
    assert {"multiplier", "episode_cost", "cost_limit", "constraint_satisfied"} <= set(callback.history[-1])


def test_trpo_lagrangian_runs_and_updates_the_multiplier():
    pytest.importorskip("sb3_contrib", reason="sb3-contrib is in the 'sb3' extra")
    model, callback = lagrangian_learner(
        "TRPO", "cmdp_envs/GridWorld-v0", cost_limit=0.0, gamma=0.9, seed=0, n_envs=2,
        env_kwargs={"observation_type": "onehot", "max_episode_steps": 50}, n_steps=256,
    )
    model.learn(2048, callback=callback)
    assert callback.multiplier > 0, "with a zero cost limit every costly rollout raises lambda"
    assert model.get_env().get_attr("multiplier") == [callback.multiplier] * 2, "the envs' multiplier is the callback's"


def test_multiplier_is_logged(tmp_path):
    from stable_baselines3.common.logger import configure

    model, callback = lagrangian_learner(
        "PPO", "cmdp_envs/GridWorld-v0", cost_limit=1.5, gamma=0.9, seed=0, n_envs=2, n_steps=128,
        env_kwargs={"max_episode_steps": 20},
    )
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(512, callback=callback)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"lagrangian/multiplier", "lagrangian/episode_cost", "lagrangian/constraint_satisfied"} <= set(header)


def test_bad_arguments():
    with pytest.raises(ValueError, match="cost_limit"):
        DualAscentCallback(cost_limit=-1.0)
    with pytest.raises(ValueError, match="multiplier_lr"):
        DualAscentCallback(cost_limit=1.0, multiplier_lr=float("nan"))
    with pytest.raises(ValueError, match="'PPO' or 'TRPO'"):
        lagrangian_learner("SAC", "cmdp_envs/GridWorld-v0", cost_limit=1.0, gamma=0.9)


def test_missing_episode_costs_are_reported():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from cmdp_envs.wrappers import LagrangianReward

    # LagrangianReward without RecordEpisodeCost: Monitor's info["episode"] has no discounted cost.
    vec_env = make_vec_env("cmdp_envs/GridWorld-v0", n_envs=1, env_kwargs={"max_episode_steps": 5},
                           wrapper_class=LagrangianReward)
    model = PPO("MlpPolicy", vec_env, n_steps=16, batch_size=16, device="cpu")
    with pytest.raises(KeyError, match="lagrangian_env"):
        model.learn(32, callback=DualAscentCallback(cost_limit=1.0))
