"""The exact learner oracle for tabular families: the occupancy-measure LP (``O_l`` with ``eps = 0``)."""

from __future__ import annotations

import dataclasses

from cmdp_envs.meta.oracles.protocol import OracleResult, ValueEstimate
from cmdp_envs.meta.policies import TabularPolicy
from cmdp_envs.tabular import solve_cmdp
from cmdp_envs.task import TabularFamily, Task

__all__ = ["ExactLPOracle"]


class ExactLPOracle:
    """``O_l`` by :func:`~cmdp_envs.tabular.solve_cmdp`: the optimal feasible policy of a tabular task and its exact
    values. ``seed`` is accepted for the protocol and unused: the answer is deterministic."""

    def __init__(self, family: TabularFamily):
        if not isinstance(family, TabularFamily):
            raise TypeError(f"ExactLPOracle needs a tabular family, got {family!r}")
        self.family = family

    def __call__(self, task: Task, seed: int = 0, cost_limit: float | None = None) -> OracleResult:
        cmdp = self.family.tabular(task)
        if cost_limit is not None:
            cmdp = dataclasses.replace(cmdp, cost_limit=cost_limit)
        solution = solve_cmdp(cmdp)
        return OracleResult(
            task=task,
            policy=TabularPolicy(solution.policy),
            reward=ValueEstimate(solution.reward_value),
            cost=ValueEstimate(solution.cost_value),
            info={"oracle": "exact_lp"},
        )
