"""What the continuous reproductions share (``reproduce cmaml``, ``locomotion``, ``safe-meta-rl``): a stage's result
saved under the digest of the configuration that produced it, a method's meta-test results summarised per test
iteration, and the figures of those summaries."""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from cmdp_envs.io import UnreadableFileError, read_json, save_figure, write_json
from cmdp_envs.meta.test_time import TestResult

__all__ = ["saved_stage", "save_stage", "saved_timings", "band", "protocol_summary", "panels", "finish_figure",
           "plot_test_curves", "minibatch_size", "sb3_inner_loop", "meta_train_stage"]


def saved_stage(path: Path, digest: str) -> Any | None:
    """The result :func:`save_stage` wrote at ``path`` for the configuration ``digest``; ``None`` (with a warning
    naming the file, when there is one) if it is missing, unreadable or of another configuration."""
    if not path.exists():
        return None
    try:
        saved = read_json(path)
    except UnreadableFileError as error:
        warnings.warn(f"{error}; recomputing it", stacklevel=3)
        return None
    if not isinstance(saved, dict) or saved.get("config_digest") != digest or "result" not in saved:
        warnings.warn(f"{path} does not hold a result of this configuration; recomputing it", stacklevel=3)
        return None
    return saved["result"]


def save_stage(path: Path, digest: str, result: Any) -> None:
    """``result`` (JSON-ready) at ``path``, atomically, marked with the configuration's ``digest``."""
    write_json(path, {"config_digest": digest, "result": result})


def saved_timings(path: Path) -> dict[str, float]:
    """The wall times an earlier run wrote at ``path`` (a resumed run keeps those of the stages it does not redo);
    empty, with a warning naming the file, when it is missing or unreadable."""
    if not path.exists():
        return {}
    try:
        timings = read_json(path)
    except UnreadableFileError as error:
        warnings.warn(f"{error}; starting its timings afresh", stacklevel=2)
        return {}
    if not isinstance(timings, dict):
        warnings.warn(f"{path} does not hold timings; starting them afresh", stacklevel=2)
        return {}
    return timings


def minibatch_size(rollout_steps: int) -> int:
    """The largest divisor of a rollout of ``rollout_steps`` steps up to 256: SB3's PPO minibatches must divide the
    rollout, and TRPO takes it as its critic's batch."""
    return max(d for d in range(1, min(rollout_steps, 256) + 1) if rollout_steps % d == 0)


def sb3_inner_loop(family: Any, algo: str, n_envs: int, steps_per_update: int, env_kwargs: dict[str, Any],
                   **learner_kwargs: Any) -> Any:
    """Our SB3 ``algo``-Lagrangian as an inner loop whose update is one rollout of ``steps_per_update`` steps over
    ``n_envs`` envs, in minibatches of :func:`minibatch_size` (``learner_kwargs``: more of the SB3 algorithm's
    arguments)."""
    from cmdp_envs.meta.inner_loops import SB3InnerLoop

    if steps_per_update % n_envs:
        raise ValueError(f"an update's {steps_per_update} steps must split evenly over n_envs = {n_envs}")
    return SB3InnerLoop(family, algo=algo, n_envs=n_envs, env_kwargs=env_kwargs, n_steps=steps_per_update // n_envs,
                        batch_size=minibatch_size(steps_per_update), **learner_kwargs)


def meta_train_stage(out: Path, name: str, meta_learner: Any, iterations: int, digest: str,
                     timings: dict[str, float]) -> tuple[np.ndarray, list[dict[str, float]]]:
    """``iterations`` outer iterations of ``meta_learner`` (a :class:`~cmdp_envs.meta.cmaml.CMAML`: C-MAML, MAML or
    Xu & Zhu's meta-training), checkpointed after each under ``out/methods/<name>-<digest>.npz`` (a rerun resumes)
    with a CSV log beside it; returns the meta policy and the history. ``timings`` gets the stage's wall seconds
    and the mean wall seconds of the iterations this process ran."""
    started = time.perf_counter()
    history = meta_learner.run(iterations, checkpoint=out / "methods" / f"{name}-{digest}.npz",
                               log=out / "methods" / f"{name}-{digest}.csv")
    if meta_learner.timings:
        timings[f"{name}_seconds_per_meta_iteration"] = float(np.mean([t["wall"] for t in meta_learner.timings]))
    timings[f"{name}_meta_training"] = time.perf_counter() - started
    return meta_learner.theta, history


def band(values: np.ndarray) -> dict[str, list[float | None]]:
    """Mean, 10-90% band and largest value across tasks (axis 0) per update, ignoring the missing (NaN) entries;
    JSON-ready."""
    def listed(row: np.ndarray) -> list[float | None]:
        return [None if np.isnan(value) else float(value) for value in row]

    with warnings.catch_warnings():  # an update no task observed stays missing
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"mean": listed(np.nanmean(values, axis=0)), "p10": listed(np.nanpercentile(values, 10, axis=0)),
                "p90": listed(np.nanpercentile(values, 90, axis=0)), "max": listed(np.nanmax(values, axis=0))}


def protocol_summary(results: list[TestResult], episodes_per_iteration: int | None = None) -> dict[str, Any]:
    """One method's meta-test results (:func:`~cmdp_envs.meta.test_time.meta_test`), per test iteration (``update``):
    the tasks' observed means (the episodes the method ran, the papers' curves) and checked values (Monte Carlo);
    the shares of tasks whose observed cost stayed within the limit at every iteration and whose every executed
    policy was verified; the share of executed policies found infeasible; every task's record.

    An iteration is one executed policy (a learner's update, an adaptation step) by default, and its observed means
    are over the episodes that policy ran alone. With ``episodes_per_iteration`` it is a block of that many
    consecutive episodes, whichever policies ran them (a safe mixture changes policy at any episode): observed means
    over the block, checked values the mean over its episodes of the checked value of the policy that ran each, and
    the checked upper bound the largest over the block's policies."""
    if episodes_per_iteration is None:
        iterations = max(len(result.executed) for result in results)
    else:
        iterations = max(math.ceil(len(result.returns) / episodes_per_iteration) for result in results)

    def per_iteration(value: Any, episode_value: Any = None, reduce: Any = np.mean) -> np.ndarray:
        """Per task and iteration: ``value(policy)`` of each executed policy, or, over blocks of episodes,
        ``episode_value(result, episode indices)``, else ``reduce`` of ``value`` over the policies that ran them."""
        table = np.full((len(results), iterations), np.nan)
        for row, result in zip(table, results):
            if episodes_per_iteration is None:
                row[: len(result.executed)] = [value(policy) for policy in result.executed]
                continue
            for block in range(math.ceil(len(result.returns) / episodes_per_iteration)):
                episodes = np.arange(block * episodes_per_iteration,
                                     min((block + 1) * episodes_per_iteration, len(result.returns)))
                row[block] = (episode_value(result, episodes) if episode_value is not None
                              else reduce([value(result.executed[p]) for p in result.policy[episodes]]))
        return table

    observed_costs = per_iteration(lambda policy: policy.observed_cost,
                                   lambda result, episodes: result.costs[episodes].mean())
    within = [bool(np.all(costs[~np.isnan(costs)] <= result.cost_limit))
              for costs, result in zip(observed_costs, results)]
    return {
        "update": list(range(1, iterations + 1)),
        "iteration": "executed policy" if episodes_per_iteration is None else f"{episodes_per_iteration} episodes",
        "observed": {"return": band(per_iteration(lambda policy: policy.observed_return,
                                                  lambda result, episodes: result.returns[episodes].mean())),
                     "cost": band(observed_costs)},
        "checked": {"return": band(per_iteration(lambda policy: policy.return_.value)),
                    "cost": band(per_iteration(lambda policy: policy.cost.value)),
                    "cost_upper_bound": band(per_iteration(lambda policy: policy.cost.upper_bound, reduce=np.max))},
        "episodes": int(np.mean([len(result.returns) for result in results])),
        "within_limit_fraction": float(np.mean(within)),
        "verified_fraction": float(np.mean([result.all_verified for result in results])),
        "infeasible_policy_fraction": float(np.mean([policy.infeasible for result in results
                                                     for policy in result.executed])),
        "executed_policies": int(sum(len(result.executed) for result in results)),
        "infeasible_policies": int(sum(policy.infeasible for result in results for policy in result.executed)),
        "per_task": [result.as_dict() for result in results],
    }


def panels(rows: int) -> tuple[Any, Any]:
    """A figure of ``rows`` x 2 panels: return on the left, cost on the right."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4 * rows), layout="constrained")  # room for the long axis labels
    return figure, figure.subplots(rows, 2, squeeze=False)


def finish_figure(figure: Any, axes: Any, cost_limit: float, xlabel: str | list[str], title: str,
                  path: Path) -> None:
    """The limit line on the cost panels (right), integer x ticks, the x labels (one, or one per row), the legend
    and the title; save as PNG."""
    from matplotlib.ticker import MaxNLocator

    for row, label in zip(axes, [xlabel] * len(axes) if isinstance(xlabel, str) else xlabel):
        row[1].axhline(cost_limit, color="black", linestyle="--", label=f"limit {cost_limit:g}")
        for ax in row:
            ax.set_xlabel(label)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0][1].legend(fontsize=8)  # the same lines in every panel: one legend
    figure.suptitle(title)
    save_figure(figure, path)


def plot_test_curves(results: dict[str, Any], cost_limit: float, semantics: str, path: Path, xlabel: str,
                     title: str) -> None:
    """Every method's :func:`protocol_summary` against the limit. Top: the episodes each method ran; bottom: the
    same policies' Monte Carlo check (mean and 10-90% band across tasks)."""
    figure, axes = panels(2)
    for index, (name, result) in enumerate(results.items()):
        x = result["update"]
        for row, measure in zip(axes, ("observed", "checked")):
            for ax, key in zip(row, ("return", "cost")):
                values = {side: np.array(series, dtype=float) for side, series in result[measure][key].items()}
                ax.plot(x, values["mean"], color=f"C{index}", label=name)
                ax.fill_between(x, values["p10"], values["p90"], color=f"C{index}", alpha=0.15)
    for row, measure in zip(axes, ("episodes run", "Monte Carlo check")):
        row[0].set_ylabel(f"episode return ({measure})")
        row[1].set_ylabel(f"episode cost, {semantics} ({measure})")
    finish_figure(figure, axes, cost_limit, xlabel, title, path)
