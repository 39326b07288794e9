"""A learner oracle backed by OmniSafe (lane B): any of its on-policy constrained algorithms, by name, trained on one
task through the bridge (:mod:`cmdp_envs.wrappers.omnisafe_bridge`)."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym

from cmdp_envs.meta.oracles.protocol import OracleResult, evaluate
from cmdp_envs.meta.policies import MLPPolicy, tabular_policy_from_omnisafe
from cmdp_envs.task import Task
from cmdp_envs.wrappers.omnisafe_bridge import import_omnisafe, omnisafe_custom_cfgs, register_omnisafe_task

__all__ = ["OmniSafeOracle"]


class OmniSafeOracle:
    """``O_l`` by OmniSafe: ``algo`` (e.g. "PPOLag", "TRPOLag", "CPO", "FOCOPS") trained ``total_steps`` on a task,
    with the bridge's discounted cost semantics so the algorithm's limit is the task's ``J_c`` limit.

    ``info["curve"]`` holds the learning curve read from OmniSafe's log (per epoch: steps, mean undiscounted episode
    return, mean discounted episode cost). On tabular families the learned categorical policy is estimated with ``n_probability_samples`` Gaussian draws
    per state and evaluated exactly; elsewhere by Monte Carlo rollouts with a ``confidence`` interval.
    ``cfgs_overrides`` are passed to :func:`~cmdp_envs.wrappers.omnisafe_bridge.omnisafe_custom_cfgs`.
    """

    def __init__(self, env_id: str, algo: str = "PPOLag", total_steps: int = 50_000, steps_per_epoch: int = 2000,
                 n_probability_samples: int = 20_000, n_eval_episodes: int = 1000, confidence: float = 0.95,
                 **cfgs_overrides: Any):
        import_omnisafe()
        self.env_id = env_id
        self.algo = algo
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.family = gym.make(env_id).unwrapped.family
        self.n_probability_samples = n_probability_samples
        self.n_eval_episodes = n_eval_episodes
        self.confidence = confidence
        self.cfgs_overrides = cfgs_overrides

    def __call__(self, task: Task, seed: int = 0, cost_limit: float | None = None) -> OracleResult:
        import omnisafe

        omnisafe_id = register_omnisafe_task(self.env_id, task=task)
        with tempfile.TemporaryDirectory(prefix="cmdp-envs-omnisafe-") as log_dir:
            cfgs = omnisafe_custom_cfgs(
                self.algo, omnisafe_id, total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch,
                seed=seed, cost_limit=cost_limit, log_dir=log_dir, **self.cfgs_overrides,
            )
            agent = omnisafe.Agent(self.algo, omnisafe_id, custom_cfgs=cfgs)
            agent.learn()
            curve = _read_curve(Path(log_dir))
        actor = agent.agent._actor_critic.actor
        env = gym.make(self.env_id)
        if hasattr(self.family, "tabular"):
            policy: Any = tabular_policy_from_omnisafe(
                actor, self.family.tabular(task).n_states, n_samples=self.n_probability_samples, seed=seed
            )
        else:
            discrete = isinstance(env.action_space, gym.spaces.Discrete)
            bounds = None if discrete else (env.action_space.low, env.action_space.high)
            policy = MLPPolicy.from_omnisafe(actor, env.observation_space, discrete, action_bounds=bounds, seed=seed)
        reward, cost = evaluate(self.family, task, policy, env, n_episodes=self.n_eval_episodes,
                                confidence=self.confidence, seed=seed)
        return OracleResult(task=task, policy=policy, reward=reward, cost=cost,
                            info={"oracle": f"omnisafe_{self.algo}", "total_steps": self.total_steps,
                                  "cost_semantics": "discounted", "curve": curve})


def _read_curve(log_dir: Path) -> list[dict[str, float]]:
    """Per epoch: environment steps, mean undiscounted episode return, mean episode cost (discounted under the
    bridge's default semantics), from OmniSafe's ``progress.csv``."""
    (progress,) = log_dir.glob("**/progress.csv")
    with progress.open() as file:
        rows = list(csv.DictReader(file))
    return [{"steps": float(row["TotalEnvSteps"]), "return": float(row["Metrics/EpRet"]),
             "cost": float(row["Metrics/EpCost"])} for row in rows]
