"""A learner oracle backed by SB3: PPO- or TRPO-Lagrangian (:mod:`cmdp_envs.meta.sb3_lagrangian`) trained on one
task, evaluated exactly on tabular families and by Monte Carlo otherwise."""

from __future__ import annotations

from typing import Any

from cmdp_envs.meta.oracles.learned import LearnedOracle
from cmdp_envs.meta.oracles.protocol import Policy
from cmdp_envs.meta.policies import MLPPolicy, tabular_policy_from_sb3
from cmdp_envs.meta.sb3_lagrangian import lagrangian_learner
from cmdp_envs.task import Task, TaskFamily, check_count

__all__ = ["SB3LagrangianOracle"]


class SB3LagrangianOracle(LearnedOracle):
    """``O_l`` by SB3: train ``algo`` ("PPO" or "TRPO") with dual ascent on a task of ``family`` for
    ``total_timesteps``.

    ``info["curve"]`` holds the learning curve: per rollout, the mean undiscounted episode return and the mean
    episode cost the family's limit constrains (discounted, or the plain sum under ``cost_semantics="undiscounted"``).
    On tabular families the learned policy is read out exactly
    (:func:`~cmdp_envs.meta.policies.tabular_policy_from_sb3`, one-hot observations by default) and evaluated exactly;
    elsewhere it becomes an :class:`~cmdp_envs.meta.policies.MLPPolicy` evaluated by Monte Carlo
    (:class:`~cmdp_envs.meta.oracles.learned.LearnedOracle`).

    :param family: the task family to train and evaluate on.
    :param algo_kwargs: passed to the SB3 algorithm (``n_steps``, ``learning_rate``, ...).
    """

    def __init__(self, family: TaskFamily, algo: str = "PPO", total_timesteps: int = 50_000,
                 multiplier_lr: float = 0.05, n_envs: int = 4, env_kwargs: dict[str, Any] | None = None,
                 n_eval_episodes: int = 1000, eval_horizon: int | None = None, confidence: float = 0.95,
                 **algo_kwargs: Any):
        env_kwargs = dict(env_kwargs or {})
        super().__init__(family, env_kwargs, n_eval_episodes, eval_horizon, confidence)
        if self.tabular:
            self.env_kwargs.setdefault("observation_type", "onehot")
        if "gamma" in algo_kwargs:
            raise ValueError(f"the discount is the family's (gamma = {family.gamma}); build the family with "
                             f"another gamma instead of passing gamma = {algo_kwargs['gamma']!r} to the learner")
        if algo not in ("PPO", "TRPO"):
            raise ValueError(f"algo must be 'PPO' or 'TRPO', got {algo!r}")
        self.algo = algo
        self.total_timesteps = check_count("total_timesteps", total_timesteps, minimum=1)
        self.multiplier_lr = multiplier_lr
        self.n_envs = check_count("n_envs", n_envs, minimum=1)
        self.algo_kwargs = algo_kwargs

    def _train(self, task: Task, seed: int, cost_limit: float) -> tuple[Policy, dict[str, Any]]:
        model, callback = lagrangian_learner(
            self.algo, self.family.env_id, cost_limit=cost_limit, gamma=self.family.gamma, seed=seed,
            n_envs=self.n_envs, multiplier_lr=self.multiplier_lr,
            discounted=self.family.cost_semantics == "discounted",
            env_kwargs={**self.env_kwargs, "family": self.family, "task": task}, **self.algo_kwargs,
        )
        model.learn(self.total_timesteps, callback=callback)
        if self.tabular:
            policy: Policy = tabular_policy_from_sb3(model, self.family.tabular(task).n_states,
                                                     one_hot=self.env_kwargs["observation_type"] == "onehot")
        else:
            policy = MLPPolicy.from_sb3(model, seed=seed)
        curve = [{"steps": row["timesteps"], "return": row["episode_return"], "cost": row["episode_cost"]}
                 for row in callback.history]
        return policy, {"oracle": f"sb3_{self.algo.lower()}_lagrangian", "multiplier": callback.multiplier,
                        "total_timesteps": self.total_timesteps, "cost_semantics": self.family.cost_semantics,
                        "curve": curve}
