"""One protocol for constrained RL learners on one task: OmniSafe's algorithms (lane B) and our SB3 Lagrangian
learners (both lanes) train on the same task with the same seeds and are evaluated the same way (exactly on tabular
families, by Monte Carlo with a 95% interval otherwise). Backs ``cmdp-envs compare``.

Names: an OmniSafe algorithm by its own name (``PPOLag``, ``TRPOLag``, ``CPO``, ``FOCOPS``, ...); our learners as
``SB3-PPOLag`` and ``SB3-TRPOLag``. Learning curves are the mean undiscounted episode return and the mean episode cost
the family's limit constrains (its ``cost_semantics``: discounted by default, or the plain sum), against the limit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from cmdp_envs.io import UnreadableFileError, read_json, save_figure, write_json
from cmdp_envs.task import Task, TaskFamily, check_count
from cmdp_envs.wrappers.omnisafe_bridge import ON_POLICY_ALGORITHMS

__all__ = ["SB3_LEARNERS", "check_algorithms", "make_oracle", "run_comparison"]

#: Our SB3 Lagrangian learners, by the name ``compare`` uses, with the SB3 algorithm behind each.
SB3_LEARNERS = {"SB3-PPOLag": "PPO", "SB3-TRPOLag": "TRPO"}


def check_algorithms(algos: Sequence[str]) -> list[str]:
    """``algos`` if every name is known, else ``ValueError`` listing the known ones. OmniSafe's names need the
    ``omnisafe`` extra (Python 3.10): that is checked after the names, so a typo is never reported as a missing
    package."""
    algos = list(algos)
    if not algos:
        raise ValueError("name at least one algorithm")
    unknown = [algo for algo in algos if algo not in SB3_LEARNERS and algo not in ON_POLICY_ALGORITHMS]
    if unknown:
        raise ValueError(f"unknown algorithm(s) {unknown}; known: ours {list(SB3_LEARNERS)} (the 'sb3' extra) and "
                         f"OmniSafe's on-policy constrained ones {list(ON_POLICY_ALGORITHMS)} (the 'omnisafe' "
                         "extra, Python 3.10)")
    if any(algo in ON_POLICY_ALGORITHMS for algo in algos):
        from cmdp_envs.wrappers.omnisafe_bridge import import_omnisafe

        import_omnisafe()
    return algos


def make_oracle(algo: str, family: TaskFamily, steps: int) -> Any:
    """The learner oracle that trains ``algo`` for ``steps`` environment steps on tasks of ``family``."""
    (algo,) = check_algorithms([algo])
    if algo in SB3_LEARNERS:
        from cmdp_envs.meta.oracles.sb3_learners import SB3LagrangianOracle

        return SB3LagrangianOracle(family, algo=SB3_LEARNERS[algo], total_timesteps=steps, n_steps=256)
    from cmdp_envs.meta.oracles.omnisafe_learners import OmniSafeOracle

    return OmniSafeOracle(family, algo=algo, total_steps=steps, steps_per_epoch=max(steps // 10, 200))


def run_comparison(algos: Sequence[str], family: TaskFamily, steps: int, seeds: int, out: str | Path,
                   task: Task | None = None) -> dict[str, Any]:
    """Train every algorithm with seeds ``0..seeds-1`` on ``task`` of ``family`` (default: the family's default
    task), write ``out/summary.json`` and learning-curve PNGs, and return the summary."""
    check_count("steps", steps, minimum=1)
    check_count("seeds", seeds, minimum=1)
    algos = check_algorithms(algos)
    task = task if task is not None else family.default_task
    family.check_task(task)
    oracles = {algo: make_oracle(algo, family, steps) for algo in algos}
    out = Path(out)
    summary = {
        "env_id": family.env_id,
        "family": repr(family),
        "task": task.as_dict(),
        "steps": steps,
        "seeds": seeds,
        "cost_semantics": family.cost_semantics,
        "values": "final_return is the discounted value J_r of the final policy "
                  f"(gamma = {family.gamma}); final_cost is its cost value J_c under the family's cost semantics "
                  f"({family.cost_semantics}, cost discount {family.cost_discount}); feasible means "
                  "J_c <= cost_limit (upper CI bound when estimated)",
        "curves": f"per update: mean undiscounted episode return, mean {family.cost_semantics} episode cost",
        "runs": [],
    }
    # summary.json is rewritten after every run, so an interrupted comparison resumes where it stopped when it is
    # started again with the same settings.
    done = _finished_runs(out / "summary.json", summary)
    with tqdm(total=len(algos) * seeds, desc="training runs") as progress:
        for algo, oracle in oracles.items():
            for seed in range(seeds):
                if (algo, seed) in done:
                    summary["runs"].append(done[algo, seed])
                    progress.update()
                    continue
                start = time.perf_counter()
                answer = oracle(task, seed=seed)
                summary["runs"].append({
                    "algo": algo,
                    "seed": seed,
                    "final_return": answer.reward.value,
                    "final_return_half_width": answer.reward.half_width,
                    "final_cost": answer.cost.value,
                    "final_cost_half_width": answer.cost.half_width,
                    "evaluation": "exact" if answer.cost.exact else f"monte carlo, {answer.cost.confidence:.0%} CI",
                    "cost_limit": task.cost_limit,
                    "feasible": bool(answer.feasible),
                    "wall_seconds": round(time.perf_counter() - start, 3),
                    "cost_semantics": answer.info.get("cost_semantics"),
                    "curve": answer.info.get("curve", []),
                })
                write_json(out / "summary.json", summary)
                progress.update()
    write_json(out / "summary.json", summary)
    _plot_curves(summary["runs"], task.cost_limit, out, family.cost_semantics)
    return summary


def _finished_runs(path: Path, summary: dict[str, Any]) -> dict[tuple[str, int], dict[str, Any]]:
    """Runs already in ``path`` from a comparison with the same family, task and budget (none if it differs)."""
    try:
        previous = read_json(path)
    except FileNotFoundError:
        return {}
    except UnreadableFileError as error:
        raise ValueError(f"{error}; move it or pick another --out") from None
    try:
        if any(previous.get(key) != summary[key] for key in ("env_id", "family", "task", "steps")):
            return {}
        return {(run["algo"], run["seed"]): run for run in previous["runs"]}
    except (AttributeError, KeyError, TypeError) as error:
        raise ValueError(f"{path} exists but is not a comparison summary ({error}); move it or pick another --out") \
            from None


def _plot_curves(runs: list[dict[str, Any]], cost_limit: float, out: Path, cost_semantics: str) -> None:
    from matplotlib.figure import Figure

    for key, ylabel, filename in (("return", "episode return", "return.png"),
                                  ("cost", f"{cost_semantics} episode cost", "cost.png")):
        figure = Figure(figsize=(6, 4))
        ax = figure.subplots()
        colours = {algo: f"C{i}" for i, algo in enumerate(dict.fromkeys(run["algo"] for run in runs))}
        for run in runs:
            curve = run["curve"]
            label = run["algo"] if run["seed"] == 0 else None
            ax.plot([p["steps"] for p in curve], [p[key] for p in curve], color=colours[run["algo"]], alpha=0.8,
                    label=label)
        if key == "cost":
            ax.axhline(cost_limit, color="black", linestyle="--", label=f"cost limit {cost_limit:g}")
        ax.set_xlabel("environment steps")
        ax.set_ylabel(ylabel)
        ax.legend()
        save_figure(figure, out / filename)
