"""Ni & Kamgarpour (2026), Section 6: covering + safe mixture against its baselines on the gridworld (Figure 2).

Training: Algorithm 1 with exact oracles (the LP as ``O_l``, the noise-level comparison of Appendix H.1 as ``O_c``,
the exact worst-case natural-gradient ``O_s``). The paper takes ``pi_s`` as the optimum of the noisiest task
(``i = 0.5``), which is infeasible (README, Findings); here ``pi_s`` must be xi-feasible on the cover and on the task
at noise :data:`REFERENCE_NOISE` (3.3 standard deviations above the mean), and keeps probability ``>= rho / 4`` on
every action (``rho`` = :data:`EXPLORATION`) so that the gradient-based baselines can move away from it.

Testing: every method starts from the same ``pi_s`` on each of the ten test tasks of the paper for ``K`` episodes of
``horizon`` steps; every executed policy is evaluated exactly, and regret and constraint values use those exact
values. Methods (the name is the key in ``summary.json``):

* ``safe_mixture``: Algorithm 2 with the authors' practical constants;
* ``safe_mixture_paper_constants``: Algorithm 2 with Eq. 5-7;
* ``unsafe_pce``: PCE's testing phase (candidates run directly), practical constants;
* ``safe_meta_rl``: Xu & Zhu's closed-form adaptation in the setting of the paper's comparison (``lambda = lambda_c
  = 0.2``, 30 dual-descent steps of 1.0, 1000 sampled episodes per step);
* ``safe_meta_rl_large_cost_kl``: the same with ``lambda_c = 1000``, the scale its safety theorem asks for;
* ``lb_sgd``: log-barrier SGD with the theory's smoothness constant;
* ``lb_sgd_tuned``: the same with smoothness ``M = 0.1``.

Results are written after every method, and a rerun resumes from them when everything that determines them is
unchanged: the configuration, the training settings (``O_s`` included), the method's settings and the source code
of the modules involved (a hash of it). Training and test
runs draw from independent seed streams.

The exact check counts violations; it does not presume them absent. With the practical constants the safe mixture
can execute slightly infeasible mixtures, and ``lb_sgd_tuned``'s smoothness ``M = 0.1`` is far below a valid
constant, so its safety is measured, not guaranteed (README, results).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

import cmdp_envs
from cmdp_envs.families.gridworld import PAPER_TEST_NOISE_LEVELS, GridWorldFamily
from cmdp_envs.io import write_json
from cmdp_envs import tabular
from cmdp_envs.families import gridworld as gridworld_family
from cmdp_envs.meta import covering as covering_module
from cmdp_envs.meta import evaluation, lb_sgd, policies, safe_adaptation, safe_mixture
from cmdp_envs.meta.covering import CoveringResult, train
from cmdp_envs.meta.evaluation import TestRun, plot_runs, summarise
from cmdp_envs.meta.oracles import DistanceCheck, ExactLPOracle, ExactSimultaneouslyFeasibleOracle
from cmdp_envs.meta.oracles import exact as exact_oracle
from cmdp_envs.meta.oracles import feasible as feasible_oracles
from cmdp_envs.tabular import TabularCMDP, solve_cmdp

__all__ = ["ReproductionConfig", "METHODS", "run", "format_table"]

#: ``pi_s`` must be xi-feasible here too; the largest feasible noise level is about 0.436.
REFERENCE_NOISE = 0.4
#: ``rho``: ``pi_s`` is ``(1 - rho) pi + rho uniform`` in every state.
EXPLORATION = 0.02


@dataclasses.dataclass(frozen=True)
class ReproductionConfig:
    """:param n_episodes: ``K`` per test task (the paper: 40,000).
    :param horizon: steps per test episode (the authors: 600; after 100 steps ``gamma^t < 3e-5``).
    :param delta, eps, xi: Algorithm 1's confidence, cover radius (in noise level) and ``pi_s``'s margin.
    :param seed: seeds training and, through it, every test run.
    """

    n_episodes: int = 40_000
    horizon: int = 100
    delta: float = 0.1
    eps: float = 0.01
    xi: float = 0.05
    seed: int = 0

    @classmethod
    def quick(cls, seed: int = 0) -> ReproductionConfig:
        return cls(n_episodes=5_000, seed=seed)


TestMethod = Callable[[TabularCMDP, CoveringResult, ReproductionConfig, np.random.SeedSequence], TestRun]


def _with_settings(method: TestMethod, settings: Any) -> TestMethod:
    """Attach the repr of everything that determines the method's results, for the resume check."""
    method.settings = repr(settings)  # type: ignore[attr-defined]
    return method


def _safe_mixture(constants: Any, mixture: bool = True) -> TestMethod:
    def method(cmdp: TabularCMDP, covering: CoveringResult, config: ReproductionConfig,
               seed: np.random.SeedSequence) -> TestRun:
        algorithm = safe_mixture.SafeMixture(covering.policy_values, cmdp.cost_limit, cmdp.gamma, config.n_episodes,
                                             constants, mixture=mixture)
        return safe_mixture.run_on_tabular(algorithm, covering, cmdp, config.horizon, seed=np.random.default_rng(seed))
    return _with_settings(method, (constants, mixture))


def _safe_meta_rl(**overrides: Any) -> TestMethod:
    adaptation = safe_adaptation.SafeAdaptationConfig(advantages="sampled", **overrides)

    def method(cmdp: TabularCMDP, covering: CoveringResult, config: ReproductionConfig,
               seed: np.random.SeedSequence) -> TestRun:
        adaptation_config = dataclasses.replace(adaptation, horizon=config.horizon)
        return safe_adaptation.run_on_tabular(cmdp, covering.safe_policy.probabilities, config.n_episodes,
                                              adaptation_config, seed=int(seed.generate_state(1)[0]))
    return _with_settings(method, adaptation)


def _lb_sgd(**overrides: Any) -> TestMethod:
    def method(cmdp: TabularCMDP, covering: CoveringResult, config: ReproductionConfig,
               seed: np.random.SeedSequence) -> TestRun:
        lb_config = lb_sgd.LBSGDConfig(horizon=config.horizon, **overrides)
        return lb_sgd.run_on_tabular(cmdp, covering.safe_policy.probabilities, config.n_episodes, lb_config,
                                     seed=np.random.default_rng(seed))
    return _with_settings(method, lb_sgd.LBSGDConfig(**overrides))


#: name -> (test method, a one-line description for summary.json)
METHODS: dict[str, tuple[TestMethod, str]] = {
    "safe_mixture": (_safe_mixture(safe_mixture.PracticalConstants()),
                     "Algorithm 2, practical constants of the authors' code"),
    "safe_mixture_paper_constants": (_safe_mixture(safe_mixture.PaperConstants(eps=0.01, delta=0.1,
                                                                                value_range=10.0)),
                                     "Algorithm 2, Eq. 5-7 (range 10)"),
    "unsafe_pce": (_safe_mixture(safe_mixture.PracticalConstants(), mixture=False),
                   "PCE testing phase (Algorithm 4): candidates run directly"),
    "safe_meta_rl": (_safe_meta_rl(), "Xu & Zhu, lambda = lambda_c = 0.2, 30 dual-descent steps"),
    "safe_meta_rl_large_cost_kl": (_safe_meta_rl(cost_kl=1000.0), "Xu & Zhu, lambda_c = 1000"),
    "lb_sgd": (_lb_sgd(), "log-barrier SGD, theory smoothness 8R/(1-gamma)^3"),
    "lb_sgd_tuned": (_lb_sgd(smoothness=0.1), "log-barrier SGD, smoothness M = 0.1 (not a valid bound)"),
}


def _code_fingerprint() -> str:
    """A hash of the source of every module the reproduction's numbers depend on."""
    modules = (tabular, gridworld_family, covering_module, evaluation, lb_sgd, policies, safe_adaptation,
               safe_mixture, exact_oracle, feasible_oracles)
    source = "".join(inspect.getsource(module) for module in modules)
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _train(family: GridWorldFamily, config: ReproductionConfig, out: Path) -> tuple[CoveringResult, dict[str, Any]]:
    """Algorithm 1, or its saved result when the saved one was trained with the same settings; and the settings."""
    feasible_oracle = ExactSimultaneouslyFeasibleOracle(family, reference_tasks=[family.task(noise=REFERENCE_NOISE)],
                                                        exploration=EXPLORATION)
    settings = {"delta": config.delta, "eps": config.eps, "xi": config.xi, "seed": config.seed,
                "feasible_oracle": {"iterations": feasible_oracle.iterations, "step_size": feasible_oracle.step_size,
                                    "reference_noise": REFERENCE_NOISE, "exploration": EXPLORATION},
                "version": cmdp_envs.__version__, "code": _code_fingerprint()}
    directory = out / "covering" / hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    if _load_json(directory / "settings.json") == settings:
        try:
            return CoveringResult.load(directory, family), settings
        except ValueError:
            pass  # an interrupted or corrupt save: train again
    covering = train(family, ExactLPOracle(family), DistanceCheck(family, parameter="noise"), feasible_oracle,
                     delta=config.delta, eps=config.eps, xi=config.xi, seed=config.seed)
    covering.save(directory)
    write_json(directory / "settings.json", settings)
    return covering, settings


def run(out: str | Path, config: ReproductionConfig, methods: list[str] | None = None) -> dict[str, Any]:
    """Train, run every method on the ten test tasks, write ``out/summary.json`` and the figures; return the
    summary. Finished methods found in ``out/methods/`` under the same configuration are reused."""
    out = Path(out)
    methods = list(METHODS) if methods is None else methods
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(METHODS)}")
    family = GridWorldFamily()
    started = time.perf_counter()
    covering, training_settings = _train(family, config, out)
    config_json = {**dataclasses.asdict(config), "test_noise_levels": list(PAPER_TEST_NOISE_LEVELS),
                   "reference_noise": REFERENCE_NOISE, "exploration": EXPLORATION, "training": training_settings}
    cmdps = [family.tabular(family.task(noise=noise)) for noise in PAPER_TEST_NOISE_LEVELS]
    optimal = [solve_cmdp(cmdp).reward_value for cmdp in cmdps]
    # Training draws from SeedSequence(seed); the test runs from a separate stream.
    test_seeds = np.random.SeedSequence([config.seed, 1]).spawn(len(cmdps))
    results: dict[str, Any] = {}
    with tqdm(total=len(methods) * len(cmdps), desc="test runs") as progress:
        for name in methods:
            path = out / "methods" / f"{name}.json"
            method, description = METHODS[name]
            saved = _load_json(path)
            if saved is not None and saved.get("config") == config_json and saved.get("settings") == method.settings:
                results[name] = saved["result"]
                progress.update(len(cmdps))
                continue
            method_started = time.perf_counter()
            runs = []
            for cmdp, seed in zip(cmdps, test_seeds):
                runs.append(method(cmdp, covering, config, seed))
                progress.update()
            result = {"description": description, "settings": method.settings,
                      **summarise(runs, optimal), "seconds": time.perf_counter() - method_started}
            write_json(path, {"config": config_json, "settings": method.settings, "result": result})
            results[name] = result
    summary = {
        "config": config_json,
        "training": {"n_samples": covering.n_samples, "cover_size": covering.cover_size,
                     "doublings": covering.doublings, "coverage_error": covering.coverage_error,
                     "cover_noise_levels": [entry.task.noise for entry in covering.policy_values]},
        "optimal_reward_values": optimal,
        "methods": results,
        "seconds": time.perf_counter() - started,
    }
    write_json(out / "summary.json", summary)
    cost_limit = cmdps[0].cost_limit
    figure2 = {name: results[name] for name in ("safe_mixture", "safe_meta_rl_large_cost_kl", "lb_sgd_tuned", "lb_sgd")
               if name in results}
    if figure2:
        plot_runs(figure2, cost_limit, out / "figure2.png", title=f"GridWorld, {len(cmdps)} test tasks (Figure 2 style)")
    plot_runs(results, cost_limit, out / "all_methods.png", title="GridWorld, every method")
    return summary


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def format_table(summary: dict[str, Any]) -> str:
    """The summary as a text table, one row per method; "safe" is the exact check over every executed policy."""
    rows = [f"{'method':<30}{'final regret (mean)':>20}{'violating policies':>20}{'max J_c':>9}  safe  "
            f"(d = 1.5, K = {summary['config']['n_episodes']}, {len(summary['optimal_reward_values'])} tasks)"]
    for name, result in summary["methods"].items():
        verdict = "yes" if result["violating_policies"] == 0 else "NO"
        rows.append(f"{name:<30}{result['final_regret_mean']:>20.1f}{result['violating_policies']:>20d}"
                    f"{result['max_cost_value']:>9.3f}  {verdict}")
    return "\n".join(rows)
