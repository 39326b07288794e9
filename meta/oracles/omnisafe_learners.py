"""A learner oracle backed by OmniSafe (lane B): any of its on-policy constrained algorithms, by name, trained on one
task through the bridge (:mod:`cmdp_envs.wrappers.omnisafe_bridge`)."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym

from cmdp_envs.meta.oracles.learned import LearnedOracle
from cmdp_envs.meta.oracles.protocol import Policy
from cmdp_envs.meta.policies import MLPPolicy, tabular_policy_from_omnisafe
from cmdp_envs.task import Task, TaskFamily, check_count
from cmdp_envs.wrappers.omnisafe_bridge import (
    ON_POLICY_ALGORITHMS,
    import_omnisafe,
    omnisafe_custom_cfgs,
    register_omnisafe_task,
)

__all__ = ["OmniSafeOracle"]


class OmniSafeOracle(LearnedOracle):
    """``O_l`` by OmniSafe: ``algo`` (e.g. "PPOLag", "TRPOLag", "CPO", "FOCOPS") trained ``total_steps`` on a task of
    ``family``, with the bridge's cost semantics set to the family's, so the algorithm's limit is the task's limit.

    ``info["curve"]`` holds the learning curve read from OmniSafe's log (per epoch: steps, mean undiscounted episode
    return, mean episode cost under the family's cost semantics). On tabular families the learned categorical policy
    is estimated with
    ``n_probability_samples`` Gaussian draws per state and evaluated exactly; elsewhere by Monte Carlo
    (:class:`~cmdp_envs.meta.oracles.learned.LearnedOracle`). ``cfgs_overrides`` are passed to
    :func:`~cmdp_envs.wrappers.omnisafe_bridge.omnisafe_custom_cfgs`.
    """

    def __init__(self, family: TaskFamily, algo: str = "PPOLag", total_steps: int = 50_000,
                 steps_per_epoch: int = 2000, n_probability_samples: int = 20_000,
                 env_kwargs: dict[str, Any] | None = None, n_eval_episodes: int = 1000, eval_horizon: int | None = None,
                 confidence: float = 0.95, **cfgs_overrides: Any):
        import_omnisafe()
        super().__init__(family, env_kwargs, n_eval_episodes, eval_horizon, confidence)
        if algo not in ON_POLICY_ALGORITHMS:
            raise ValueError(f"unknown OmniSafe algorithm {algo!r} for this oracle; it trains OmniSafe's on-policy "
                             f"constrained algorithms: {list(ON_POLICY_ALGORITHMS)}")
        self.algo = algo
        self.total_steps = check_count("total_steps", total_steps, minimum=1)
        self.steps_per_epoch = check_count("steps_per_epoch", steps_per_epoch, minimum=1)
        self.n_probability_samples = check_count("n_probability_samples", n_probability_samples, minimum=1)
        self.cfgs_overrides = cfgs_overrides

    def _train(self, task: Task, seed: int, cost_limit: float) -> tuple[Policy, dict[str, Any]]:
        import omnisafe

        # The bridge reads costs with the family's semantics, so OmniSafe's limit is the task's limit.
        omnisafe_id = register_omnisafe_task(self.family, task=task, **self.env_kwargs)
        with tempfile.TemporaryDirectory(prefix="cmdp-envs-omnisafe-") as log_dir:
            cfgs = omnisafe_custom_cfgs(
                self.algo, omnisafe_id, total_steps=self.total_steps, steps_per_epoch=self.steps_per_epoch,
                seed=seed, cost_limit=cost_limit, log_dir=log_dir, **self.cfgs_overrides,
            )
            agent = omnisafe.Agent(self.algo, omnisafe_id, custom_cfgs=cfgs)
            agent.learn()
            curve = _read_curve(Path(log_dir))
        actor = agent.agent._actor_critic.actor
        if self.tabular:
            policy: Policy = tabular_policy_from_omnisafe(actor, self.family.tabular(task).n_states,
                                                          n_samples=self.n_probability_samples, seed=seed)
        else:
            env = self.make_env()
            discrete = isinstance(env.action_space, gym.spaces.Discrete)
            bounds = None if discrete else (env.action_space.low, env.action_space.high)
            policy = MLPPolicy.from_omnisafe(actor, env.observation_space, discrete, action_bounds=bounds, seed=seed)
        return policy, {"oracle": f"omnisafe_{self.algo}", "total_steps": self.total_steps,
                        "cost_semantics": self.family.cost_semantics, "curve": curve}


def progress_rows(log_dir: Path) -> list[dict[str, str]]:
    """The rows of OmniSafe's ``progress.csv`` under ``log_dir``, one per epoch, as text."""
    (progress,) = log_dir.glob("**/progress.csv")
    with progress.open() as file:
        return list(csv.DictReader(file))


def _read_curve(log_dir: Path) -> list[dict[str, float]]:
    """Per epoch: environment steps, mean undiscounted episode return, mean episode cost (under the bridge's cost
    semantics, the family's), from OmniSafe's ``progress.csv``."""
    return [{"steps": float(row["TotalEnvSteps"]), "return": float(row["Metrics/EpRet"]),
             "cost": float(row["Metrics/EpCost"])} for row in progress_rows(log_dir)]
