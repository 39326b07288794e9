"""A learner oracle backed by SB3: PPO- or TRPO-Lagrangian (:mod:`cmdp_envs.meta.sb3_lagrangian`) trained on one
task, evaluated exactly on tabular families and by Monte Carlo otherwise."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from cmdp_envs.meta.oracles.protocol import OracleResult, evaluate
from cmdp_envs.meta.policies import MLPPolicy, tabular_policy_from_sb3
from cmdp_envs.meta.sb3_lagrangian import lagrangian_learner
from cmdp_envs.task import Task

__all__ = ["SB3LagrangianOracle"]


class SB3LagrangianOracle:
    """``O_l`` by SB3: train ``algo`` ("PPO" or "TRPO") with dual ascent on ``task`` for ``total_timesteps``.

    ``info["curve"]`` holds the learning curve: per rollout, the mean undiscounted episode return and the mean
    discounted episode cost. On tabular families the learned policy is read out exactly (:func:`tabular_policy_from_sb3`) and evaluated
    exactly; elsewhere it becomes an :class:`~cmdp_envs.meta.policies.MLPPolicy` evaluated by ``n_eval_episodes`` rollouts with a ``confidence`` interval.

    :param env_id: a registered id of this package.
    :param env_kwargs: ``gym.make`` keyword arguments (tabular families get one-hot observations by default).
    :param algo_kwargs: passed to the SB3 algorithm (``n_steps``, ``learning_rate``, ...).
    """

    def __init__(self, env_id: str, algo: str = "PPO", total_timesteps: int = 50_000, multiplier_lr: float = 0.05,
                 n_envs: int = 4, env_kwargs: dict[str, Any] | None = None, n_eval_episodes: int = 1000,
                 confidence: float = 0.95, **algo_kwargs: Any):
        self.env_id = env_id
        self.algo = algo
        self.total_timesteps = total_timesteps
        self.multiplier_lr = multiplier_lr
        self.n_envs = n_envs
        self.family = gym.make(env_id).unwrapped.family
        self.tabular = hasattr(self.family, "tabular")
        self.env_kwargs = dict(env_kwargs or {})
        if self.tabular:
            self.env_kwargs.setdefault("observation_type", "onehot")
        self.n_eval_episodes = n_eval_episodes
        self.confidence = confidence
        self.algo_kwargs = algo_kwargs

    def __call__(self, task: Task, seed: int = 0, cost_limit: float | None = None) -> OracleResult:
        self.family.check_task(task)
        model, callback = lagrangian_learner(
            self.algo, self.env_id, cost_limit=task.cost_limit if cost_limit is None else cost_limit, gamma=self.family.gamma, seed=seed,
            n_envs=self.n_envs, multiplier_lr=self.multiplier_lr, env_kwargs={**self.env_kwargs, "task": task},
            **self.algo_kwargs,
        )
        model.learn(self.total_timesteps, callback=callback)
        if self.tabular:
            policy: Any = tabular_policy_from_sb3(
                model, self.family.tabular(task).n_states, one_hot=self.env_kwargs["observation_type"] == "onehot"
            )
            env = None
        else:
            policy = MLPPolicy.from_sb3(model, seed=seed)
            env = gym.make(self.env_id, **self.env_kwargs)
        reward, cost = evaluate(self.family, task, policy, env, n_episodes=self.n_eval_episodes,
                                confidence=self.confidence, seed=seed)
        return OracleResult(task=task, policy=policy, reward=reward, cost=cost,
                            info={"oracle": f"sb3_{self.algo.lower()}_lagrangian", "multiplier": callback.multiplier,
                                  "total_timesteps": self.total_timesteps, "cost_semantics": "discounted",
                                  "curve": [
                                      {"steps": row["timesteps"], "return": row["episode_return"],
                                       "cost": row["episode_cost"]} for row in callback.history]})
