"""Daaboul et al. (C-MAML), Figures 3-5: meta-train, then test every method on held-out tasks through the meta-test
protocol (:mod:`cmdp_envs.meta.test_time`).

Methods (the keys of ``summary.json``); the first five are starts for the same fine-tuning by the constrained
learner (:class:`~cmdp_envs.meta.test_time.LearnerFineTuning`):

* ``cmaml``: C-MAML's meta policy (FoMAML outer step, safety critic and ``eta``);
* ``cmaml_no_eta``: the same with ``eta = 0`` (the paper's ablation, Figure 3);
* ``maml``: first-order MAML with an unconstrained TRPO inner loop (SB3's TRPO, or OmniSafe's TRPOLag with its
  multiplier held at 0; ``lambda`` and ``eta`` held at 0);
* ``pretrained``: the constrained learner trained on the task distribution (a training task per episode) for as
  many learner steps as C-MAML's inner loops take in all;
* ``random``: the learner's own random initialisation;
* ``cmaml_safe_adaptation``: Xu & Zhu's safe adaptation step
  (:class:`~cmdp_envs.meta.test_time.NeuralSafeAdaptation`) from C-MAML's meta policy instead of the learner: one
  step per fine-tuning update, each from that update's share of episodes.

Every method gets the same held-out tasks, seeds and env steps: ``fine_tune_updates`` updates of ``n_steps * n_envs``
steps (the safe adaptation step runs whole episodes, ``n_steps * n_envs // max_episode_steps`` of them per step, at
least 2). The protocol records every episode a method runs, with the policy that ran it, and checks every executed
policy by Monte Carlo (``n_check_episodes`` fresh episodes, intervals simultaneous over a run's policies at 95%).

Tasks: ``n_train_tasks + n_test_tasks`` drawn from the family with the run's seed; the first ones train, the rest
are held out. On the navigation families the limit is the paper's: ``d = 5`` on the undiscounted episode cost
(Safety-Gymnasium's reading, which OmniSafe's TRPOLag constrains).

Every stage is saved as it ends, under a name that carries a hash of the configuration: meta-training checkpoints
after every outer iteration (:meth:`~cmdp_envs.meta.cmaml.CMAML.run`), each method's fine-tuning results. A rerun with
the same configuration resumes and writes the same ``summary.json``; a file that cannot be read is named in a
warning and recomputed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from cmdp_envs.io import UnreadableFileError, atomic_write, read_npz, write_json
from cmdp_envs.meta.cmaml import CMAML, CMAMLConfig, InnerLoop, maml_config, pretrain
from cmdp_envs.meta.executors import make_executor, spawn_seeds
from cmdp_envs.meta.inner_loops import OmniSafeInnerLoop
from cmdp_envs.meta.reproduce import stages
from cmdp_envs.meta.reproduce.stages import (
    finish_figure,
    panels,
    plot_test_curves,
    protocol_summary,
    save_stage,
    saved_stage,
    sb3_inner_loop,
)
from cmdp_envs.meta.safe_adaptation.neural_step import NeuralAdaptationConfig
from cmdp_envs.meta.test_time import LearnerFineTuning, NeuralSafeAdaptation, meta_test
from cmdp_envs.task import Fixed, TaskFamily, check_count

__all__ = ["ReproductionConfig", "METHODS", "INNER_LOOPS", "run", "format_table"]

METHODS = ("cmaml", "cmaml_no_eta", "maml", "pretrained", "random", "cmaml_safe_adaptation")
#: ``--inner`` names: our SB3 learners (both lanes) and the SB3 algorithm behind each, and OmniSafe's algorithms
#: (lane B), by their own names.
INNER_LOOPS = {"SB3-PPOLag": "PPO", "SB3-TRPOLag": "TRPO", "TRPOLag": "TRPOLag", "CPO": "CPO", "PPOLag": "PPOLag"}
#: The paper's limit with TRPOLag, on the undiscounted episode cost.
PAPER_COST_LIMIT = 5.0
#: The confidence of the Monte Carlo check's intervals, simultaneous over a run's executed policies.
CHECK_CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class ReproductionConfig:
    """One run's settings. ``n_steps`` is per env and per learner update: at least an episode, so that every update
    reports an episode's return and cost."""

    env_id: str = "cmdp_envs/PointGoalArc1-v0"
    inner: str = "SB3-PPOLag"
    seed: int = 0
    n_train_tasks: int = 20
    n_test_tasks: int = 10
    outer_iterations: int = 40
    meta_batch: int = 4
    adaptation_steps: int = 2
    rollout_episodes: int = 8
    fine_tune_updates: int = 10
    n_envs: int = 2
    n_steps: int = 1000
    n_check_episodes: int = 100
    executor: str = "local"

    def __post_init__(self) -> None:
        if self.inner not in INNER_LOOPS:
            raise ValueError(f"inner must be one of {sorted(INNER_LOOPS)}, got {self.inner!r}")
        for name in ("n_train_tasks", "n_test_tasks", "outer_iterations", "meta_batch", "adaptation_steps",
                     "rollout_episodes", "fine_tune_updates", "n_envs", "n_steps"):
            check_count(name, getattr(self, name), minimum=1)
        check_count("n_check_episodes", self.n_check_episodes, minimum=2)
        check_count("seed", self.seed)
        if self.meta_batch > self.n_train_tasks:
            raise ValueError(f"meta_batch = {self.meta_batch} exceeds n_train_tasks = {self.n_train_tasks}")

    @classmethod
    def quick(cls, **overrides: Any) -> ReproductionConfig:
        """A run of a few minutes on 2 cores: 6 training and 3 held-out tasks, 4 outer iterations of 2 tasks, 3
        fine-tuning updates, 50 checking episodes per executed policy."""
        settings = {"n_train_tasks": 6, "n_test_tasks": 3, "outer_iterations": 4, "meta_batch": 2,
                    "rollout_episodes": 4, "fine_tune_updates": 3, "n_check_episodes": 50, **overrides}
        return cls(**settings)

    @property
    def learner_steps(self) -> int:
        """The learner steps of C-MAML's inner loops in all: the pre-trained baseline's budget."""
        return self.outer_iterations * self.meta_batch * self.adaptation_steps * self.n_steps * self.n_envs

    def digest(self) -> str:
        """A hash of these settings and of the source the results depend on (the meta-learner, the learners, the
        meta-test protocol, the safe adaptation step, this module): saved stages are reused only when all are
        unchanged."""
        from cmdp_envs.meta import cmaml, inner_loops, sb3_lagrangian, test_time
        from cmdp_envs.meta.safe_adaptation import neural_step

        source = "".join(inspect.getsource(module) for module in (cmaml, inner_loops, sb3_lagrangian, test_time,
                                                                  neural_step, stages, sys.modules[__name__]))
        # Every executor gives the same results (tested), so a run may resume on another one.
        settings = {key: value for key, value in dataclasses.asdict(self).items() if key != "executor"}
        settings = json.dumps(settings, sort_keys=True) + source
        return hashlib.sha256(settings.encode()).hexdigest()[:12]


def _family(env_id: str) -> TaskFamily:
    """The family of ``env_id``; the navigation Goal families with the paper's limit and its reading."""
    import gymnasium as gym

    paper_limit = {"cost_semantics": "undiscounted", "cost_limit": Fixed(PAPER_COST_LIMIT)}
    return gym.make(env_id, **(paper_limit if env_id.startswith("cmdp_envs/PointGoal") else {})).unwrapped.family


def _inner_loop(config: ReproductionConfig, family: TaskFamily, unconstrained_trpo: bool = False) -> InnerLoop:
    """The ``--inner`` learner, or (for MAML) an unconstrained TRPO of the same library: one update is
    ``n_steps`` per env on ``n_envs`` envs either way."""
    algo = INNER_LOOPS[config.inner]
    batch = config.n_steps * config.n_envs
    if config.inner.startswith("SB3-"):
        return sb3_inner_loop(family, "TRPO" if unconstrained_trpo else algo, config.n_envs, batch, {})
    # MAML's settings hold OmniSafe's multiplier at 0 (lambda_lr = 0), which makes TRPOLag TRPO.
    return OmniSafeInnerLoop(family, algo="TRPOLag" if unconstrained_trpo else algo, steps_per_epoch=batch,
                             train_cfgs={"vector_env_nums": config.n_envs})


def _run_methods(out: Path, config: ReproductionConfig, family: TaskFamily, train_tasks: list, test_tasks: list,
                 executor: Any) -> dict[str, Any]:
    """Every method's meta-training (or pre-training) and test on the held-out tasks, reusing what earlier runs
    saved."""
    digest = config.digest()
    seeds = spawn_seeds(config.seed, 2)  # meta-training and pre-training; the meta-test
    inner = _inner_loop(config, family)
    meta_config = CMAMLConfig(meta_batch=config.meta_batch, adaptation_steps=config.adaptation_steps,
                              rollout_episodes=config.rollout_episodes)

    def meta_train(name: str) -> tuple[np.ndarray, list[dict[str, float]]]:
        """C-MAML under the settings of ``name``; a finished run's checkpoint is read back, not rerun."""
        method_config = {"cmaml": meta_config,
                         "cmaml_no_eta": dataclasses.replace(meta_config, use_safety_critic=False),
                         "maml": maml_config(meta_config)}[name]
        method_inner = _inner_loop(config, family, unconstrained_trpo=True) if name == "maml" else inner
        cmaml = CMAML(family, train_tasks, method_inner, method_config, seed=seeds[0], executor=executor)
        # TensorBoard logs when the package is there (it comes with OmniSafe); the CSV log always.
        board = out / "tensorboard" / name if importlib.util.find_spec("tensorboard") is not None else None
        history = cmaml.run(config.outer_iterations, checkpoint=out / "methods" / f"{name}-{digest}.npz",
                            log=out / "methods" / f"{name}-{digest}.csv", tensorboard=board)
        return cmaml.theta, history

    # The same env steps for every method (see the module docstring); a learner's budget of episodes is then at
    # most its steps.
    learner_steps = config.fine_tune_updates * config.n_steps * config.n_envs
    probe = family.make_env()
    episode_length = probe.spec.max_episode_steps
    probe.close()
    results: dict[str, Any] = {}
    for name in METHODS:
        path = out / "methods" / f"{name}-{digest}.json"
        saved = saved_stage(path, digest)
        if saved is not None:
            results[name] = saved
            continue
        started = time.perf_counter()
        history: list[dict[str, float]] = []
        theta: np.ndarray | None = None
        if name in ("cmaml", "cmaml_no_eta", "maml"):
            theta, history = meta_train(name)
        elif name == "cmaml_safe_adaptation":
            theta, _ = meta_train("cmaml")
        elif name == "pretrained":
            theta_path = out / "methods" / f"pretrained-{digest}.npz"
            try:
                theta = read_npz(theta_path)["theta"]
            except (FileNotFoundError, UnreadableFileError, KeyError):
                theta = pretrain(inner, train_tasks, config.learner_steps, seed=seeds[0])
                atomic_write(theta_path, lambda file, value=theta: np.savez(file, theta=value))
        if name == "cmaml_safe_adaptation":
            episodes = max(2, learner_steps // config.fine_tune_updates // episode_length)
            method: Any = NeuralSafeAdaptation(name, inner, theta, steps=config.fine_tune_updates,
                                               config=NeuralAdaptationConfig(n_episodes=episodes, dual_step=0.1))
        else:
            method = LearnerFineTuning(name, inner, theta, config.fine_tune_updates)
        tested = meta_test(method, family, tqdm(test_tasks, desc=f"testing {name}"),
                           budget=max(learner_steps, 2 * config.fine_tune_updates), seed=seeds[1],
                           n_check_episodes=config.n_check_episodes, confidence=CHECK_CONFIDENCE)
        results[name] = {**protocol_summary(tested), "meta_training": history,
                         "wall_seconds": time.perf_counter() - started}
        save_stage(path, digest, results[name])
    return results


def run(out: str | Path, config: ReproductionConfig) -> dict[str, Any]:
    """Meta-train every method, fine-tune each on the held-out tasks, write ``out/summary.json``,
    ``out/fine_tuning.png`` and ``out/meta_training.png``; return the summary."""
    out = Path(out)
    family = _family(config.env_id)
    tasks = family.sample(config.n_train_tasks + config.n_test_tasks, seed=config.seed)
    train_tasks, test_tasks = tasks[: config.n_train_tasks], tasks[config.n_train_tasks:]
    cost_limit = train_tasks[0].cost_limit
    with make_executor(config.executor, **({"max_workers": 2} if config.executor == "local" else {})) as executor:
        results = _run_methods(out, config, family, train_tasks, test_tasks, executor)
    summary = {
        "config": dataclasses.asdict(config),
        "family": repr(family),
        "cost_limit": cost_limit,
        "cost_semantics": family.cost_semantics,
        "pretraining_learner_steps": config.learner_steps,
        "check_confidence": CHECK_CONFIDENCE,
        "held_out_tasks": [task.as_dict() for task in test_tasks],
        "methods": results,
    }
    plot_test_curves(results, cost_limit, family.cost_semantics, out / "fine_tuning.png", "fine-tuning update",
                     "Held-out tasks: the policy at each update (mean, 10-90% band across tasks)")
    _plot_meta_training(results, cost_limit, out / "meta_training.png")
    write_json(out / "summary.json", summary)
    return summary


def _plot_meta_training(results: dict[str, Any], cost_limit: float, path: Path) -> None:
    figure, axes = panels(1)
    axes = axes[0]
    for index, name in enumerate(("cmaml", "cmaml_no_eta")):
        history = results[name]["meta_training"]
        x = [row["iteration"] for row in history]
        axes[0].plot(x, [row["adapted_return"] for row in history], color=f"C{index}", label=name)
        axes[1].plot(x, [row["adapted_cost"] for row in history], color=f"C{index}", label=f"{name}, adapted")
        axes[1].plot(x, [row["meta_cost"] for row in history], color=f"C{index}", linestyle=":",
                     label=f"{name}, meta policy")
    axes[0].set_ylabel("discounted return after adaptation")
    axes[1].set_ylabel("cost")
    finish_figure(figure, [axes], cost_limit, "outer iteration",
                  "Meta-training with and without eta (Figure 3 style)", path)


def format_table(summary: dict[str, Any]) -> str:
    """One row per method: the last update's mean return and cost (observed in the episodes run; cost checked by Monte
    Carlo), the share of held-out tasks whose observed cost stayed within the limit at every update, and the share
    whose every executed policy was verified within it."""
    limit, semantics = summary["cost_limit"], summary["cost_semantics"]

    def number(value: float | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    rows = [f"{'method':<23}{'final return':>13}{'final cost':>11}{'checked cost':>13}{'always within':>14}"
            f"{'verified':>10}{'seconds':>9}  (limit {limit:g}, {semantics})"]
    for name, result in summary["methods"].items():
        rows.append(f"{name:<23}{number(result['observed']['return']['mean'][-1], 2):>13}"
                    f"{number(result['observed']['cost']['mean'][-1], 3):>11}"
                    f"{number(result['checked']['cost']['mean'][-1], 3):>13}"
                    f"{result['within_limit_fraction']:>14.0%}{result['verified_fraction']:>10.0%}"
                    f"{result['wall_seconds']:>9.0f}")
    return "\n".join(rows)
