"""Anytime safety of Xu & Zhu's adaptation over a set of tasks: every policy of every adaptation sequence evaluated
exactly, as JSON-ready numbers and as a figure (reward and cost value per step, violations marked)."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from cmdp_envs.io import save_figure
from cmdp_envs.meta.safe_adaptation.closed_form import SafeAdaptationConfig, adapt
from cmdp_envs.tabular import TabularCMDP

__all__ = ["anytime_safety_evaluation", "plot_anytime_safety"]


def anytime_safety_evaluation(cmdps: list[TabularCMDP], initial_policy: np.ndarray, n_steps: int,
                              config: SafeAdaptationConfig, seed: int = 0,
                              labels: list[str] | None = None) -> dict:
    """Adapt from ``initial_policy`` on every CMDP and report, per step, the exact reward and cost values.

    Returns a JSON-ready dict: ``config``, one entry per task (``label``, ``reward_values``, ``cost_values``,
    ``multipliers``, ``cost_limit``, ``anytime_safe``, ``violating_steps``) and ``anytime_safe`` over all tasks. A run
    that is not anytime safe is reported as such, with the steps and costs that broke the limit.
    """
    labels = labels or [f"task {i}" for i in range(len(cmdps))]
    tasks = []
    for index, (cmdp, label) in enumerate(zip(cmdps, labels)):
        run = adapt(cmdp, initial_policy, n_steps, config, seed=seed + 1000 * index)
        tasks.append({
            "label": label,
            "reward_values": run.reward_values.tolist(),
            "cost_values": run.cost_values.tolist(),
            "multipliers": run.multipliers.tolist(),
            "cost_limit": run.cost_limit,
            "anytime_safe": run.anytime_safe,
            "violating_steps": [int(k) for k in np.flatnonzero(~run.feasible)],
        })
    return {"config": dataclasses.asdict(config), "n_steps": n_steps, "seed": seed, "tasks": tasks,
            "anytime_safe": all(task["anytime_safe"] for task in tasks)}


def plot_anytime_safety(result: dict, path: str | os.PathLike) -> None:
    """Reward and cost value per adaptation step, one thin line per task and their mean, the cost limit dashed and
    every violating policy marked in red."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4))
    ax_reward, ax_cost = figure.subplots(1, 2)
    steps = np.arange(result["n_steps"] + 1)
    rewards = np.array([task["reward_values"] for task in result["tasks"]])
    costs = np.array([task["cost_values"] for task in result["tasks"]])
    limits = np.array([task["cost_limit"] for task in result["tasks"]])
    for ax, values, name in ((ax_reward, rewards, "reward value J_r"), (ax_cost, costs, "cost value J_c")):
        ax.plot(steps, values.T, color="0.7", lw=0.8)
        ax.plot(steps, values.mean(axis=0), color="C0", lw=2, label="mean over tasks")
        ax.set_xlabel("adaptation step")
        ax.set_ylabel(name)
    for limit in np.unique(limits):
        ax_cost.axhline(limit, color="black", linestyle="--", label=f"cost limit {limit:g}")
    violating = costs > limits[:, None]
    ax_cost.scatter(np.broadcast_to(steps, costs.shape)[violating], costs[violating], color="red", zorder=3,
                    label="violating policy")
    verdict = "anytime safe" if result["anytime_safe"] else "NOT anytime safe"
    config = result["config"]
    figure.suptitle(f"safe adaptation ({config['advantages']} advantages, lambda = {config['reward_kl']}, "
                    f"lambda_c = {config['cost_kl']}): {verdict}")
    ax_reward.legend()
    ax_cost.legend()
    save_figure(figure, path)
