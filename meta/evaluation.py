"""The meta-test protocol on tabular families, with exact values: how every test-time method is called, what it
reports on a task, and how runs are summarised and plotted. (:mod:`.test_time` is the protocol on any env, checked
by Monte Carlo.)

Every test-time method (the safe mixture and unsafe PCE, Safe Meta-RL, LB-SGD) is a :class:`MetaTestMethod`: a
frozen value holding its settings (its ``repr`` names them all, which is what a resumed run compares), with one call,
``run_on_tabular(cmdp, training, n_episodes, horizon, seed)``, given the training artefacts and a
``numpy.random.SeedSequence``.

A method runs ``K`` episodes on a test task; each episode executes one policy. A :class:`MetaTestRun` keeps, for
every stretch of consecutive episodes that ran the same policy, that policy's exact reward and cost values (on
tabular families). From it: the test-time reward regret ``sum_k [J_r*(M_test) - J_r(pi_k)]_+`` as a curve over ``k``, the
executed policies that break the limit (``J_c > d``), and the largest executed cost value. :func:`summarise` and
:func:`plot_runs` aggregate the runs of one method over test tasks (mean, and the 10-90% band of the paper's
Figure 2).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from cmdp_envs.io import save_figure
from cmdp_envs.tabular import TabularCMDP, evaluate_policy
from cmdp_envs.task import check_count

if TYPE_CHECKING:
    from cmdp_envs.meta.covering import CoveringResult

__all__ = ["MetaTestMethod", "MetaTestRun", "MetaTestRunBuilder", "run_iterates", "summarise", "plot_runs",
           "FEASIBILITY_TOLERANCE"]

#: Exact values come from linear solves, so a policy exactly at the limit can evaluate a few ulps above it; a cost
#: value counts as a violation only beyond this.
FEASIBILITY_TOLERANCE = 1e-9


class MetaTestMethod(Protocol):
    """A test-time method under the meta-test protocol: ``K = n_episodes`` episodes of at most ``horizon`` steps on
    one test task ``cmdp``, starting from the training artefacts (the cover ``Û`` and ``pi_s`` that every method
    shares), with every executed policy's exact values in the returned :class:`MetaTestRun`. The same ``seed`` gives
    the same run."""

    def run_on_tabular(self, cmdp: TabularCMDP, training: CoveringResult, n_episodes: int, horizon: int,
                       seed: np.random.SeedSequence) -> MetaTestRun: ...


@dataclasses.dataclass(frozen=True)
class MetaTestRun:
    """Exact values of the policies a method executed on one test task.

    Segment ``i`` covers episodes ``starts[i]`` to ``starts[i + 1] - 1`` (the last one to ``n_episodes - 1``), which
    all ran a policy with values ``reward_values[i]``, ``cost_values[i]``; ``details[i]`` says which policy.
    """

    starts: np.ndarray
    reward_values: np.ndarray
    cost_values: np.ndarray
    details: tuple[dict[str, Any], ...]
    n_episodes: int
    cost_limit: float

    @staticmethod
    def builder(cost_limit: float) -> MetaTestRunBuilder:
        return MetaTestRunBuilder(cost_limit)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(np.append(self.starts, self.n_episodes))

    def per_episode(self, values: np.ndarray) -> np.ndarray:
        """A per-segment array expanded to one entry per episode."""
        return np.repeat(values, self.lengths)

    def regret(self, optimal_reward_value: float) -> np.ndarray:
        """Cumulative reward regret after each episode, ``sum_{j <= k} [J_r* - J_r(pi_j)]_+``."""
        return np.cumsum(self.per_episode(np.maximum(optimal_reward_value - self.reward_values, 0.0)))

    @property
    def _violating(self) -> np.ndarray:
        return self.cost_values > self.cost_limit + FEASIBILITY_TOLERANCE

    @property
    def violating_policies(self) -> int:
        """Executed policies whose exact cost value exceeds the limit, one per segment (so a policy that runs again
        after another counts again)."""
        return int(self._violating.sum())

    @property
    def violating_episodes(self) -> int:
        return int(self.lengths[self._violating].sum())

    @property
    def max_cost_value(self) -> float:
        return float(self.cost_values.max())


class MetaTestRunBuilder:
    """Collects segments in episode order; consecutive segments with equal details merge."""

    def __init__(self, cost_limit: float):
        self.cost_limit = float(cost_limit)
        self._segments: list[tuple[int, float, float, dict[str, Any]]] = []
        self._episodes = 0

    def add(self, n_episodes: int, reward_value: float, cost_value: float, detail: dict[str, Any]) -> None:
        if n_episodes <= 0:
            raise ValueError(f"a segment needs at least one episode, got {n_episodes}")
        if self._segments and self._segments[-1][3] == detail:
            if self._segments[-1][1:3] != (reward_value, cost_value):
                raise ValueError(f"policy {detail} was recorded with two different values: "
                                 f"{self._segments[-1][1:3]} and {(reward_value, cost_value)}")
        else:
            self._segments.append((self._episodes, reward_value, cost_value, detail))
        self._episodes += n_episodes

    def build(self) -> MetaTestRun:
        if not self._segments:
            raise ValueError("no episodes were recorded")
        starts, rewards, costs, details = zip(*self._segments)
        return MetaTestRun(np.array(starts), np.array(rewards), np.array(costs), tuple(details), self._episodes,
                       self.cost_limit)


def run_iterates(cmdp: TabularCMDP, iterates: Iterator[np.ndarray], n_episodes: int,
                 episodes_per_iterate: int) -> MetaTestRun:
    """The test run of an iterative method that executes each policy of ``iterates`` for ``episodes_per_iterate``
    episodes (the last one for what is left of ``K = n_episodes``), each evaluated exactly. ``iterates`` is read
    lazily, so the method computes no iterate it would not execute."""
    check_count("n_episodes", n_episodes, minimum=1)
    check_count("episodes_per_iterate", episodes_per_iterate, minimum=1)
    run = MetaTestRun.builder(cmdp.cost_limit)
    for iteration in range(math.ceil(n_episodes / episodes_per_iterate)):
        reward_value, cost_value = evaluate_policy(cmdp, next(iterates))
        run.add(min(episodes_per_iterate, n_episodes - iteration * episodes_per_iterate), reward_value, cost_value,
                {"iteration": iteration})
    return run.build()


def summarise(runs: Sequence[MetaTestRun], optimal_reward_values: Sequence[float], curve_points: int = 200
              ) -> dict[str, Any]:
    """One method over its test tasks, JSON-ready: ``final_regret_mean``, ``violating_policies`` (summed over
    tasks), ``violating_episodes``, ``max_cost_value``, and the regret and cost-value curves (mean, 10% and 90%
    quantiles over tasks) at ``curve_points`` episodes."""
    regrets = np.stack([run.regret(opt) for run, opt in zip(runs, optimal_reward_values)])
    costs = np.stack([run.per_episode(run.cost_values) for run in runs])
    episodes = np.unique(np.linspace(0, regrets.shape[1] - 1, curve_points).astype(int))

    def band(values: np.ndarray) -> dict[str, list[float]]:
        picked = values[:, episodes]
        return {"mean": picked.mean(axis=0).tolist(), "p10": np.quantile(picked, 0.1, axis=0).tolist(),
                "p90": np.quantile(picked, 0.9, axis=0).tolist()}

    return {
        "final_regret_mean": float(regrets[:, -1].mean()),
        "final_regret_per_task": regrets[:, -1].tolist(),
        "violating_policies": sum(run.violating_policies for run in runs),
        "violating_episodes": sum(run.violating_episodes for run in runs),
        "max_cost_value": max(run.max_cost_value for run in runs),
        "executed_policies": sum(len(run.starts) for run in runs),
        "curve": {"episode": (episodes + 1).tolist(), "regret": band(regrets), "cost_value": band(costs)},
    }


def plot_runs(methods: dict[str, dict[str, Any]], cost_limit: float, path: str | os.PathLike,
              title: str = "") -> None:
    """Figure 2 of the paper: per method, the mean and 10-90% band of cumulative regret and of the executed
    policies' cost value per episode, with the limit as a dashed line. ``methods`` maps a label to a
    :func:`summarise` result."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    figure = Figure(figsize=(11, 4))
    regret_ax, cost_ax = figure.subplots(1, 2)
    for label, summary in methods.items():
        curve = summary["curve"]
        x = curve["episode"]
        for ax, key in ((regret_ax, "regret"), (cost_ax, "cost_value")):
            (line,) = ax.plot(x, curve[key]["mean"], label=label)
            ax.fill_between(x, curve[key]["p10"], curve[key]["p90"], color=line.get_color(), alpha=0.2)
    cost_ax.axhline(cost_limit, color="black", linestyle="--", label=f"limit d = {cost_limit:g}")
    regret_ax.set(xlabel="episode k", ylabel="cumulative reward regret", title="Reward regret")
    cost_ax.set(xlabel="episode k", ylabel="J_c of the executed policy", title="Constraint value")
    thousands = FuncFormatter(lambda value, _: f"{value / 1000:g}k" if value else "0")  # 40,000 episodes: no crowding
    for ax in (regret_ax, cost_ax):
        ax.xaxis.set_major_formatter(thousands)
    regret_ax.yaxis.set_major_formatter(thousands)
    regret_ax.legend(fontsize=8)
    cost_ax.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    save_figure(figure, path)
