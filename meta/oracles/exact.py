"""Exact learner oracles for tabular families: the occupancy-measure LP (``O_l`` with ``eps = 0``), and the
entropy-regularised primal-dual solver the covering + safe mixture authors' gridworld code uses."""

from __future__ import annotations

import dataclasses

from cmdp_envs.meta.oracles.protocol import OracleResult, ValueEstimate
from cmdp_envs.meta.policies import TabularPolicy
from cmdp_envs.tabular import solve_cmdp, solve_regularised_cmdp
from cmdp_envs.task import TabularFamily, Task

__all__ = ["ExactLPOracle", "RegularisedOracle"]


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


class RegularisedOracle:
    """``O_l`` by :func:`~cmdp_envs.tabular.solve_regularised_cmdp` (``solver_settings`` passed on): the
    entropy-regularised primal-dual method's last iterate and its exact values, as the covering + safe mixture
    authors' gridworld code computes every candidate. Its policy keeps every action possible; its cost meets the
    limit up to the method's convergence (``info["feasible"]`` tells exactly)."""

    def __init__(self, family: TabularFamily, **solver_settings: float):
        if not isinstance(family, TabularFamily):
            raise TypeError(f"RegularisedOracle needs a tabular family, got {family!r}")
        self.family = family
        self.solver_settings = solver_settings

    def __call__(self, task: Task, seed: int = 0, cost_limit: float | None = None) -> OracleResult:
        cmdp = self.family.tabular(task)
        if cost_limit is not None:
            cmdp = dataclasses.replace(cmdp, cost_limit=cost_limit)
        solution = solve_regularised_cmdp(cmdp, **self.solver_settings)
        return OracleResult(
            task=task,
            policy=TabularPolicy(solution.policy),
            reward=ValueEstimate(solution.reward_value),
            cost=ValueEstimate(solution.cost_value),
            info={"oracle": "entropy_regularised_primal_dual", "multiplier": solution.multiplier,
                  "feasible": solution.feasible, **self.solver_settings},
        )
