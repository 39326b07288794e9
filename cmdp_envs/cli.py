"""The ``cmdp-envs`` command line: list and describe the registered task families, solve a tabular task exactly,
compare constrained RL learners on a task, reproduce a paper's experiment."""

from __future__ import annotations

import argparse
import ast
import inspect
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

import cmdp_envs
from cmdp_envs.io import save_figure, write_json
from cmdp_envs.meta.executors import EXECUTORS
from cmdp_envs.registration import SPECS
from cmdp_envs.task import TabularFamily, Task, check_count

__all__ = ["main"]


class CLIError(Exception):
    """A user error: printed as one line, exit status 2."""


def _make(env_id: str) -> gym.Env:
    if env_id not in gym.registry:
        raise CLIError(f"unknown environment id {env_id!r}; `cmdp-envs list` shows the registered ids")
    return gym.make(env_id)


def _parse_value(text: str) -> Any:
    """``0.3`` -> float, ``(0, 6)`` -> tuple, ``nan`` and ``inf`` -> float (so the family's check can say "must be
    finite"); anything else that is not a Python literal stays a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse ``type=``: an int ``>= minimum``. Argparse names the flag and exits with status 2."""

    def parse(text: str) -> int:
        try:
            return check_count("the value", int(text), minimum)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an int >= {minimum}, got {text!r}") from None

    return parse


def _check_out(out: str) -> Path:
    """The ``--out`` directory, created (as the command would) and shown writable by writing and removing a probe
    file, so a bad path fails before any work rather than after it."""
    if not out:
        raise CLIError("--out must not be empty")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise CLIError(f"--out {out!r} is an existing file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        descriptor, probe = tempfile.mkstemp(dir=path, prefix=".cmdp-envs-write-probe-")
        os.close(descriptor)
        os.remove(probe)
    except OSError as error:
        raise CLIError(f"--out {out!r} cannot be created or written: {error.strerror or error}") from None
    return path


def _parse_task(env: gym.Env, assignments: Sequence[str]) -> Task:
    params = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"--task takes key=value pairs, got {item!r}")
        params[key.strip()] = _parse_value(value.strip())
    try:
        return env.unwrapped.family.task(**params)
    except ValueError as error:
        raise CLIError(str(error)) from None


def command_list(args: argparse.Namespace) -> None:
    width = max(len(spec.id) for spec in SPECS)
    for spec in SPECS:
        print(f"{spec.id:<{width}}  {spec.summary}")


def _space(space: gym.Space) -> str:
    """A space in one line: long Box bounds are summarised by their range."""
    if isinstance(space, gym.spaces.Box) and space.shape and int(np.prod(space.shape)) > 4:
        return f"Box(shape={space.shape}, dtype={space.dtype}, low in [{space.low.min()}, {space.low.max()}], " \
               f"high in [{space.high.min()}, {space.high.max()}])"
    return str(space)


def command_describe(args: argparse.Namespace) -> None:
    env = _make(args.env_id)
    base = env.unwrapped
    print(args.env_id)
    print(inspect.getdoc(type(base)).split("\n\n## ")[0])
    print()
    print(f"action space:       {_space(env.action_space)}")
    print(f"observation space:  {_space(env.observation_space)}")
    print(f"max episode steps:  {env.spec.max_episode_steps}")
    print(f"discount (gamma):   {base.family.gamma}")
    print(f"exact tabular model: {'yes' if isinstance(base.family, TabularFamily) else 'no'}")
    print("task distribution:")
    for line in base.family.describe().splitlines():
        print(f"  {line}")
    print(f"default task:       {base.family.default_task}")
    print(f"\nFull documentation: python -c \"import {type(base).__module__} as m; help(m.{type(base).__name__})\"")


def command_solve(args: argparse.Namespace) -> None:
    from cmdp_envs.tabular import solve_cmdp

    env = _make(args.env_id)
    base = env.unwrapped
    if not isinstance(base.family, TabularFamily):
        raise CLIError(f"{args.env_id} has no exact tabular model; `solve` needs a tabular family")
    tasks = [_parse_task(env, assignments) for assignments in (args.task or [[]])]
    out = None if args.out is None else _check_out(args.out)
    results = []
    for task in tasks:
        cmdp = base.family.tabular(task)
        try:
            solution = solve_cmdp(cmdp)
        except ValueError as error:
            raise CLIError(f"{task}: {error}") from None
        results.append((task, solution))
        print(f"task: {task}")
        if hasattr(base.family, "policy_text"):
            print(base.family.policy_text(task, solution.policy))
        # solve_cmdp guarantees cost_value <= cost_limit exactly; the line says so for the reader.
        print(
            f"reward value J_r = {solution.reward_value:.4f}   cost value J_c = {solution.cost_value:.4f}   "
            f"cost limit d = {task.cost_limit:g}   feasible: yes   (gamma = {cmdp.gamma})\n"
        )
    if out is not None:
        write_json(
            out / "solution.json",
            {
                "env_id": args.env_id,
                "solutions": [
                    {
                        "task": task.as_dict(),
                        "reward_value": solution.reward_value,
                        "cost_value": solution.cost_value,
                        "cost_limit": task.cost_limit,
                        "gamma": base.family.gamma,
                        "policy": np.round(solution.policy, 12).tolist(),
                    }
                    for task, solution in results
                ],
            },
        )
        print(f"wrote {out / 'solution.json'}")
        if hasattr(base.family, "draw_policy"):
            # A bare Figure, not pyplot: library code must not pick the user's matplotlib backend.
            from matplotlib.figure import Figure

            figure = Figure(figsize=(4.2 * len(results), 4.4))
            axes = figure.subplots(1, len(results), squeeze=False)
            for ax, (task, solution) in zip(axes[0], results):
                base.family.draw_policy(
                    ax, task, solution.policy,
                    title=f"{_short(task)}\nJ_r = {solution.reward_value:.2f}, J_c = {solution.cost_value:.2f}",
                )
            save_figure(figure, out / "policy.png")
            print(f"wrote {out / 'policy.png'}")


def command_compare(args: argparse.Namespace) -> None:
    from cmdp_envs.meta.compare import check_algorithms, run_comparison

    env = _make(args.env)
    task = _parse_task(env, args.task) if args.task else None
    try:
        algos = check_algorithms([name.strip() for name in args.algos.split(",") if name.strip()])
    except (ValueError, ImportError) as error:
        raise CLIError(str(error)) from None
    _check_out(args.out)
    try:
        summary = run_comparison(algos, env.unwrapped.family, steps=args.steps, seeds=args.seeds, out=args.out,
                                 task=task)
    except (ValueError, ImportError) as error:
        raise CLIError(str(error)) from None
    print(f"{'algo':<14}{'seed':>5}{'J_r':>10}{'J_c':>9}{'limit':>7}  feasible  evaluation         seconds")
    for run in summary["runs"]:
        print(f"{run['algo']:<14}{run['seed']:>5}{run['final_return']:>10.3f}{run['final_cost']:>9.3f}"
              f"{run['cost_limit']:>7g}  {'yes' if run['feasible'] else 'NO ':<8}  {run['evaluation']:<17}"
              f"{run['wall_seconds']:>8.1f}")
    print(f"wrote {Path(args.out) / 'summary.json'}, return.png, cost.png")


def command_reproduce(args: argparse.Namespace) -> None:
    experiment_name = args.experiment
    only = {"--setting": ("gridworld", args.setting), "--env": ("cmaml", "safe-meta-rl", args.env),
            "--inner": ("cmaml", args.inner), "--robot": ("locomotion", args.robot),
            "--oracle": ("locomotion", args.oracle)}
    for flag, (*experiments, value) in only.items():
        if value is not None and experiment_name not in experiments:
            raise CLIError(f"{flag} is an option of reproduce {' and '.join(experiments)}, not of reproduce "
                           f"{experiment_name}")
    if experiment_name == "cmaml" and args.env is not None and args.env not in gym.registry:
        raise CLIError(f"unknown environment id {args.env!r}; `cmdp-envs list` shows the registered ids")
    started = time.perf_counter()
    settings: dict[str, Any] = {"seed": args.seed, "executor": args.executor}
    if experiment_name == "cmaml":
        from cmdp_envs.meta.reproduce import cmaml as experiment

        settings.update(env_id=args.env or "cmdp_envs/PointGoalArc1-v0", inner=args.inner or "SB3-PPOLag")
        written = ("summary.json", "fine_tuning.png", "meta_training.png")
    elif experiment_name == "locomotion":
        from cmdp_envs.meta.reproduce import locomotion as experiment

        settings.update(robot=args.robot or "halfcheetah", oracle=args.oracle or "SB3-PPOLag")
        written = ("summary.json", "figure4.png", "timings.json")
    elif experiment_name == "safe-meta-rl":
        from cmdp_envs.meta.reproduce import safe_meta_rl as experiment

        settings.update(env=args.env or "point-circle")
        written = ("summary.json", "figure.png", "meta_test.png", "computation_time.png", "timings.json")
    else:
        from cmdp_envs.meta.reproduce import gridworld as experiment

        settings.update(setting=args.setting or "authors")
        written = ("summary.json", "figure2.png", "all_methods.png", "timings.json")
    config_class = experiment.ReproductionConfig
    try:
        config = config_class.quick(**settings) if args.quick else config_class(**settings)
    except ValueError as error:  # bad settings: refused before anything is written
        raise CLIError(str(error)) from None
    default_out = f"out/reproduce-{experiment_name}" + ("-ours" if args.setting == "ours" else "")
    out = _check_out(default_out if args.out is None else args.out)
    try:
        summary = experiment.run(out, config)
    except (ValueError, ImportError) as error:  # bad settings, or OmniSafe's learners outside lane B
        raise CLIError(str(error)) from None
    if experiment_name == "safe-meta-rl":
        print(experiment.format_table(summary, json.loads((out / "timings.json").read_text())))
    else:
        print(experiment.format_table(summary))
    print(f"wrote {', '.join(str(out / name) for name in written)} ({time.perf_counter() - started:.0f} s)")


def _short(task: Task) -> str:
    """The task parameters that differ from the family default's, for a plot title."""
    fields = task.as_dict()
    return ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in fields.items()
                     if k in ("noise", "cost_limit", "goal"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cmdp-envs", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cmdp-envs {cmdp_envs.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="registered environment ids").set_defaults(run=command_list)
    describe = commands.add_parser("describe", help="spaces, costs and task distribution of an id")
    describe.add_argument("env_id")
    describe.set_defaults(run=command_describe)
    solve = commands.add_parser(
        "solve",
        help="optimal constrained policy of a tabular task (occupancy-measure LP)",
        description="Solve max J_r s.t. J_c <= cost_limit exactly; print the policy as arrows and its values. "
        "Repeat --task to solve several tasks side by side (one panel each in policy.png).",
    )
    solve.add_argument("env_id")
    solve.add_argument("--task", nargs="+", action="append", metavar="KEY=VALUE",
                       help="task parameters, e.g. --task noise=0.3 (default: the family's default task)")
    solve.add_argument("--out", help="directory for solution.json and policy.png")
    solve.set_defaults(run=command_solve)
    compare = commands.add_parser(
        "compare",
        help="train constrained RL learners on one task through one protocol",
        description="Train OmniSafe algorithms (Python 3.10, 'omnisafe' extra) and the SB3 Lagrangian learners "
        "SB3-PPOLag, SB3-TRPOLag ('sb3' extra) on one task with seeds 0..S-1; evaluate each final policy (exactly on "
        "tabular families); write DIR/summary.json and learning-curve PNGs.",
    )
    compare.add_argument("--algos", required=True, help="comma-separated, e.g. PPOLag,TRPOLag,CPO,SB3-PPOLag")
    compare.add_argument("--env", required=True, help="a registered id, e.g. cmdp_envs/GridWorld-v0")
    compare.add_argument("--steps", type=_count(1), required=True, help="environment steps per run")
    compare.add_argument("--seeds", type=_count(1), default=1, help="number of seeds (0..S-1)")
    compare.add_argument("--out", required=True, help="output directory")
    compare.add_argument("--task", nargs="+", metavar="KEY=VALUE", help="task parameters (default: default task)")
    compare.set_defaults(run=command_compare)
    reproduce = commands.add_parser(
        "reproduce",
        help="reproduce a paper's experiment: gridworld (Ni & Kamgarpour 2026, Figure 2), cmaml (Daaboul et al., "
        "Figures 3-5), locomotion (Ni & Kamgarpour, H.2, Figure 4), safe-meta-rl (Xu & Zhu 2025)",
        description="gridworld: covering + safe mixture against its baselines on the ten test tasks of the paper's "
        "gridworld, every executed policy evaluated exactly; writes DIR/summary.json, figure2.png, all_methods.png. "
        "cmaml: C-MAML, its eta = 0 ablation, MAML, a pre-trained policy and random initialisation, each fine-tuned by "
        "the constrained learner on held-out tasks, and Xu & Zhu's safe adaptation from C-MAML's meta policy, all "
        "through the meta-test protocol (every executed policy checked by Monte Carlo); writes DIR/summary.json, "
        "fine_tuning.png, meta_training.png. locomotion: covering + safe mixture with learned oracles on "
        "Half-Cheetah or Hopper against MAML with a penalty, Xu & Zhu's safe meta-RL and CPO from scratch, on "
        "held-out tasks; writes DIR/summary.json, figure4.png. safe-meta-rl: Xu & Zhu's meta-training and safe "
        "adaptation against C-MAML and MAML, with computation times; writes DIR/summary.json, figure.png, "
        "meta_test.png, computation_time.png. A rerun with the same settings resumes from what is finished.",
    )
    reproduce.add_argument("experiment", choices=["gridworld", "cmaml", "locomotion", "safe-meta-rl"])
    reproduce.add_argument("--quick", action="store_true",
                           help="gridworld: K = 5,000 episodes per task instead of 40,000; cmaml: 6 training and 3 "
                           "held-out tasks, 4 outer iterations, 3 fine-tuning updates, 50 checking episodes per "
                           "policy; locomotion and safe-meta-rl: 200-step episodes and small budgets (minutes)")
    reproduce.add_argument("--out", help="output directory (default: out/reproduce-EXPERIMENT)")
    reproduce.add_argument("--seed", type=_count(0), default=0)
    reproduce.add_argument("--setting", choices=["authors", "ours"],
                           help="gridworld: the authors' code's policies, pi_s, cover and bookkeeping (default), or "
                           "ours (LP policies, an exploring pi_s, a coarser cover, pooled bookkeeping); default DIR "
                           "out/reproduce-gridworld-ours for ours")
    reproduce.add_argument("--env",
                           help="cmaml: the family's id (default: cmdp_envs/PointGoalArc1-v0, C-MAML's goal arc); "
                           "safe-meta-rl: point-circle (default), point-button, halfcheetah or hopper")
    reproduce.add_argument("--inner", choices=["SB3-PPOLag", "SB3-TRPOLag", "TRPOLag", "CPO", "PPOLag"],
                           help="cmaml: the constrained inner learner: ours on SB3 (default SB3-PPOLag), or "
                           "OmniSafe's (the 'omnisafe' extra, Python 3.10; TRPOLag is the paper's)")
    reproduce.add_argument("--robot", choices=["halfcheetah", "hopper"],
                           help="locomotion: the robot (default halfcheetah)")
    reproduce.add_argument("--oracle", choices=["SB3-PPOLag", "PPOLag", "CPO"],
                           help="locomotion: the learner behind O_l and O_s: ours on SB3 (default), or OmniSafe's "
                           "(the 'omnisafe' extra, Python 3.10)")
    reproduce.add_argument("--executor", default="local", choices=list(EXECUTORS),
                           help="where independent work runs (a meta-training iteration's tasks, the cover's O_l "
                           "calls, a gridworld method's test tasks): local processes, this process, or Ray (the "
                           "'ray' extra; a local Ray, or the cluster RAY_ADDRESS names); results are the same, so a "
                           "run may resume on another")
    reproduce.set_defaults(run=command_reproduce)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except CLIError as error:
        print(f"cmdp-envs {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
