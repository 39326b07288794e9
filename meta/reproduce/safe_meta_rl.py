"""Xu & Zhu (NeurIPS 2025), their experiments: meta-train a safe meta-policy, adapt it to held-out tasks by their safe
adaptation step, and compare reward, the largest cost over tasks, anytime safety and computation time with C-MAML
and MAML meta-trained and tested in the same run.

Environments (``--env``):

* ``point-circle``: Meta-CPO's Circle tasks (``cmdp_envs/PointCircleMetaCPO-v0``: radius ``~ U[1.0, 1.5]``, walls at
  the radius times ``U[0.55, 0.75]``);
* ``point-button``: ``cmdp_envs/PointButton1-v0`` (Safety-Gymnasium's layouts by seed);
* ``halfcheetah``, ``hopper``: ``cmdp_envs/<Robot>Locomotion-v0``: target velocity, Safety-Gymnasium's velocity
  cost, mass, friction and damping scales ``~ U[0.8, 1.2]``; one limit for all tasks (:data:`LOCOMOTION_LIMIT`),
  since C-MAML's meta critic and multiplier need one; the Hopper's episodes run on after a fall, as in
  ``HopperNiKamgarpour-v0``.

Methods, all meta-trained for ``outer_iterations`` iterations of ``meta_batch`` training tasks by C-MAML's loop:

* ``xu_zhu``: their meta-training read first-order (:func:`~cmdp_envs.meta.safe_adaptation.xu_zhu_config`: one
  safe adaptation step per task, the FoMAML step while the meta policy is estimated feasible on every task of the
  batch, else a step down the most violated task's cost), then ``adaptation_steps`` safe adaptation steps on each
  held-out task;
* ``xu_zhu_large_cost_kl``: the same with ``lambda_c = 1000`` in the step's constraint (the second setting of the
  gridworld comparison: a KL weight of the size their safety guarantee asks for, and small steps);
* ``cmaml``: C-MAML with our SB3 PPO-Lagrangian as inner loop, fine-tuned by it at test time;
* ``maml``: first-order MAML with an unconstrained SB3 TRPO inner loop, fine-tuned by the PPO-Lagrangian.

Each test step (an adaptation step, a learner update) runs ``episodes_per_step`` whole episodes; every policy a
method executed is checked by Monte Carlo (``n_check_episodes`` episodes, intervals simultaneous over a run's
policies at 95%): anytime safety holds on a task when every one of them is verified within the limit.

Reported (``summary.json``, ``figure.png``, ``computation_time.png``): per meta-training iteration, the average
reward of the adapted policies and the largest cost over the batch's tasks (their figure's meta-training panels);
per test step, the average reward and the largest cost over the held-out tasks; and in ``timings.json`` (wall
times do not belong in a summary that must repeat exactly) the seconds per meta-training iteration and for the
meta-test of each method. Every stage is saved as it ends; a rerun resumes and writes the same ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from cmdp_envs.io import save_figure, write_json
from cmdp_envs.meta.cmaml import CMAML, CMAMLConfig, maml_config
from cmdp_envs.meta.executors import make_executor, spawn_seeds
from cmdp_envs.meta.reproduce import stages
from cmdp_envs.meta.reproduce.stages import (
    finish_figure,
    meta_train_stage,
    panels,
    plot_test_curves,
    protocol_summary,
    save_stage,
    saved_stage,
    saved_timings,
    sb3_inner_loop,
)
from cmdp_envs.meta.safe_adaptation.neural_meta_training import SafeAdaptationInnerLoop, xu_zhu_config
from cmdp_envs.meta.safe_adaptation.neural_step import NeuralAdaptationConfig
from cmdp_envs.meta.test_time import LearnerFineTuning, NeuralSafeAdaptation, meta_test
from cmdp_envs.task import Fixed, TaskFamily, check_count

__all__ = ["ReproductionConfig", "ENVS", "METHODS", "LOCOMOTION_LIMIT", "run", "format_table"]

#: ``--env``: the registered id of each environment.
ENVS = {"point-circle": "cmdp_envs/PointCircleMetaCPO-v0", "point-button": "cmdp_envs/PointButton1-v0",
        "halfcheetah": "cmdp_envs/HalfCheetahLocomotion-v0", "hopper": "cmdp_envs/HopperLocomotion-v0"}
METHODS = ("xu_zhu", "xu_zhu_large_cost_kl", "cmaml", "maml")
#: The discounted velocity-cost limit of the locomotion tasks (the middle of ``<Robot>Locomotion-v0``'s
#: ``U[5, 15]``).
LOCOMOTION_LIMIT = 10.0
#: The confidence of the Monte Carlo check's intervals, simultaneous over a run's executed policies.
CHECK_CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class ReproductionConfig:
    """One run's settings (defaults: the full run)."""

    env: str = "point-circle"
    seed: int = 0
    episode_steps: int = 500
    n_train_tasks: int = 20
    n_test_tasks: int = 10
    outer_iterations: int = 40
    meta_batch: int = 4
    rollout_episodes: int = 4
    adaptation_steps: int = 5
    episodes_per_step: int = 4
    n_envs: int = 2
    n_check_episodes: int = 50
    executor: str = "local"

    def __post_init__(self) -> None:
        if self.env not in ENVS:
            raise ValueError(f"env must be one of {sorted(ENVS)}, got {self.env!r}")
        for name in ("episode_steps", "n_train_tasks", "n_test_tasks", "outer_iterations", "meta_batch",
                     "rollout_episodes", "adaptation_steps", "episodes_per_step", "n_envs"):
            check_count(name, getattr(self, name), minimum=1)
        check_count("n_check_episodes", self.n_check_episodes, minimum=2)
        check_count("seed", self.seed)
        if self.meta_batch > self.n_train_tasks:
            raise ValueError(f"meta_batch = {self.meta_batch} exceeds n_train_tasks = {self.n_train_tasks}")
        if self.step_steps % self.n_envs:
            raise ValueError(f"a step's {self.step_steps} env steps must split evenly over n_envs = {self.n_envs}")

    @classmethod
    def quick(cls, **overrides: Any) -> ReproductionConfig:
        """Minutes on 2 cores: 200-step episodes, 6 training and 5 held-out tasks, 4 meta-training iterations of
        2 tasks, 3 test steps of 2 episodes, 20 checking episodes per executed policy."""
        settings = {"episode_steps": 200, "n_train_tasks": 6, "n_test_tasks": 5, "outer_iterations": 4,
                    "meta_batch": 2, "rollout_episodes": 2, "adaptation_steps": 3, "episodes_per_step": 2,
                    "n_check_episodes": 20, **overrides}
        return cls(**settings)

    @property
    def step_steps(self) -> int:
        """Env steps of one test step (and of one inner adaptation)."""
        return self.episodes_per_step * self.episode_steps

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return {"max_episode_steps": self.episode_steps}

    def digest(self) -> str:
        """A hash of these settings and of the source the results depend on."""
        from cmdp_envs.meta import cmaml, inner_loops, sb3_lagrangian, test_time
        from cmdp_envs.meta.safe_adaptation import neural_meta_training, neural_step

        modules = (cmaml, inner_loops, sb3_lagrangian, test_time, neural_meta_training, neural_step, stages,
                   sys.modules[__name__])
        settings = {key: value for key, value in dataclasses.asdict(self).items() if key != "executor"}
        text = json.dumps(settings, sort_keys=True) + "".join(inspect.getsource(module) for module in modules)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _family(config: ReproductionConfig) -> TaskFamily:
    import gymnasium as gym

    settings: dict[str, Any] = {}
    if config.env in ("halfcheetah", "hopper"):
        settings["cost_limit"] = Fixed(LOCOMOTION_LIMIT)
    if config.env == "hopper":  # with -|v - target| <= 0, ending the episode by a fall would pay best
        settings["terminate_when_unhealthy"] = False
    return gym.make(ENVS[config.env], **settings).unwrapped.family


def _run_methods(out: Path, config: ReproductionConfig, family: TaskFamily, train_tasks: list, test_tasks: list,
                 executor: Any, timings: dict[str, float]) -> dict[str, Any]:
    digest = config.digest()
    meta_seed, test_seed = spawn_seeds(config.seed, 2)
    learner = sb3_inner_loop(family, "PPO", config.n_envs, config.step_steps, config.env_kwargs)
    # The step's lambda = lambda_c = 0.2 is the gridworld comparison's baseline; its dual step is smaller than the
    # gridworld's 1.0, since these costs are sums over hundreds of steps.
    adaptations = {"xu_zhu": NeuralAdaptationConfig(n_episodes=config.episodes_per_step, dual_step=0.1),
                   "xu_zhu_large_cost_kl": NeuralAdaptationConfig(n_episodes=config.episodes_per_step, dual_step=0.1,
                                                                  cost_kl=1000.0)}
    base = CMAMLConfig(meta_batch=config.meta_batch, adaptation_steps=1, rollout_episodes=config.rollout_episodes)
    settings = {**{name: (SafeAdaptationInnerLoop(learner, adaptation), xu_zhu_config(base))
                   for name, adaptation in adaptations.items()},
                "cmaml": (learner, base),
                "maml": (sb3_inner_loop(family, "TRPO", config.n_envs, config.step_steps, config.env_kwargs),
                         maml_config(base))}
    results: dict[str, Any] = {}
    for name in METHODS:
        path = out / "methods" / f"{name}-{digest}.json"
        saved = saved_stage(path, digest)
        if saved is not None:
            results[name] = saved
            continue
        inner, meta_config = settings[name]
        theta, history = meta_train_stage(out, name, CMAML(family, train_tasks, inner, meta_config, meta_seed,
                                                           executor), config.outer_iterations, digest, timings)
        method: Any = (NeuralSafeAdaptation(name, learner, theta, config.adaptation_steps, adaptations[name])
                       if name in adaptations else LearnerFineTuning(name, learner, theta, config.adaptation_steps))
        started = time.perf_counter()
        tested = meta_test(method, family, tqdm(test_tasks, desc=f"meta-test {name}"),
                           budget=config.adaptation_steps * config.step_steps, seed=test_seed,
                           n_check_episodes=config.n_check_episodes, confidence=CHECK_CONFIDENCE)
        timings[f"{name}_meta_test"] = time.perf_counter() - started
        summary = protocol_summary(tested)
        anytime_safe = [all(policy["verified"] for policy in task["executed"]) for task in summary["per_task"]]
        results[name] = {**summary, "anytime_safe_tasks": int(sum(anytime_safe)), "meta_training": history}
        save_stage(path, digest, results[name])
    return results


def run(out: str | Path, config: ReproductionConfig) -> dict[str, Any]:
    """Meta-train and test every method; write ``out/summary.json``, ``out/figure.png``, ``out/timings.json`` and
    ``out/computation_time.png``; return the summary."""
    out = Path(out)
    family = _family(config)
    tasks = family.sample(config.n_train_tasks + config.n_test_tasks, seed=config.seed)
    train_tasks, test_tasks = tasks[: config.n_train_tasks], tasks[config.n_train_tasks:]
    cost_limit = test_tasks[0].cost_limit
    timings_path = out / "timings.json"
    timings = saved_timings(timings_path)
    with make_executor(config.executor, **({"max_workers": 2} if config.executor == "local" else {})) as executor:
        results = _run_methods(out, config, family, train_tasks, test_tasks, executor, timings)
    summary = {"config": dataclasses.asdict(config), "family": repr(family), "cost_limit": cost_limit,
               "cost_semantics": family.cost_semantics, "check_confidence": CHECK_CONFIDENCE,
               "held_out_tasks": [task.as_dict() for task in test_tasks], "methods": results}
    _plot(results, cost_limit, out / "figure.png")
    plot_test_curves(results, cost_limit, family.cost_semantics, out / "meta_test.png", "adaptation step",
                     f"{config.env}: held-out tasks per adaptation step (mean, 10-90% band)")
    _plot_times(timings, out / "computation_time.png")
    write_json(timings_path, timings)
    write_json(out / "summary.json", summary)
    return summary


def _plot(results: dict[str, Any], cost_limit: float, path: Path) -> None:
    """Xu & Zhu's figure: average reward and largest cost over tasks, during meta-training (the policies adapted
    from the meta policy, per iteration) and at meta-test (the checked values, per adaptation step)."""
    figure, axes = panels(2)
    for index, (name, result) in enumerate(results.items()):
        history = result["meta_training"]
        x = [row["iteration"] for row in history]
        axes[0][0].plot(x, [row["adapted_return"] for row in history], color=f"C{index}", label=name)
        axes[0][1].plot(x, [row["adapted_cost_max"] for row in history], color=f"C{index}", label=name)
        axes[1][0].plot(result["update"], result["checked"]["return"]["mean"], color=f"C{index}", label=name)
        axes[1][1].plot(result["update"], result["checked"]["cost"]["max"], color=f"C{index}", label=name)
    axes[0][0].set_ylabel("meta-training: average discounted return, adapted")
    axes[0][1].set_ylabel("meta-training: largest cost over the batch, adapted")
    axes[1][0].set_ylabel("meta-test: average episode return (checked)")
    axes[1][1].set_ylabel("meta-test: largest cost over tasks (checked)")
    finish_figure(figure, axes, cost_limit, ["meta-training iteration", "adaptation step"],
                  "Reward and largest cost over tasks, meta-training and meta-test", path)


def _plot_times(timings: dict[str, float], path: Path) -> None:
    """Seconds per meta-training iteration and for the meta-test, per method (their computation-time figure)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 3.5), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    names = [name for name in METHODS if f"{name}_meta_test" in timings]
    # Horizontal bars: the method names are too long to sit side by side under vertical ones.
    for ax, key, label in ((axes[0], "_seconds_per_meta_iteration", "seconds per meta-training iteration"),
                           (axes[1], "_meta_test", "seconds for the meta-test")):
        ax.barh(names, [timings.get(name + key, np.nan) for name in names], color=[f"C{i}" for i in range(len(names))])
        ax.set_xlabel(label)
    axes[0].invert_yaxis()  # the methods top to bottom in the order of the table
    figure.suptitle("Computation time, measured in one run")
    save_figure(figure, path)


def format_table(summary: dict[str, Any], timings: dict[str, float]) -> str:
    """One row per method: the adapted reward and largest cost over the batch at the last meta-training iteration;
    the average checked return and the largest checked cost over held-out tasks at the first and last test step;
    the tasks on which every executed policy was verified (anytime safety); seconds per meta-training iteration and
    for the meta-test."""
    limit = summary["cost_limit"]

    def number(value: Any, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    rows = [f"{'method':<22}{'train return':>13}{'max cost':>9}{'test return first':>18}{'last':>8}"
            f"{'max cost first':>15}{'last':>8}{'anytime safe':>13}{'s/iteration':>12}{'test s':>8}"
            f"  (limit {limit:g}, {summary['cost_semantics']})"]
    for name, result in summary["methods"].items():
        last = result["meta_training"][-1]
        checked = result["checked"]
        rows.append(f"{name:<22}{last['adapted_return']:>13.2f}{last['adapted_cost_max']:>9.2f}"
                    f"{number(checked['return']['mean'][0], 2):>18}{number(checked['return']['mean'][-1], 2):>8}"
                    f"{number(checked['cost']['max'][0], 2):>15}{number(checked['cost']['max'][-1], 2):>8}"
                    f"{result['anytime_safe_tasks']:>7d} / {len(result['per_task']):<4d}"
                    f"{number(timings.get(name + '_seconds_per_meta_iteration'), 1):>12}"
                    f"{number(timings.get(name + '_meta_test'), 0):>8}")
    return "\n".join(rows)
