"""Ni & Kamgarpour (2026), Appendix H.2: covering + safe mixture with learned oracles on Gymnasium's Half-Cheetah and
Hopper, against the paper's baselines, on held-out tasks through the meta-test protocol (Figure 4).

The families are the paper's (``cmdp_envs/HalfCheetahNiKamgarpour-v0``: reward ``-|v_x - target|``, target
``~ N(1, 0.3)`` truncated to ``[0, 2]``, cost 1 while the head is above ``h0 = 0.9`` m, discounted limit 5;
``cmdp_envs/HopperNiKamgarpour-v0``: target ``~ N(0.5, 0.1)`` on ``[0, 1]``, cost the control effort, discounted
limit 50), with episodes of ``episode_steps`` steps.

Training, per method:

* ``safe_mixture``: Algorithm 1 with learned oracles: ``O_l`` is ``--oracle`` (our SB3 PPO-Lagrangian, or OmniSafe's
  PPOLag or CPO in lane B) trained on every member of the cover, in parallel through the executor; ``O_s`` is the
  same learner trained against the cover's worst task with the limit tightened by ``xi``
  (:class:`~cmdp_envs.meta.oracles.LearnedSimultaneouslyFeasibleOracle`); ``O_c`` compares target velocities,
  ``|target_1 - target_2| <= eps`` (the tasks differ in nothing else). Then Algorithm 2
  (:class:`~cmdp_envs.meta.safe_mixture.LearnedSafeMixture`) with the authors' practical constants carried to these
  value ranges and this budget (:meth:`~cmdp_envs.meta.safe_mixture.PracticalConstants.rescaled`);
* ``maml_penalty``: first-order MAML whose inner learner (SB3 PPO) maximises ``r - penalty c`` with a fixed
  penalty (:func:`~cmdp_envs.meta.cmaml.penalised_maml_config`), fine-tuned at test time by the same learner;
* ``safe_meta``: Xu & Zhu's meta-policy (:func:`~cmdp_envs.meta.safe_adaptation.xu_zhu_config`, first-order)
  adapted at test time by their safe adaptation step, one step per test iteration;
* ``cpo``: OmniSafe's CPO from its random initialisation (lane B); where OmniSafe is absent, our SB3
  TRPO-Lagrangian instead, named ``trpo_lagrangian``.

Meta-CPO (Cho & Sun, AAAI 2024, arXiv 2312.10230) is not here yet: it differentiates the meta-objective through
every task's CPO step, solved as a convex program by a differentiable convex-optimisation layer, and a version
without that layer would be another algorithm under its name.

Testing: every method runs ``test_iterations`` iterations of ``episodes_per_iteration`` episodes on each of the same
``n_test_tasks`` held-out tasks (a learner's update, or one adaptation step, per iteration; the safe mixture's
iterations are blocks of episodes), and every policy it executed is checked by Monte Carlo with ``n_check_episodes``
fresh episodes, intervals simultaneous over a run's policies at 95%. Learners that end episodes early (a fallen
Hopper) run more, shorter episodes in the same env steps.

Every stage (the cover, each meta-training, each method's test) is saved when it ends under the digest of the
configuration and the code; a rerun resumes and writes the same ``summary.json``. Wall times go to
``timings.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import inspect
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple

from tqdm.auto import tqdm

from cmdp_envs.io import write_json
from cmdp_envs.meta.cmaml import CMAML, CMAMLConfig, penalised_maml_config
from cmdp_envs.meta.covering import CoveringResult, train
from cmdp_envs.meta.executors import make_executor, spawn_seeds
from cmdp_envs.meta.inner_loops import OmniSafeInnerLoop, SB3InnerLoop
from cmdp_envs.meta.oracles import DistanceCheck, LearnedSimultaneouslyFeasibleOracle
from cmdp_envs.meta.reproduce import stages
from cmdp_envs.meta.reproduce.stages import (
    meta_train_stage,
    minibatch_size,
    plot_test_curves,
    protocol_summary,
    save_stage,
    saved_stage,
    saved_timings,
    sb3_inner_loop,
)
from cmdp_envs.meta.safe_adaptation.neural_meta_training import SafeAdaptationInnerLoop, xu_zhu_config
from cmdp_envs.meta.safe_adaptation.neural_step import NeuralAdaptationConfig
from cmdp_envs.meta.safe_mixture import LearnedSafeMixture, PracticalConstants
from cmdp_envs.meta.test_time import LearnerFineTuning, NeuralSafeAdaptation, meta_test
from cmdp_envs.task import TaskFamily, check_count
from cmdp_envs.validation import check_number

__all__ = ["ReproductionConfig", "RobotSetting", "ROBOT_SETTINGS", "ORACLES", "run", "format_table",
           "omnisafe_available"]


class RobotSetting(NamedTuple):
    """A robot's family and what its learners and the safe mixture's constants need to know of it."""

    env_id: str
    #: Per-step ranges of the reward and the cost that carry the safe mixture's constants over (our choices: the cost
    #: ranges are exact, an indicator and ``sum a_i^2`` of three actions in ``[-1, 1]``; the reward ranges bound
    #: ``|v_x - target|`` for the speeds these robots reach).
    reward_range: float
    cost_range: float
    #: The SB3 learners' initial log standard deviation of actions. Hopper's is the RL Zoo's (-2): under the
    #: control-effort cost, SB3's default (0, a standard deviation of 1) costs about twice the limit by noise alone,
    #: and 20,000-step oracle calls then ended near twice the limit (J_c 96.6 against 50).
    log_std_init: float


#: ``--robot``: the paper's family of each robot and its settings.
ROBOT_SETTINGS = {"halfcheetah": RobotSetting("cmdp_envs/HalfCheetahNiKamgarpour-v0", 5.0, 1.0, 0.0),
                  "hopper": RobotSetting("cmdp_envs/HopperNiKamgarpour-v0", 3.0, 3.0, -2.0)}
#: ``--oracle``: ``O_l``'s learner. SB3's runs in both lanes, OmniSafe's in lane B.
ORACLES = ("SB3-PPOLag", "PPOLag", "CPO")
#: The confidence of the Monte Carlo check's intervals, simultaneous over a run's executed policies.
CHECK_CONFIDENCE = 0.95


def omnisafe_available() -> bool:
    return importlib.util.find_spec("omnisafe") is not None


@dataclasses.dataclass(frozen=True)
class ReproductionConfig:
    """One run's settings (defaults: the full run).

    :param episode_steps: steps per episode (Gymnasium's robots run 1,000).
    :param oracle_steps: env steps of every ``O_l`` call (and of each ``O_s`` round).
    :param cover_delta, cover_eps, xi_share: Algorithm 1's ``delta``, ``eps`` (in target velocity) and ``xi`` as a
        share of the limit.
    :param penalty: MAML's fixed constraint penalty.
    :param outer_iterations, meta_batch, rollout_episodes: the meta-training of ``maml_penalty`` and ``safe_meta``
        (one adaptation step per task).
    """

    robot: str = "halfcheetah"
    oracle: str = "SB3-PPOLag"
    seed: int = 0
    episode_steps: int = 1000
    n_train_tasks: int = 20
    n_test_tasks: int = 20
    test_iterations: int = 10
    episodes_per_iteration: int = 4
    n_envs: int = 2
    oracle_steps: int = 200_000
    oracle_eval_episodes: int = 50
    cover_delta: float = 0.1
    cover_eps: float = 0.2
    xi_share: float = 0.05
    penalty: float = 1.0
    outer_iterations: int = 20
    meta_batch: int = 4
    rollout_episodes: int = 4
    n_check_episodes: int = 50
    executor: str = "local"

    def __post_init__(self) -> None:
        if self.robot not in ROBOT_SETTINGS:
            raise ValueError(f"robot must be one of {sorted(ROBOT_SETTINGS)}, got {self.robot!r}")
        if self.oracle not in ORACLES:
            raise ValueError(f"oracle must be one of {list(ORACLES)}, got {self.oracle!r}")
        for name in ("episode_steps", "n_train_tasks", "n_test_tasks", "test_iterations", "episodes_per_iteration",
                     "n_envs", "oracle_steps", "outer_iterations", "meta_batch", "rollout_episodes"):
            check_count(name, getattr(self, name), minimum=1)
        check_count("oracle_eval_episodes", self.oracle_eval_episodes, minimum=2)
        check_count("n_check_episodes", self.n_check_episodes, minimum=2)
        check_count("seed", self.seed)
        check_number("cover_delta", self.cover_delta, 0.0, 1.0, low_open=True, high_open=True)
        check_number("cover_eps", self.cover_eps, 0.0, low_open=True)
        check_number("xi_share", self.xi_share, 0.0, 1.0, high_open=True)
        check_number("penalty", self.penalty, 0.0)
        if self.meta_batch > self.n_train_tasks:
            raise ValueError(f"meta_batch = {self.meta_batch} exceeds n_train_tasks = {self.n_train_tasks}")
        if self.episodes_per_iteration * self.episode_steps % self.n_envs:
            raise ValueError(f"an iteration's {self.episodes_per_iteration} x {self.episode_steps} steps must split "
                             f"evenly over n_envs = {self.n_envs}")

    @classmethod
    def quick(cls, **overrides: Any) -> ReproductionConfig:
        """Minutes on 2 cores: 200-step episodes, the 20 held-out tasks, 5 test iterations of 2 episodes, 20,000-step
        oracle calls, 4 meta-training iterations of 2 tasks, 20 checking episodes per executed policy."""
        settings = {"episode_steps": 200, "n_train_tasks": 6, "n_test_tasks": 20, "test_iterations": 5,
                    "episodes_per_iteration": 2, "oracle_steps": 20_000, "oracle_eval_episodes": 20,
                    "outer_iterations": 4, "meta_batch": 2, "rollout_episodes": 2, "n_check_episodes": 20,
                    **overrides}
        return cls(**settings)

    @property
    def env_kwargs(self) -> dict[str, Any]:
        return {"max_episode_steps": self.episode_steps}

    @property
    def iteration_steps(self) -> int:
        return self.episodes_per_iteration * self.episode_steps

    def digest(self) -> str:
        """A hash of these settings and of the source the results depend on; saved stages are reused only when both
        are unchanged (the executor does not change results, so it does not count)."""
        from cmdp_envs.families import locomotion
        from cmdp_envs.meta import cmaml, covering, inner_loops, safe_mixture, sb3_lagrangian, test_time
        from cmdp_envs.meta.oracles import feasible, learned
        from cmdp_envs.meta.safe_adaptation import neural_meta_training, neural_step

        modules = (locomotion, cmaml, covering, inner_loops, safe_mixture, sb3_lagrangian, test_time, feasible,
                   learned, neural_meta_training, neural_step, stages, sys.modules[__name__])
        settings = {key: value for key, value in dataclasses.asdict(self).items() if key != "executor"}
        text = json.dumps(settings, sort_keys=True) + "".join(inspect.getsource(module) for module in modules)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _family(config: ReproductionConfig) -> TaskFamily:
    import gymnasium as gym

    return gym.make(ROBOT_SETTINGS[config.robot].env_id).unwrapped.family


def _learner_inner(config: ReproductionConfig, family: TaskFamily, algo: str = "PPO") -> SB3InnerLoop:
    """SB3's PPO or TRPO with one iteration's episodes per update."""
    return sb3_inner_loop(family, algo, config.n_envs, config.iteration_steps, config.env_kwargs,
                          **_policy_kwargs(config))


def _policy_kwargs(config: ReproductionConfig) -> dict[str, Any]:
    """The SB3 learners' policy settings for the robot (none where SB3's defaults serve)."""
    log_std_init = ROBOT_SETTINGS[config.robot].log_std_init
    return {"policy_kwargs": {"log_std_init": log_std_init}} if log_std_init else {}


def _adaptation_config(config: ReproductionConfig) -> NeuralAdaptationConfig:
    """Xu & Zhu's step from one iteration's episodes; a smaller dual step than the gridworld's 1.0, since these
    costs are sums over hundreds of steps."""
    return NeuralAdaptationConfig(n_episodes=config.episodes_per_iteration, dual_step=0.1)


def _oracle(config: ReproductionConfig, family: TaskFamily) -> Any:
    """``O_l``, the ``--oracle`` learner; ``O_s`` trains it too."""
    if config.oracle == "SB3-PPOLag":
        from cmdp_envs.meta.oracles.sb3_learners import SB3LagrangianOracle

        return SB3LagrangianOracle(family, "PPO", total_timesteps=config.oracle_steps, multiplier_lr=0.2,
                                   n_envs=config.n_envs, env_kwargs=config.env_kwargs,
                                   n_eval_episodes=config.oracle_eval_episodes,
                                   n_steps=config.iteration_steps // config.n_envs,
                                   batch_size=minibatch_size(config.iteration_steps), **_policy_kwargs(config))
    from cmdp_envs.meta.oracles.omnisafe_learners import OmniSafeOracle

    return OmniSafeOracle(family, config.oracle, total_steps=config.oracle_steps,
                          steps_per_epoch=config.iteration_steps, env_kwargs=config.env_kwargs,
                          n_eval_episodes=config.oracle_eval_episodes)


def _cover(out: Path, config: ReproductionConfig, family: TaskFamily, limit: float, digest: str, executor: Any,
           timings: dict[str, float]) -> CoveringResult:
    """Algorithm 1 with learned oracles for the family's one cost limit ``limit``, or the cover an earlier run
    saved."""
    directory = out / "covering" / digest
    marker = out / "covering" / f"{digest}.json"
    if saved_stage(marker, digest) is not None:
        try:
            return CoveringResult.load(directory, family)
        except ValueError as error:
            warnings.warn(f"{error}; training again", stacklevel=2)
    started = time.perf_counter()
    learner = _oracle(config, family)
    # A Lagrangian learner ends near the limit it trains under; O_s trains under a quarter of the limit, so that
    # its answer passes the xi check despite the noise of its Monte Carlo values (in the quick Half-Cheetah run,
    # under d - xi every round failed, worst margins -0.25 to -1.2 against xi = 0.5; under d / 2 and d / 4 the best
    # worst margins were 0.34 and 0.44, hence also xi = d / 20).
    feasible_oracle = LearnedSimultaneouslyFeasibleOracle(learner, max_rounds=5, training_margin=0.75 * limit,
                                                          n_episodes=config.oracle_eval_episodes,
                                                          horizon=config.episode_steps)
    covering = train(family, learner, DistanceCheck(family, parameter="target_velocity"), feasible_oracle,
                     delta=config.cover_delta, eps=config.cover_eps, xi=config.xi_share * limit,
                     seed=config.seed, executor=executor)
    covering.save(directory)
    save_stage(marker, digest, {"cover_size": covering.cover_size})
    timings["covering"] = time.perf_counter() - started
    return covering


def method_names() -> tuple[str, ...]:
    """The methods of a run here: ``cpo`` where OmniSafe is installed, else ``trpo_lagrangian``."""
    return ("safe_mixture", "maml_penalty", "safe_meta", "cpo" if omnisafe_available() else "trpo_lagrangian")


def _run_methods(out: Path, config: ReproductionConfig, family: TaskFamily, train_tasks: list, test_tasks: list,
                 executor: Any, timings: dict[str, float]) -> dict[str, Any]:
    digest = config.digest()
    meta_seed, test_seed = spawn_seeds(config.seed, 2)
    learner_budget = config.test_iterations * config.iteration_steps  # episodes, at most one per step
    results: dict[str, Any] = {}
    for name in method_names():
        path = out / "methods" / f"{name}-{digest}.json"
        saved = saved_stage(path, digest)
        if saved is not None:
            results[name] = saved
            continue
        started = time.perf_counter()
        extra: dict[str, Any] = {}
        episodes_per_iteration = None
        budget = learner_budget
        if name == "safe_mixture":
            covering = _cover(out, config, family, test_tasks[0].cost_limit, digest, executor, timings)
            robot = ROBOT_SETTINGS[config.robot]
            reward_range, cost_range = robot.reward_range, robot.cost_range
            horizon_value = (1 - family.gamma**config.episode_steps) / (1 - family.gamma)
            budget = config.test_iterations * config.episodes_per_iteration
            constants = PracticalConstants.rescaled(reward_range * horizon_value, cost_range * horizon_value, budget)
            method: Any = LearnedSafeMixture(name, covering, constants, env_kwargs=config.env_kwargs)
            episodes_per_iteration = config.episodes_per_iteration
            extra = {"constants": dataclasses.asdict(constants),
                     "training": {"n_samples": covering.n_samples, "cover_size": covering.cover_size,
                                  "doublings": covering.doublings, "coverage_error": covering.coverage_error,
                                  "cover": [{"target_velocity": entry.task.target_velocity, "u": entry.reward_value,
                                             "v": entry.margin, "u_s": entry.safe_reward_value,
                                             "v_s": entry.safe_margin} for entry in covering.policy_values]}}
        elif name == "maml_penalty":
            inner = _learner_inner(config, family)
            meta_config = penalised_maml_config(CMAMLConfig(meta_batch=config.meta_batch, adaptation_steps=1,
                                                            rollout_episodes=config.rollout_episodes), config.penalty)
            theta, history = meta_train_stage(out, name, CMAML(family, train_tasks, inner, meta_config, meta_seed,
                                                               executor), config.outer_iterations, digest, timings)
            method = LearnerFineTuning(name, inner, theta, config.test_iterations, multiplier=config.penalty,
                                       multiplier_lr=0.0)
            extra = {"meta_training": history}
        elif name == "safe_meta":
            inner = _learner_inner(config, family)
            adaptation = _adaptation_config(config)
            meta_config = xu_zhu_config(CMAMLConfig(meta_batch=config.meta_batch,
                                                    rollout_episodes=config.rollout_episodes))
            meta_learner = CMAML(family, train_tasks, SafeAdaptationInnerLoop(inner, adaptation), meta_config,
                                 meta_seed, executor)
            theta, history = meta_train_stage(out, name, meta_learner, config.outer_iterations, digest, timings)
            method = NeuralSafeAdaptation(name, inner, theta, config.test_iterations, adaptation)
            extra = {"meta_training": history}
        elif name == "cpo":
            inner = OmniSafeInnerLoop(family, "CPO", steps_per_epoch=config.iteration_steps,
                                      env_kwargs=config.env_kwargs)
            method = LearnerFineTuning(name, inner, None, config.test_iterations)
        else:
            method = LearnerFineTuning(name, _learner_inner(config, family, "TRPO"), None, config.test_iterations)
        tested = meta_test(method, family, tqdm(test_tasks, desc=f"testing {name}"), budget=budget, seed=test_seed,
                           n_check_episodes=config.n_check_episodes, confidence=CHECK_CONFIDENCE)
        results[name] = {**protocol_summary(tested, episodes_per_iteration), **extra}
        save_stage(path, digest, results[name])
        timings[name] = time.perf_counter() - started
    return results


def run(out: str | Path, config: ReproductionConfig) -> dict[str, Any]:
    """Train and test every method; write ``out/summary.json``, ``out/figure4.png`` and ``out/timings.json``; return
    the summary."""
    out = Path(out)
    family = _family(config)
    tasks = family.sample(config.n_train_tasks + config.n_test_tasks, seed=config.seed)
    train_tasks, test_tasks = tasks[: config.n_train_tasks], tasks[config.n_train_tasks:]
    cost_limit = test_tasks[0].cost_limit
    timings_path = out / "timings.json"
    timings = saved_timings(timings_path)
    with make_executor(config.executor, **({"max_workers": 2} if config.executor == "local" else {})) as executor:
        results = _run_methods(out, config, family, train_tasks, test_tasks, executor, timings)
    summary = {
        "config": dataclasses.asdict(config),
        "family": repr(family),
        "cost_limit": cost_limit,
        "cost_semantics": family.cost_semantics,
        "check_confidence": CHECK_CONFIDENCE,
        "held_out_tasks": [task.as_dict() for task in test_tasks],
        "methods": results,
    }
    plot_test_curves(results, cost_limit, family.cost_semantics, out / "figure4.png", "test iteration",
                     f"{config.robot}: held-out tasks, return and cost per test iteration (mean, 10-90% band)")
    write_json(out / "summary.json", summary)
    write_json(timings_path, timings)
    return summary


def format_table(summary: dict[str, Any]) -> str:
    """One row per method: the first and last iteration's mean return and cost (observed in the episodes run, mean
    over tasks), the largest checked cost of any executed policy, and how many executed policies were verified
    within the limit or found above it (Monte Carlo, simultaneous per task run)."""
    limit, semantics = summary["cost_limit"], summary["cost_semantics"]

    def number(value: float | None, digits: int) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    rows = [f"{'method':<17}{'return first':>13}{'last':>9}{'cost first':>11}{'last':>8}{'max checked':>12}"
            f"{'verified':>13}{'infeasible':>11}  (limit {limit:g}, {semantics})"]
    for name, result in summary["methods"].items():
        observed = result["observed"]
        executed = [policy for task in result["per_task"] for policy in task["executed"]]
        verified = sum(policy["verified"] for policy in executed)
        rows.append(f"{name:<17}{number(observed['return']['mean'][0], 2):>13}"
                    f"{number(observed['return']['mean'][-1], 2):>9}{number(observed['cost']['mean'][0], 3):>11}"
                    f"{number(observed['cost']['mean'][-1], 3):>8}"
                    f"{number(max(policy['cost'] for policy in executed), 3):>12}"
                    f"{f'{verified} / {len(executed)}':>13}{result['infeasible_policies']:>11d}")
    return "\n".join(rows)
