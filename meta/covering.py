"""The training phase of covering + safe mixture (Ni & Kamgarpour 2026, Algorithm 1 with Subroutine 3).

Sample ``N = ln(delta)^2 / delta^2`` tasks; cover them greedily with ``eps``-balls of the check oracle ``O_c``
(Subroutine 3, in the form of SPECS.md: repeatedly add the task whose ball covers the most still-uncovered tasks,
until at most ``3 delta N`` are uncovered); if the coverage error ``sqrt(|U| ln(2N/delta) / (N - |U|))`` exceeds
``delta``, double ``N`` and start again. Otherwise call the learner oracle ``O_l`` on every member of the cover ``U``
(independent calls, through an executor) and the simultaneously feasible oracle ``O_s`` on ``U``, and return the
policy-value set ``Û = {(pi_i, u_i, v_i, u_i_s, v_i_s)}``: ``u`` reward values and ``v`` safety margins
``d - J_c`` of ``pi_i`` and of ``pi_s`` on task ``M_i``.

With ``calibrate=True`` each element also carries its calibrated value errors (:class:`ValueErrors`): the largest
change of ``pi_i``'s and ``pi_s``'s values between ``M_i`` and the sampled tasks in ``M_i``'s ball (exact on tabular
families, Monte Carlo with its confidence elsewhere), which the certified setting of Algorithm 2 uses instead of the
theory's ``eps L``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from cmdp_envs.io import UnreadableFileError, check_json_fields, read_json, write_json
from cmdp_envs.meta.executors import Executor, SerialExecutor, call_oracle_on_tasks
from cmdp_envs.meta.oracles.feasible import DistanceCheck
from cmdp_envs.meta.policies import MLPPolicy, TabularPolicy
from cmdp_envs.task import TabularFamily, Task, TaskFamily, check_count

__all__ = ["ValueErrors", "PolicyValue", "CoveringResult", "calibrate_value_errors", "greedy_cover",
           "initial_sample_size", "coverage_error", "train"]


@dataclasses.dataclass(frozen=True, eq=False)
class ValueErrors:
    """What the training phase measured about how a cover member's values move across tasks (exact values):

    * ``reward``, ``margin``, ``safe_reward``, ``safe_margin``: the largest ``|J(M) - J(M_i)|`` over the
      ``n_tasks`` sampled tasks ``M`` that ``O_c`` puts within ``eps`` of ``M_i`` (``M_i`` included), for the
      reward value and the margin of ``pi_i`` and of ``pi_s``;
    * ``across_tasks``: one row per task of a uniform sample of the whole task distribution, with ``pi_s``'s reward
      value and margin and ``pi_i``'s reward value and margin there (columns in that order, shape ``(n, 4)``), so
      that a test phase can bound ``pi_i``'s margin over every task whose ``pi_s`` values match what it observes;
      ``half_widths`` the confidence half-widths of those values (zeros when exact).

    Estimated (Monte Carlo) values make every ball error an upper confidence bound: the change plus the estimate's
    half-width.

    Margins are ``d - J_c`` of each task, so a family whose cost limit varies moves them too.
    """

    reward: float
    margin: float
    safe_reward: float
    safe_margin: float
    n_tasks: int
    across_tasks: np.ndarray
    half_widths: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("reward", "margin", "safe_reward", "safe_margin"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"value error {name!r} must be a finite number >= 0, got {value!r}")
        check_count("n_tasks", self.n_tasks, minimum=1)
        table = np.asarray(self.across_tasks, dtype=np.float64)
        if table.ndim != 2 or table.shape[1] != 4 or len(table) == 0 or not np.all(np.isfinite(table)):
            raise ValueError(f"across_tasks must be a non-empty (n, 4) table of finite numbers, got shape "
                             f"{table.shape}")
        widths = np.zeros_like(table) if self.half_widths is None else np.asarray(self.half_widths, dtype=np.float64)
        if widths.shape != table.shape or not np.all(np.isfinite(widths) & (widths >= 0)):
            raise ValueError(f"half_widths must be finite numbers >= 0 in the shape of across_tasks {table.shape}, "
                             f"got shape {widths.shape}")
        object.__setattr__(self, "across_tasks", table)
        object.__setattr__(self, "half_widths", widths)

    def as_dict(self) -> dict[str, Any]:
        return {"reward": self.reward, "margin": self.margin, "safe_reward": self.safe_reward,
                "safe_margin": self.safe_margin, "n_tasks": self.n_tasks, "across_tasks": self.across_tasks.tolist(),
                "half_widths": self.half_widths.tolist()}


@dataclasses.dataclass(frozen=True)
class PolicyValue:
    """One element of ``Û``: task ``M_i``, its policy ``pi_i``, ``u_i = J_r(pi_i)``, ``v_i = d_i - J_c(pi_i)``, and
    ``u_i_s``, ``v_i_s``, the same for ``pi_s`` on ``M_i``; ``value_errors`` when the training phase calibrated
    them (:func:`calibrate_value_errors`)."""

    task: Task
    policy: Any
    reward_value: float
    margin: float
    safe_reward_value: float
    safe_margin: float
    value_errors: ValueErrors | None = None


@dataclasses.dataclass(frozen=True)
class CoveringResult:
    """What Algorithm 1 returns, with the numbers that describe the run."""

    policy_values: tuple[PolicyValue, ...]
    safe_policy: Any
    n_samples: int
    doublings: int
    coverage_error: float
    config: dict[str, Any]

    @property
    def cover_size(self) -> int:
        return len(self.policy_values)

    def save(self, directory: str | os.PathLike) -> Path:
        """``directory/covering.json`` (tasks, values, run numbers) and one ``.npz`` per policy; loads without
        unpickling (:meth:`load`)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.safe_policy.save(directory / "pi_s.npz")
        entries = []
        for index, entry in enumerate(self.policy_values):
            entry.policy.save(directory / f"pi_{index}.npz")
            entries.append({"task": entry.task.as_dict(), "policy": f"pi_{index}.npz",
                            "kind": type(entry.policy).__name__, "reward_value": entry.reward_value,
                            "margin": entry.margin, "safe_reward_value": entry.safe_reward_value,
                            "safe_margin": entry.safe_margin,
                            **({} if entry.value_errors is None
                               else {"value_errors": entry.value_errors.as_dict()})})
        write_json(directory / "covering.json", {
            "n_samples": self.n_samples, "doublings": self.doublings, "coverage_error": self.coverage_error,
            "cover_size": self.cover_size, "config": self.config,
            "safe_policy": {"policy": "pi_s.npz", "kind": type(self.safe_policy).__name__},
            "policy_values": entries,
        })
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, family: TaskFamily) -> CoveringResult:
        """Read a result written by :meth:`save`; tasks are rebuilt (and validated) through ``family``.

        For a tabular family each policy must have the ``(S, A)`` of its task (``pi_s``: of the cover's first task).
        Policies and values come back exactly as saved.

        :raises UnreadableFileError: (a ``ValueError``) naming the missing or bad file (``covering.json``,
            ``pi_3.npz``, ...) and what is wrong with it.
        """
        directory = Path(directory)
        index = directory / "covering.json"
        data = _read_index(index)
        entries = tuple(_policy_value(index, f"policy_values[{i}]", entry, family)
                        for i, entry in enumerate(data["policy_values"]))
        shape = _tabular_shape(family, entries[0].task) if entries else None
        safe_policy = _load_policy(index, "safe_policy", data["safe_policy"], shape, family)
        return cls(policy_values=entries, safe_policy=safe_policy,
                   n_samples=data["n_samples"], doublings=data["doublings"],
                   coverage_error=float(data["coverage_error"]), config=data["config"])


_NUMBER = (int, float)
#: The fields of covering.json, of its policy_values entries and of its safe_policy entry, with their JSON types.
_INDEX_FIELDS: dict[str, type | tuple[type, ...]] = {
    "n_samples": int, "doublings": int, "coverage_error": _NUMBER, "cover_size": int, "config": dict,
    "safe_policy": dict, "policy_values": list,
}
_POLICY_FIELDS: dict[str, type | tuple[type, ...]] = {"policy": str, "kind": str}
_ENTRY_FIELDS: dict[str, type | tuple[type, ...]] = {
    "task": dict, **_POLICY_FIELDS, "reward_value": _NUMBER, "margin": _NUMBER, "safe_reward_value": _NUMBER,
    "safe_margin": _NUMBER,
}
_VALUE_ERROR_FIELDS: dict[str, type | tuple[type, ...]] = {
    "reward": _NUMBER, "margin": _NUMBER, "safe_reward": _NUMBER, "safe_margin": _NUMBER, "n_tasks": int,
    "across_tasks": list, "half_widths": list,
}
_POLICY_KINDS = {"TabularPolicy": TabularPolicy, "MLPPolicy": MLPPolicy}


def _read_index(index: Path) -> dict[str, Any]:
    """covering.json, checked at the top level."""
    try:
        data = read_json(index)
    except OSError as error:  # a missing file is a bad save here, a ValueError like the others
        raise UnreadableFileError(index, f"cannot be read ({error.strerror or error})") from error
    data = check_json_fields(index, "the top level", data, _INDEX_FIELDS)
    if data["n_samples"] < 1 or data["doublings"] < 0 or not (math.isfinite(data["coverage_error"])
                                                              and data["coverage_error"] >= 0):
        raise UnreadableFileError(index, f"n_samples = {data['n_samples']}, doublings = {data['doublings']} and "
                                         f"coverage_error = {data['coverage_error']} must be >= 1, >= 0 and a finite "
                                         "number >= 0")
    if data["cover_size"] != len(data["policy_values"]):
        raise UnreadableFileError(index, f"cover_size is {data['cover_size']} but policy_values has "
                                         f"{len(data['policy_values'])} entries")
    return data


def _policy_value(index: Path, where: str, entry: Any, family: TaskFamily) -> PolicyValue:
    """One entry of covering.json's policy_values, with its task and its policy."""
    entry = check_json_fields(index, where, entry, _ENTRY_FIELDS)
    for key in ("reward_value", "margin", "safe_reward_value", "safe_margin"):
        if not math.isfinite(entry[key]):
            raise UnreadableFileError(index, f"{where}: {key!r} must be a finite number, got {entry[key]!r}")
    try:
        task = family.task(**entry["task"])
    except ValueError as error:
        raise UnreadableFileError(index, f"{where}: task {entry['task']} is not a task of this family: "
                                         f"{error}") from error
    return PolicyValue(task=task, policy=_load_policy(index, where, entry, _tabular_shape(family, task), family),
                       reward_value=float(entry["reward_value"]), margin=float(entry["margin"]),
                       safe_reward_value=float(entry["safe_reward_value"]), safe_margin=float(entry["safe_margin"]),
                       value_errors=_value_errors(index, where, entry.get("value_errors")))


def _value_errors(index: Path, where: str, saved: Any) -> ValueErrors | None:
    """An entry's ``value_errors`` (absent: ``None``)."""
    if saved is None:
        return None
    saved = check_json_fields(index, f"{where}.value_errors", saved, _VALUE_ERROR_FIELDS)
    try:
        return ValueErrors(**{key: saved[key] for key in _VALUE_ERROR_FIELDS})  # type: ignore[arg-type]
    except ValueError as error:
        raise UnreadableFileError(index, f"{where}.value_errors: {error}") from error


def _checked_network(path: Path, policy: MLPPolicy, family: TaskFamily) -> MLPPolicy:
    """``policy`` if its input and output sizes are those of the family's env, else ``UnreadableFileError``."""
    env = family.make_env()
    observations = gym.spaces.flatdim(env.observation_space)
    actions = int(env.action_space.n) if isinstance(env.action_space, gym.spaces.Discrete) else gym.spaces.flatdim(
        env.action_space)
    env.close()
    outputs = policy.weights[-1].shape[0]
    if policy.observation_size != observations or outputs != actions:
        raise UnreadableFileError(path, f"the network takes {policy.observation_size} inputs and gives {outputs} "
                                        f"outputs; this family's env has {observations} observation entries and "
                                        f"{actions} actions")
    return policy


def _tabular_shape(family: TaskFamily, task: Task) -> tuple[int, int] | None:
    """``(S, A)`` of ``task`` for a tabular family, else None (no shape to check)."""
    if not isinstance(family, TabularFamily):
        return None
    cmdp = family.tabular(task)
    return cmdp.n_states, cmdp.n_actions


def _load_policy(index: Path, where: str, entry: Any, shape: tuple[int, int] | None,
                 family: TaskFamily) -> TabularPolicy | MLPPolicy:
    """The policy file an entry of covering.json names; a TabularPolicy must have ``shape`` (None: any), a network
    the input and output sizes of the family's env."""
    entry = check_json_fields(index, where, entry, _POLICY_FIELDS)
    name, kind = entry["policy"], entry["kind"]
    if kind not in _POLICY_KINDS:
        raise UnreadableFileError(index, f"{where}: kind {kind!r} is not one of {sorted(_POLICY_KINDS)}")
    if Path(name).name != name or name in ("", ".", ".."):
        raise UnreadableFileError(index, f"{where}: policy {name!r} must name a file in the same directory")
    path = index.parent / name
    try:
        if kind == "TabularPolicy":
            return TabularPolicy.load(path, shape=shape)
        return _checked_network(path, MLPPolicy.load(path), family)
    except OSError as error:
        raise UnreadableFileError(path, f"cannot be read ({error.strerror or error}); {index.name} names it in "
                                        f"{where}") from error


def initial_sample_size(delta: float) -> int:
    """``N = ln(delta)^2 / delta^2``, rounded up."""
    if not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    return math.ceil(math.log(delta) ** 2 / delta**2)


def coverage_error(cover_size: int, n_samples: int, delta: float) -> float:
    """``sqrt(|U| ln(2N / delta) / (N - |U|))``: the bound on the error of the cover's estimated coverage."""
    if cover_size >= n_samples:
        return math.inf
    return math.sqrt(cover_size * math.log(2 * n_samples / delta) / (n_samples - cover_size))


def greedy_cover(tasks: Sequence[Task], check: Callable[[Task, Task, float], bool], eps: float,
                 max_uncovered: float) -> list[int]:
    """Subroutine 3: indices of a cover ``U``. ``A[i, j] = O_c(M_i, M_j, eps)``; add the index whose ball covers the
    most still-uncovered tasks (ties: the lowest index) until at most ``max_uncovered`` remain uncovered.

    A :class:`DistanceCheck` on one task parameter has interval balls, covered in ``O(N)`` memory by
    :func:`_greedy_interval_cover`; another check with a ``matrix`` method builds ``A`` with it, and any other check
    is called on every pair.
    """
    if isinstance(check, DistanceCheck) and check.parameter is not None:
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        values = np.array([float(getattr(task, check.parameter)) for task in tasks])
        return _greedy_interval_cover(values, eps, max_uncovered)
    n = len(tasks)
    if hasattr(check, "matrix"):
        covers = check.matrix(tasks, eps)
    else:
        covers = np.array([[check(tasks[i], tasks[j], eps) for j in range(n)] for i in range(n)], dtype=bool)
    uncovered = np.ones(n, dtype=bool)
    cover: list[int] = []
    while uncovered.sum() > max_uncovered:
        gains = (covers & uncovered).sum(axis=1)
        best = int(np.argmax(gains))
        if gains[best] == 0:  # only possible if O_c(M, M, eps) is false: the check is not reflexive
            raise ValueError("the check oracle does not cover a task with its own ball (O_c(M, M, eps) is false)")
        cover.append(best)
        uncovered &= ~covers[best]
    return cover


def _greedy_interval_cover(values: np.ndarray, eps: float, max_uncovered: float) -> list[int]:
    """:func:`greedy_cover` for ``O_c(M_i, M_j, eps) = |v_i - v_j| <= eps``, without the ``N x N`` matrix.

    In sorted order the ball of task ``i`` is a range of positions ``[low_i, high_i)``, and a task's gain is the
    number of uncovered positions in its range, a difference of prefix sums. The ranges are found by bisection on
    the very float comparison ``|v_i - v_j| <= eps`` the matrix makes (``v_i - v_j`` rounds monotonically in
    ``v_j``), and gains are indexed by task, so the cover, its order and its ties are the matrix version's.
    """
    n = len(values)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]

    def first_position(holds_at: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Per task, the first sorted position ``j`` where ``holds_at(j)`` is true (false before it, true after),
        ``n`` if none: one bisection step for every task at once."""
        low, high = np.zeros(n, dtype=np.intp), np.full(n, n, dtype=np.intp)
        while np.any(searching := low < high):
            middle = (low + high) // 2
            holds = holds_at(np.minimum(middle, n - 1))
            high = np.where(searching & holds, middle, high)
            low = np.where(searching & ~holds, middle + 1, low)
        return low

    low = first_position(lambda j: values - sorted_values[j] <= eps)
    high = first_position(lambda j: values - sorted_values[j] < -eps)
    uncovered = np.ones(n, dtype=bool)  # by sorted position
    cover: list[int] = []
    while uncovered.sum() > max_uncovered:
        prefix = np.concatenate(([0], np.cumsum(uncovered)))
        best = int(np.argmax(prefix[high] - prefix[low]))
        cover.append(best)
        uncovered[low[best]:high[best]] = False
    return cover


def calibrate_value_errors(family: TaskFamily, policy_values: Sequence[PolicyValue], safe_policy: Any,
                           tasks: Sequence[Task], check: Callable[[Task, Task, float], bool], eps: float,
                           max_ball_tasks: int = 128, max_tasks: int = 512, n_episodes: int = 100,
                           horizon: int = 200, confidence: float = 0.95, seed: int = 0) -> tuple[PolicyValue, ...]:
    """``policy_values`` with their :class:`ValueErrors`, from the values of ``pi_i`` and ``pi_s`` on sampled
    ``tasks``:

    * the ball errors of member ``M_i``: the largest change of the reward value and margin of ``pi_i`` and of
      ``pi_s`` from their values in ``Û``, over ``M_i`` and the first ``max_ball_tasks`` tasks with
      ``O_c(M_i, M, eps)``;
    * the table across tasks: both policies' values on the first ``max_tasks`` tasks.

    Values are exact for tabular policies of a tabular family, else Monte Carlo estimates
    (:func:`~cmdp_envs.meta.oracles.protocol.evaluate`: ``n_episodes`` rollouts of at most ``horizon`` steps, normal
    intervals at ``confidence``, each value on its own); then every ball error is the largest ``|change| +
    half-width`` and the table keeps the half-widths. Any i.i.d. sample of the family serves as ``tasks`` (the
    training phase passes its own), and "the first" of them are a uniform subset; by exchangeability, a new task from
    the same distribution in the same ball exceeds the largest change of ``n`` ball tasks with probability at most
    ``1 / (n + 1)``.
    """
    from cmdp_envs.meta.oracles.protocol import evaluate
    from cmdp_envs.tabular import evaluate_policy

    check_count("max_ball_tasks", max_ball_tasks, minimum=1)
    check_count("max_tasks", max_tasks, minimum=1)
    policies = [safe_policy, *(entry.policy for entry in policy_values)]
    exact = isinstance(family, TabularFamily) and all(isinstance(policy, TabularPolicy) for policy in policies)
    env = None if exact else family.make_env()

    def values(task: Task, chosen: Sequence[int]) -> np.ndarray:
        """``(len(chosen), 4)``: reward value, margin and their half-widths of each chosen policy on ``task``."""
        if exact:
            cmdp = family.tabular(task)
            rewards, costs = evaluate_policy(cmdp, np.stack([policies[i].probabilities for i in chosen]))
            return np.stack([rewards, cmdp.cost_limit - costs, 0 * rewards, 0 * rewards], axis=1)
        rows = []
        for i in chosen:
            reward, cost = evaluate(family, task, policies[i], env, n_episodes=n_episodes, horizon=horizon,
                                    confidence=confidence, seed=seed)
            rows.append((reward.value, task.cost_limit - cost.value, reward.half_width, cost.half_width))
        return np.array(rows)

    try:
        # Every policy on each task of the table: (n, 1 + cover size, 4).
        table = np.stack([values(task, range(len(policies))) for task in tasks[:max_tasks]])
        calibrated = []
        for index, entry in enumerate(policy_values, start=1):
            inside = (task for task in tasks if check(entry.task, task, eps))
            ball = np.stack([values(task, (index, 0))
                             for task in (entry.task, *itertools.islice(inside, max_ball_tasks))])
            predicted = np.array([[entry.reward_value, entry.margin], [entry.safe_reward_value, entry.safe_margin]])
            (reward, margin), (safe_reward, safe_margin) = (np.abs(ball[..., :2] - predicted)
                                                            + ball[..., 2:]).max(axis=0)
            rows = np.concatenate([table[:, 0], table[:, index]], axis=1)  # pi_s's four columns, then pi_i's
            calibrated.append(dataclasses.replace(entry, value_errors=ValueErrors(
                float(reward), float(margin), float(safe_reward), float(safe_margin), n_tasks=len(ball),
                across_tasks=rows[:, [0, 1, 4, 5]], half_widths=rows[:, [2, 3, 6, 7]])))
    finally:
        if env is not None:
            env.close()
    return tuple(calibrated)


def train(
    family: TaskFamily,
    learner: Callable[..., Any],
    check: Callable[[Task, Task, float], bool],
    feasible_oracle: Callable[[Sequence[Task], float], Any],
    *,
    delta: float,
    eps: float,
    xi: float,
    seed: int = 0,
    executor: Executor | None = None,
    max_doublings: int = 8,
    calibrate: bool = False,
) -> CoveringResult:
    """Algorithm 1. ``learner`` is ``O_l`` (:class:`~cmdp_envs.meta.oracles.protocol.LearnerOracle`), ``check`` is
    ``O_c`` and ``feasible_oracle`` is ``O_s``; the ``O_l`` calls run through ``executor`` (default: this process).

    :param delta: confidence level; sets the first sample size and the coverage target.
    :param eps: radius of the cover's balls.
    :param xi: safety margin asked of ``pi_s`` on every member of the cover.
    :param max_doublings: give up (``RuntimeError``) after this many doublings of ``N``.
    :param calibrate: also calibrate every member's value errors on the sampled tasks
        (:func:`calibrate_value_errors` with its defaults; call it directly, on any fresh sample of the family, to
        choose its Monte Carlo budget).
    """
    check_count("max_doublings", max_doublings)
    if not (eps >= 0 and xi >= 0):
        raise ValueError(f"eps and xi must be >= 0, got eps = {eps}, xi = {xi}")
    executor = executor if executor is not None else SerialExecutor()
    n_samples = initial_sample_size(delta)
    seeds = np.random.SeedSequence(seed).spawn(max_doublings + 2)
    for doublings in range(max_doublings + 1):
        tasks = family.sample(n_samples, seed=np.random.default_rng(seeds[doublings]))
        cover = greedy_cover(tasks, check, eps, max_uncovered=3 * delta * n_samples)
        error = coverage_error(len(cover), n_samples, delta)
        if error <= delta:
            break
        n_samples *= 2
    else:
        raise RuntimeError(f"the cover's coverage error stayed above delta = {delta} after {max_doublings} doublings "
                           f"(last: N = {n_samples // 2}, |U| = {len(cover)}, error {error:.4g})")
    members = [tasks[i] for i in cover]
    oracle_seed = int(seeds[-1].generate_state(1)[0])
    answers = call_oracle_on_tasks(executor, learner, members, seed=oracle_seed, description="O_l on the cover")
    for task, answer in zip(members, answers):
        # Algorithm 2's mixture weights rely on O_l's contract (relaxed eps-feasible policies); a learner short of
        # budget breaks it, and the mixture would then raise its weight on an infeasible policy. The paper measures
        # distances and value errors with the same eps; the check uses the (point) estimate that enters Û.
        if answer.cost.value > task.cost_limit + eps:
            raise RuntimeError(f"O_l returned a policy with J_c = {answer.cost} on {task}, above the relaxed "
                               f"eps-feasible limit d + eps = {task.cost_limit + eps:g}; give the learner more budget")
    safe = feasible_oracle(members, xi)
    policy_values = tuple(
        PolicyValue(task=task, policy=answer.policy, reward_value=answer.reward.value,
                    margin=task.cost_limit - answer.cost.value, safe_reward_value=safe_reward.value,
                    safe_margin=task.cost_limit - safe_cost.value)
        for task, answer, safe_reward, safe_cost in zip(members, answers, safe.reward, safe.cost)
    )
    if calibrate:
        policy_values = calibrate_value_errors(family, policy_values, safe.policy, tasks, check, eps)
    config = {"delta": delta, "eps": eps, "xi": xi, "seed": seed, "max_doublings": max_doublings,
              "calibrated": calibrate,
              "learner": answers[0].info.get("oracle") if answers else None,
              "feasible_oracle": safe.info.get("oracle")}
    return CoveringResult(policy_values=policy_values, safe_policy=safe.policy, n_samples=n_samples,
                          doublings=doublings, coverage_error=error, config=config)
