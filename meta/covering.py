"""The training phase of covering + safe mixture (Ni & Kamgarpour 2026, Algorithm 1 with Subroutine 3).

Sample ``N = ln(delta)^2 / delta^2`` tasks; cover them greedily with ``eps``-balls of the check oracle ``O_c``
(Subroutine 3, in the form of SPECS.md: repeatedly add the task whose ball covers the most still-uncovered tasks,
until at most ``3 delta N`` are uncovered); if the coverage error ``sqrt(|U| ln(2N/delta) / (N - |U|))`` exceeds
``delta``, double ``N`` and start again. Otherwise call the learner oracle ``O_l`` on every member of the cover ``U``
(independent calls, through an executor) and the simultaneously feasible oracle ``O_s`` on ``U``, and return the
policy-value set ``Û = {(pi_i, u_i, v_i, u_i_s, v_i_s)}``: ``u`` reward values and ``v`` safety margins
``d - J_c`` of ``pi_i`` and of ``pi_s`` on task ``M_i``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cmdp_envs.io import write_json
from cmdp_envs.meta.executors import Executor, SerialExecutor, call_oracle_on_tasks
from cmdp_envs.meta.policies import MLPPolicy, TabularPolicy
from cmdp_envs.task import Task, TaskFamily, check_count

__all__ = ["PolicyValue", "CoveringResult", "greedy_cover", "initial_sample_size", "coverage_error", "train"]


@dataclasses.dataclass(frozen=True)
class PolicyValue:
    """One element of ``Û``: task ``M_i``, its policy ``pi_i``, ``u_i = J_r(pi_i)``, ``v_i = d_i - J_c(pi_i)``, and
    ``u_i_s``, ``v_i_s``, the same for ``pi_s`` on ``M_i``."""

    task: Task
    policy: Any
    reward_value: float
    margin: float
    safe_reward_value: float
    safe_margin: float


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
                            "safe_margin": entry.safe_margin})
        write_json(directory / "covering.json", {
            "n_samples": self.n_samples, "doublings": self.doublings, "coverage_error": self.coverage_error,
            "cover_size": self.cover_size, "config": self.config,
            "safe_policy": {"policy": "pi_s.npz", "kind": type(self.safe_policy).__name__},
            "policy_values": entries,
        })
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike, family: TaskFamily) -> CoveringResult:
        """Read a result written by :meth:`save`; tasks are rebuilt (and validated) through ``family``."""
        directory = Path(directory)
        kinds = {"TabularPolicy": TabularPolicy, "MLPPolicy": MLPPolicy}
        try:
            data = json.loads((directory / "covering.json").read_text())
            safe = data["safe_policy"]
            entries = tuple(
                PolicyValue(task=family.task(**entry["task"]),
                            policy=kinds[entry["kind"]].load(directory / entry["policy"]),
                            reward_value=float(entry["reward_value"]), margin=float(entry["margin"]),
                            safe_reward_value=float(entry["safe_reward_value"]),
                            safe_margin=float(entry["safe_margin"]))
                for entry in data["policy_values"]
            )
            return cls(policy_values=entries, safe_policy=kinds[safe["kind"]].load(directory / safe["policy"]),
                       n_samples=int(data["n_samples"]), doublings=int(data["doublings"]),
                       coverage_error=float(data["coverage_error"]), config=data["config"])
        except (OSError, EOFError, KeyError, TypeError, ValueError, zipfile.BadZipFile,
                json.JSONDecodeError) as error:
            raise ValueError(f"{directory} does not hold a saved covering result: {error!r}") from error


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
    """Subroutine 3: indices of a cover ``U``. ``A[i, j] = O_c(M_i, M_j, eps)`` (from ``check.matrix`` when the check
    has one); add the index whose ball covers the most still-uncovered tasks (ties: the lowest index) until at most
    ``max_uncovered`` remain uncovered."""
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
) -> CoveringResult:
    """Algorithm 1. ``learner`` is ``O_l`` (:class:`~cmdp_envs.meta.oracles.protocol.LearnerOracle`), ``check`` is
    ``O_c`` and ``feasible_oracle`` is ``O_s``; the ``O_l`` calls run through ``executor`` (default: this process).

    :param delta: confidence level; sets the first sample size and the coverage target.
    :param eps: radius of the cover's balls.
    :param xi: safety margin asked of ``pi_s`` on every member of the cover.
    :param max_doublings: give up (``RuntimeError``) after this many doublings of ``N``.
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
    config = {"delta": delta, "eps": eps, "xi": xi, "seed": seed, "max_doublings": max_doublings,
              "learner": answers[0].info.get("oracle") if answers else None,
              "feasible_oracle": safe.info.get("oracle")}
    return CoveringResult(policy_values=policy_values, safe_policy=safe.policy, n_samples=n_samples,
                          doublings=doublings, coverage_error=error, config=config)
