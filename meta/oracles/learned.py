"""What every learner oracle shares (SB3's and OmniSafe's): one family as the single source of truth for the
training envs and the evaluation, the task and limit checks, the evaluation (exact on tabular families, Monte Carlo
with a stated confidence interval otherwise) and the :class:`~cmdp_envs.meta.oracles.protocol.OracleResult`."""

from __future__ import annotations

import abc
from typing import Any

import gymnasium as gym

from cmdp_envs.meta.oracles.protocol import OracleResult, Policy, evaluate
from cmdp_envs.meta.policies import TabularPolicy
from cmdp_envs.task import TabularFamily, Task, TaskFamily, check_count
from cmdp_envs.validation import check_number

__all__ = ["LearnedOracle"]

#: Rollout length of the Monte Carlo evaluation for envs without a time limit.
DEFAULT_EVAL_HORIZON = 200


class LearnedOracle(abc.ABC):
    """``O_l`` by a learner trained on one task of ``family``.

    Subclasses implement :meth:`_train`. Training envs come from ``family.make_env(**env_kwargs)``, and the answer
    is evaluated under the same ``family`` (so under the same task distribution and discount): exactly when the family
    is tabular and the learned policy a :class:`~cmdp_envs.meta.policies.TabularPolicy`, otherwise by
    ``n_eval_episodes`` rollouts of at most ``eval_horizon`` steps (default: the env's episode length, so an
    episode-sum limit is checked on whole episodes) with a ``confidence`` interval.

    :param family: the task family (``env.unwrapped.family`` of the env a user made).
    :param env_kwargs: further ``gym.make`` arguments of the env (not the family's: pass those in ``family``).
    """

    def __init__(self, family: TaskFamily, env_kwargs: dict[str, Any] | None = None, n_eval_episodes: int = 1000,
                 eval_horizon: int | None = None, confidence: float = 0.95):
        if not isinstance(family, TaskFamily):
            raise TypeError(f"family must be a TaskFamily (env.unwrapped.family), got {family!r}")
        env_kwargs = dict(env_kwargs or {})
        if "family" in env_kwargs or "task" in env_kwargs:
            raise ValueError("env_kwargs must not hold 'family' or 'task': the oracle sets both")
        self.family = family
        self.env_kwargs = env_kwargs
        self.n_eval_episodes = check_count("n_eval_episodes", n_eval_episodes, minimum=2)
        probe = self.make_env()  # a bad env argument fails here, not at the first training call
        episode_steps = probe.spec.max_episode_steps if probe.spec is not None else None
        probe.close()
        self.eval_horizon = check_count(
            "eval_horizon", eval_horizon if eval_horizon is not None else episode_steps or DEFAULT_EVAL_HORIZON,
            minimum=1,
        )
        if not 0 < confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
        self.confidence = float(confidence)

    @property
    def tabular(self) -> bool:
        return isinstance(self.family, TabularFamily)

    def make_env(self, task: Task | None = None) -> gym.Env:
        """An env of the oracle's family (and ``env_kwargs``), fixed on ``task`` when given."""
        return self.family.make_env(**self.env_kwargs, **({} if task is None else {"task": task}))

    def __call__(self, task: Task, seed: int = 0, cost_limit: float | None = None) -> OracleResult:
        self.family.check_task(task)
        check_count("seed", seed)
        limit = check_number("cost_limit", task.cost_limit if cost_limit is None else cost_limit, 0.0)
        policy, info = self._train(task, seed, limit)
        exact = self.tabular and isinstance(policy, TabularPolicy)
        reward, cost = evaluate(self.family, task, policy, None if exact else self.make_env(),
                                n_episodes=self.n_eval_episodes, horizon=self.eval_horizon,
                                confidence=self.confidence, seed=seed)
        return OracleResult(task=task, policy=policy, reward=reward, cost=cost, info=info)

    @abc.abstractmethod
    def _train(self, task: Task, seed: int, cost_limit: float) -> tuple[Policy, dict[str, Any]]:
        """Train on ``task`` with limit ``cost_limit``; the learned policy and ``info`` (with ``"oracle"``, the
        budget, ``"cost_semantics"`` and the learning ``"curve"``)."""
