"""Ni & Kamgarpour (2026), Section 6: covering + safe mixture against its baselines on the gridworld (Figure 2).

Training: Algorithm 1 with exact oracles and the noise-level comparison of Appendix H.1 as ``O_c``, in one of two
settings (``ReproductionConfig.setting``):

* ``"authors"`` (default), what the authors' public code runs, which produced the paper's figure: every policy, the
  candidates and ``pi_s`` alike, is the entropy-regularised primal-dual optimum
  (:func:`~cmdp_envs.tabular.solve_regularised_cmdp`, ``beta = 0.1``) instead of the LP's; ``pi_s`` is that optimum
  on the noise-:data:`REFERENCE_NOISE` task (:class:`~cmdp_envs.meta.oracles.ReferenceTaskOptimum`); the cover is
  Algorithm 1's with ``delta = 0.05`` and ``eps = 0.005``, which gives about ten members over noise 0.26-0.34 like
  theirs; and the safe mixture's practical constants keep their code's bookkeeping (``bookkeeping="authors"``).
* ``"ours"``: the LP as ``O_l``; ``delta = 0.1``, ``eps = 0.01`` (four members); ``pi_s`` from the exact worst-case
  natural-gradient ``O_s``, xi-feasible on the cover and on the noise-:data:`REFERENCE_NOISE` task (3.3 standard
  deviations above the mean; the paper's noise 0.5 is infeasible, README, Findings), keeping probability
  ``>= rho / 4`` on every action (``rho`` = :data:`EXPLORATION`) so that the gradient-based baselines can move away
  from it; and the practical constants with ``pi_s``'s samples pooled (``bookkeeping="pooled"``).

Testing: every method starts from the same ``pi_s`` on each of the ten test tasks of the paper for ``K`` episodes of
``horizon`` steps; every executed policy is evaluated exactly, and regret and constraint values use those exact
values. Methods (the name is the key in ``summary.json``):

* ``safe_mixture``: Algorithm 2 with the authors' practical constants;
* ``safe_mixture_paper_constants``: Algorithm 2 with Eq. 5-7;
* ``unsafe_pce``: PCE's testing phase (candidates run directly): the authors' PCE constants in their setting, the
  practical constants in ours;
* ``safe_meta_rl``: Xu & Zhu's closed-form adaptation in the setting of the paper's comparison (``lambda = lambda_c
  = 0.2``, 30 dual-descent steps of 1.0, 1000 sampled episodes per step, 100 in the authors' setting);
* ``safe_meta_rl_large_cost_kl``: the same with ``lambda_c = 1000``, the scale its safety theorem asks for;
* ``lb_sgd``: log-barrier SGD with the theory's smoothness constant;
* ``lb_sgd_tuned``: the same with smoothness ``M = 0.1``;
* ``safe_mixture_certified``: Algorithm 2 in its certified setting (anytime confidence sequences and value errors
  calibrated in training, :class:`~cmdp_envs.meta.safe_mixture.CertifiedConstants`);
* ``dope``: DOPE with its own confidence sets and warm-up (:mod:`cmdp_envs.meta.dope`);
* ``dope_plus_authors``: DOPE+ with the gridworld authors' bonuses, constants and 18,000-episode warm-up.

The ten test tasks of a method run in parallel through an executor (``ReproductionConfig.executor``, local processes
by default); every executor gives the same results. Local processes are spawned, so a script that calls :func:`run`
needs the usual ``if __name__ == "__main__":`` guard (``executor="serial"`` does not).

Results are written after every method, and a rerun resumes from them when everything that determines them is
unchanged: the configuration, the training settings (``O_s`` included), the method's settings (the ``repr`` of its
:class:`~cmdp_envs.meta.evaluation.MetaTestMethod` value), the result format and the source code of the modules
involved (a hash of it). A resumed run's ``summary.json`` is byte-identical to an uninterrupted run's. Training and
test runs draw from independent seed streams.

The exact check counts violations; it does not presume them absent. With the practical constants the safe mixture
can execute slightly infeasible mixtures, and ``lb_sgd_tuned``'s smoothness ``M = 0.1`` is far below a valid
constant, so its safety is measured, not guaranteed (README, results).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

import cmdp_envs
from cmdp_envs import regularised_kernel, tabular
from cmdp_envs.families import gridworld as gridworld_family
from cmdp_envs.families.gridworld import GOAL_REWARD, PAPER_TEST_NOISE_LEVELS, UNSAFE_COST, GridWorldFamily
from cmdp_envs.io import UnreadableFileError, read_json, write_json
from cmdp_envs.meta import covering as covering_module
from cmdp_envs.meta import confidence_sequences, dope, estimators, evaluation, lb_sgd, policies, safe_mixture
from cmdp_envs.meta.covering import CoveringResult, train
from cmdp_envs.meta.dope import DOPE, AuthorsDOPEPlus
from cmdp_envs.meta.evaluation import MetaTestMethod, MetaTestRun, plot_runs, summarise
from cmdp_envs.meta.executors import EXECUTORS, make_executor
from cmdp_envs.meta.lb_sgd import LBSGD, LBSGDConfig
from cmdp_envs.meta.oracles import (
    DistanceCheck,
    ExactLPOracle,
    ExactSimultaneouslyFeasibleOracle,
    ReferenceTaskOptimum,
    RegularisedOracle,
)
from cmdp_envs.meta.oracles import exact as exact_oracle
from cmdp_envs.meta.oracles import feasible as feasible_oracles
from cmdp_envs.meta.safe_adaptation import SafeAdaptationConfig, SafeMetaRL, closed_form
from cmdp_envs.meta.safe_mixture import CertifiedConstants, SafeMixtureMethod
from cmdp_envs.tabular import TabularCMDP, solve_cmdp

__all__ = ["ReproductionConfig", "SETTINGS", "METHOD_NAMES", "methods_in", "run", "format_table"]

#: The training settings (see the module docstring) and the cover's ``delta`` and ``eps`` in each.
SETTINGS = {"authors": {"delta": 0.05, "eps": 0.005}, "ours": {"delta": 0.1, "eps": 0.01}}
#: ``"authors"``: ``pi_s`` is the regularised optimum of this noise level; ``"ours"``: ``pi_s`` must be xi-feasible
#: here too (the largest feasible noise level is about 0.436).
REFERENCE_NOISE = 0.4
#: ``rho``: ``pi_s`` is ``(1 - rho) pi + rho uniform`` in every state.
EXPLORATION = 0.02


@dataclasses.dataclass(frozen=True)
class ReproductionConfig:
    """:param setting: ``"authors"`` or ``"ours"`` (the module docstring).
    :param n_episodes: ``K`` per test task (the paper: 40,000).
    :param horizon: steps per test episode (the authors: 600; after 100 steps ``gamma^t < 3e-5``).
    :param delta, eps, xi: Algorithm 1's confidence, cover radius (in noise level) and ``pi_s``'s margin; ``delta``
        and ``eps`` default to the setting's (:data:`SETTINGS`).
    :param seed: seeds training and, through it, every test run.
    :param executor: where a method's test tasks run: ``"local"`` processes, ``"serial"`` or ``"ray"`` (the same
        results on each, so it is not part of the settings a saved result is checked against).
    """

    setting: str = "authors"
    n_episodes: int = 40_000
    horizon: int = 100
    delta: float | None = None
    eps: float | None = None
    xi: float = 0.05
    seed: int = 0
    executor: str = "local"

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ValueError(f"setting must be one of {list(SETTINGS)}, got {self.setting!r}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {self.executor!r}")
        for name, value in SETTINGS[self.setting].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    @classmethod
    def quick(cls, seed: int = 0, setting: str = "authors", executor: str = "local") -> ReproductionConfig:
        return cls(setting=setting, n_episodes=5_000, seed=seed, executor=executor)


def _safe_meta_rl(**overrides: Any) -> SafeMetaRL:
    return SafeMetaRL(SafeAdaptationConfig(advantages="sampled", **overrides))


def methods_in(setting: str) -> dict[str, tuple[MetaTestMethod, str]]:
    """name -> (test-time method, a one-line description for summary.json), in ``setting``: in ``"authors"`` the safe
    mixture's practical constants keep the authors' bookkeeping, PCE has the authors' own constants and Safe Meta-RL
    adapts from 100 trajectories per step; in ``"ours"`` the safe mixture and PCE use the practical constants with
    ``pi_s``'s samples pooled, and Safe Meta-RL 1,000 trajectories per step."""
    bookkeeping = "authors" if setting == "authors" else "pooled"
    practical = safe_mixture.PracticalConstants(bookkeeping=bookkeeping)
    # The authors run PCE with constants of its own: eps = 0.1, radii sqrt(3000/n) and sqrt(600/n), tests from the
    # 100th episode of a phase (no mixture, so no raise).
    pce = dataclasses.replace(practical, eps=0.1, reward_scale=3000.0, cost_scale=600.0,
                              min_episodes=100) if setting == "authors" else practical
    # The authors adapt Safe Meta-RL from 100 trajectories per step.
    trajectories = 100 if setting == "authors" else 1000
    return {
        "safe_mixture": (SafeMixtureMethod(practical),
                         f"Algorithm 2, practical constants of the authors' code, {bookkeeping} bookkeeping"),
        "safe_mixture_paper_constants": (SafeMixtureMethod(safe_mixture.PaperConstants(eps=0.01, delta=0.1,
                                                                                        value_range=10.0)),
                                         "Algorithm 2, Eq. 5-7 (range 10)"),
        "unsafe_pce": (SafeMixtureMethod(pce, mixture=False),
                       "PCE testing phase (Algorithm 4): candidates run directly"
                       + (", the authors' PCE constants" if setting == "authors" else "")),
        "safe_meta_rl": (_safe_meta_rl(n_episodes=trajectories),
                         f"Xu & Zhu, lambda = lambda_c = 0.2, 30 dual-descent steps, {trajectories} trajectories "
                         "per step"),
        "safe_meta_rl_large_cost_kl": (_safe_meta_rl(cost_kl=1000.0, n_episodes=trajectories),
                                       f"Xu & Zhu, lambda_c = 1000, {trajectories} trajectories per step"),
        "lb_sgd": (LBSGD(), "log-barrier SGD, theory smoothness 8R/(1-gamma)^3"),
        "lb_sgd_tuned": (LBSGD(LBSGDConfig(smoothness=0.1)),
                         "log-barrier SGD, smoothness M = 0.1 (not a valid bound)"),
        "safe_mixture_certified": (SafeMixtureMethod(CertifiedConstants(reward_range=(0.0, GOAL_REWARD),
                                                                        cost_range=(0.0, UNSAFE_COST))),
                                   "Algorithm 2, certified setting: anytime empirical-Bernstein confidence sequences, "
                                   "value errors calibrated in training, delta = 0.05"),
        "dope": (DOPE(), "DOPE (Bura et al.), its own confidence sets, warm-up K0 = S^2 A H^3 / Delta^2"),
        "dope_plus_authors": (AuthorsDOPEPlus(),
                              "DOPE+ as the gridworld authors ran it: their bonuses and constants, pi_s for the first "
                              "18,000 episodes"),
    }


#: Every method's name (the same in both settings).
METHOD_NAMES = tuple(methods_in("authors"))

#: The methods of the paper's Figure 2 (the ones implemented), in its order, per setting: in ours, Safe Meta-RL's safe
#: variant and the LB-SGD that moves, since the paper's settings of both are unsafe or frozen there.
FIGURE2_METHODS = {"authors": ("safe_mixture", "safe_mixture_certified", "unsafe_pce", "safe_meta_rl", "dope",
                               "dope_plus_authors", "lb_sgd"),
                   "ours": ("safe_mixture", "safe_mixture_certified", "safe_meta_rl_large_cost_kl", "lb_sgd_tuned",
                            "lb_sgd")}

#: Written into every result file; a file of another format is recomputed.
RESULT_FORMAT = 3


@dataclasses.dataclass(frozen=True)
class _TestRun:
    """A picklable ``(cmdp, seed) -> method.run_on_tabular(cmdp, training, K, horizon, seed)``."""

    method: MetaTestMethod
    training: CoveringResult
    n_episodes: int
    horizon: int

    def __call__(self, cmdp_and_seed: tuple[TabularCMDP, np.random.SeedSequence]) -> MetaTestRun:
        cmdp, seed = cmdp_and_seed
        return self.method.run_on_tabular(cmdp, self.training, self.n_episodes, self.horizon, seed)


def _code_fingerprint() -> str:
    """A hash of the source of every module the reproduction's numbers depend on."""
    modules = (tabular, regularised_kernel, gridworld_family, covering_module, estimators, evaluation, lb_sgd, dope,
               policies, closed_form, safe_mixture, confidence_sequences, exact_oracle, feasible_oracles)
    source = "".join(inspect.getsource(module) for module in modules)
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _warn(message: str) -> None:
    """One warning line on stderr, clear of the progress bars."""
    tqdm.write(f"cmdp-envs reproduce: warning: {message}", file=sys.stderr)


def _read_checkpoint(path: Path) -> Any:
    """The JSON in ``path``; ``None`` when there is none or it cannot be read (then one warning names it)."""
    try:
        return read_json(path)
    except FileNotFoundError:
        return None
    except UnreadableFileError as error:
        _warn(f"{error}; recomputing it")
        return None


def _train(family: GridWorldFamily, config: ReproductionConfig, out: Path) -> tuple[CoveringResult, dict[str, Any]]:
    """Algorithm 1 in the config's setting, or its saved result when the saved one was trained with the same
    settings; and the settings."""
    reference_task = family.task(noise=REFERENCE_NOISE)
    learner: Any
    if config.setting == "authors":
        learner = RegularisedOracle(family)
        feasible_oracle: Any = ReferenceTaskOptimum(family, reference_task)
        oracle_settings = {"learner": "entropy_regularised_primal_dual",
                           "feasible_oracle": {"reference_noise": REFERENCE_NOISE}}
    else:
        learner = ExactLPOracle(family)
        feasible_oracle = ExactSimultaneouslyFeasibleOracle(family, reference_tasks=[reference_task],
                                                            exploration=EXPLORATION)
        oracle_settings = {"learner": "exact_lp",
                           "feasible_oracle": {"iterations": feasible_oracle.iterations,
                                               "step_size": feasible_oracle.step_size,
                                               "reference_noise": REFERENCE_NOISE, "exploration": EXPLORATION}}
    settings = {"setting": config.setting, "delta": config.delta, "eps": config.eps, "xi": config.xi,
                "seed": config.seed, "calibrated": True, **oracle_settings, "version": cmdp_envs.__version__,
                "code": _code_fingerprint()}
    directory = out / "covering" / hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    # settings.json is written last, so its presence marks a complete save; it records a checksum of every file.
    saved = _read_checkpoint(directory / "settings.json")
    if saved is not None:
        changed = _changed_covering_file(directory, saved)
        if not isinstance(saved, dict) or saved.get("settings") != settings:
            _warn(f"{directory / 'settings.json'} does not match this run's training settings; training again")
        elif changed is not None:
            _warn(f"{changed} does not match the checksum recorded when it was saved (edited or damaged); "
                  "training again")
        else:
            try:
                return CoveringResult.load(directory, family), settings
            except ValueError as error:
                _warn(f"{error}; training again")
    covering = train(family, learner, DistanceCheck(family, parameter="noise"), feasible_oracle,
                     delta=config.delta, eps=config.eps, xi=config.xi, seed=config.seed, calibrate=True)
    (directory / "settings.json").unlink(missing_ok=True)
    covering.save(directory)
    checksums = {path.name: _file_digest(path) for path in sorted(directory.iterdir())
                 if path.name != "settings.json" and not path.name.startswith(".")}
    write_json(directory / "settings.json", {"settings": settings, "sha256": checksums})
    return covering, settings


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _changed_covering_file(directory: Path, saved: Any) -> Path | None:
    """The first file of a saved covering whose bytes differ from the checksum recorded at save, or that is
    missing; ``None`` when all match (or the record is not a checksum table: then the settings check reports it)."""
    checksums = saved.get("sha256") if isinstance(saved, dict) else None
    if not isinstance(checksums, dict) or "covering.json" not in checksums:
        return None if not isinstance(saved, dict) or "settings" not in saved else directory / "settings.json"
    for name, digest in checksums.items():
        path = directory / str(name)
        if not path.is_file() or _file_digest(path) != digest:
            return path
    return None


def _saved_result(path: Path, config_json: dict[str, Any], settings: str, n_tasks: int) -> dict[str, Any] | None:
    """A method's finished result from ``path`` if it was computed under this configuration and these settings and
    has the shape :func:`~cmdp_envs.meta.evaluation.summarise` gives; else ``None``, with one warning line naming the
    file unless it does not exist."""
    saved = _read_checkpoint(path)
    if saved is None:
        return None
    problem = _result_file_problem(saved, n_tasks)
    if problem is not None:
        _warn(f"{path}: {problem}; recomputing it")
        return None
    if saved["format"] != RESULT_FORMAT or saved["config"] != config_json or saved["settings"] != settings:
        _warn(f"{path} was written with other settings or by another version; recomputing it")
        return None
    return saved["result"]


def _digest(result: Any) -> str:
    """The checksum a result file carries of its result: any edit or damage that still parses is caught by it."""
    return hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()


def _finite_numbers(values: Any, length: int | None = None) -> bool:
    return (isinstance(values, list) and (length is None or len(values) == length)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values))


def _result_file_problem(saved: Any, n_tasks: int) -> str | None:
    """What is wrong with a method's result file (its shape, its values, its checksum), or ``None``."""
    if not isinstance(saved, dict):
        return f"expected a JSON object, found {type(saved).__name__}"
    missing = {"format", "config", "settings", "result", "sha256"} - set(saved)
    if missing:
        return f"missing {sorted(missing)}"
    result = saved["result"]
    if not isinstance(result, dict):
        return "'result' is not a JSON object"
    if saved["sha256"] != _digest(result):
        return "its result does not match the checksum written with it (edited or damaged)"
    for key in ("final_regret_mean", "max_cost_value"):
        if not _finite_numbers([result.get(key)]):
            return f"'result.{key}' is {result.get(key)!r}, not a finite number"
    for key in ("violating_policies", "violating_episodes", "executed_policies"):
        value = result.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"'result.{key}' is {value!r}, not a count"
    if not _finite_numbers(result.get("final_regret_per_task"), n_tasks):
        return f"'result.final_regret_per_task' is not a list of {n_tasks} finite numbers"
    curve = result.get("curve")
    try:
        episodes = curve["episode"]
        bands = [curve[key][band] for key in ("regret", "cost_value") for band in ("mean", "p10", "p90")]
    except (TypeError, KeyError):
        return "'result.curve' lacks the episode, regret and cost_value curves"
    if not (_finite_numbers(episodes) and all(_finite_numbers(band, len(episodes)) for band in bands)):
        return "the curves of 'result.curve' are not lists of finite numbers of one length"
    if not all(isinstance(result.get(key), str) for key in ("description", "settings")):
        return "'result' lacks its description or settings"
    return None


def run(out: str | Path, config: ReproductionConfig, methods: list[str] | None = None) -> dict[str, Any]:
    """Train, run every method on the ten test tasks, write ``out/summary.json`` and the figures; return the
    summary. Finished methods found in ``out/methods/`` under the same configuration are reused; a result file that
    cannot be read, has the wrong shape or was written under other settings is named in a warning and recomputed.

    The summary holds results only, so a resumed run writes the same bytes as an uninterrupted one; wall times go to
    ``out/timings.json``. The figures are written before the summary, and a figure this run does not draw is removed,
    so none is left from an older run.
    """
    out = Path(out)
    available = methods_in(config.setting)
    methods = list(available) if methods is None else methods
    unknown = sorted(set(methods) - set(available))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(available)}")
    family = GridWorldFamily()
    started = time.perf_counter()
    covering, training_settings = _train(family, config, out)
    config_json = {**{key: value for key, value in dataclasses.asdict(config).items() if key != "executor"},
                   "test_noise_levels": list(PAPER_TEST_NOISE_LEVELS),
                   "reference_noise": REFERENCE_NOISE, "exploration": EXPLORATION, "training": training_settings}
    cmdps = [family.tabular(family.task(noise=noise)) for noise in PAPER_TEST_NOISE_LEVELS]
    optimal = [solve_cmdp(cmdp).reward_value for cmdp in cmdps]
    # Training draws from SeedSequence(seed); the test runs from a separate stream.
    test_seeds = np.random.SeedSequence([config.seed, 1]).spawn(len(cmdps))
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    with (tqdm(total=len(methods) * len(cmdps), desc="test runs") as progress,
          make_executor(config.executor) as executor):
        for name in methods:
            path = out / "methods" / f"{name}.json"
            method, description = available[name]
            settings = repr(method)
            saved = _saved_result(path, config_json, settings, len(cmdps))
            if saved is not None:
                results[name] = saved
                progress.update(len(cmdps))
                continue
            method_started = time.perf_counter()
            runs = executor.map(_TestRun(method, covering, config.n_episodes, config.horizon),
                                list(zip(cmdps, test_seeds)))
            progress.update(len(cmdps))
            results[name] = {"description": description, "settings": settings, **summarise(runs, optimal)}
            timings[name] = time.perf_counter() - method_started
            write_json(path, {"format": RESULT_FORMAT, "config": config_json, "settings": settings,
                              "result": results[name], "sha256": _digest(results[name])})
    summary = {
        "config": config_json,
        "training": {"n_samples": covering.n_samples, "cover_size": covering.cover_size,
                     "doublings": covering.doublings, "coverage_error": covering.coverage_error,
                     "cover_noise_levels": [entry.task.noise for entry in covering.policy_values],
                     # Test tasks within eps of a member, whose candidates' values Algorithm 2 may rely on.
                     "test_tasks_covered": sum(
                         min(abs(entry.task.noise - noise) for entry in covering.policy_values) <= config.eps
                         for noise in PAPER_TEST_NOISE_LEVELS)},
        "optimal_reward_values": optimal,
        "methods": results,
    }
    cost_limit = cmdps[0].cost_limit
    figure2 = {name: results[name] for name in FIGURE2_METHODS[config.setting] if name in results}
    if figure2:
        plot_runs(figure2, cost_limit, out / "figure2.png",
                  title=f"GridWorld, {len(cmdps)} test tasks (Figure 2 style)")
    else:
        (out / "figure2.png").unlink(missing_ok=True)
    plot_runs(results, cost_limit, out / "all_methods.png", title="GridWorld, every method")
    write_json(out / "summary.json", summary)
    write_json(out / "timings.json", {"seconds": time.perf_counter() - started,
                                      "computed_methods_seconds": timings})
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """The summary as a text table, one row per method; "safe" is the exact check over every executed policy."""
    rows = [f"{'method':<30}{'final regret (mean)':>20}{'violating policies':>20}{'max J_c':>9}  safe  "
            f"(d = 1.5, K = {summary['config']['n_episodes']}, {len(summary['optimal_reward_values'])} tasks)"]
    for name, result in summary["methods"].items():
        verdict = "yes" if result["violating_policies"] == 0 else "NO"
        rows.append(f"{name:<30}{result['final_regret_mean']:>20.1f}{result['violating_policies']:>20d}"
                    f"{result['max_cost_value']:>9.3f}  {verdict}")
    return "\n".join(rows)
