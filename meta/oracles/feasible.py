"""The check oracle ``O_c`` and the simultaneously feasible oracle ``O_s`` of Ni & Kamgarpour (Definitions 3.1, 3.4).

``O_s(U, xi)`` returns one policy that is xi-feasible (``J_c <= d - xi``) on every task of ``U``, with its values on
each. Two implementations:

* :class:`ExactSimultaneouslyFeasibleOracle` (tabular families): worst-case natural policy gradient with exact
  advantages, as Xu & Zhu's safe meta-training does. While some task is violated, step down the cost advantage of the
  task of largest violation; once all are xi-feasible, step up the mean reward advantage; keep the best xi-feasible
  iterate. Every returned policy is checked exactly on every task.
* :class:`LearnedSimultaneouslyFeasibleOracle` (any family): train a learner oracle against the worst task of the
  set with the limit tightened by ``xi``, re-check all tasks, repeat.

:class:`ReferenceTaskOptimum` is the authors' gridworld choice instead: one policy fixed in advance, the
entropy-regularised optimum of a harder reference task, checked xi-feasible on ``U``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from cmdp_envs.meta.oracles.learned import LearnedOracle
from cmdp_envs.meta.oracles.protocol import LearnerOracle, OracleResult, ValueEstimate, evaluate
from cmdp_envs.meta.policies import TabularPolicy, softmax
from cmdp_envs.tabular import solve_regularised_cmdp, value_functions
from cmdp_envs.task import TabularFamily, Task, TaskFamily, check_count
from cmdp_envs.validation import check_number

__all__ = [
    "DistanceCheck",
    "SimultaneouslyFeasibleResult",
    "ExactSimultaneouslyFeasibleOracle",
    "LearnedSimultaneouslyFeasibleOracle",
    "ReferenceTaskOptimum",
    "NoFeasiblePolicyError",
]


class DistanceCheck:
    """``O_c(M1, M2, eps)``: ``distance(M1, M2) <= eps``.

    By default the family's own :meth:`~cmdp_envs.task.TaskFamily.distance` (exact CMDP distance for tabular
    families). ``parameter="noise"`` compares one numeric task parameter instead, ``|M1.noise - M2.noise|``, as the
    paper's gridworld experiments do; ``distance`` takes any other function of two tasks.
    """

    def __init__(self, family: TaskFamily, distance: Callable[[Task, Task], float] | None = None,
                 parameter: str | None = None):
        if distance is not None and parameter is not None:
            raise ValueError("pass distance or parameter, not both")
        if parameter is not None and parameter not in family.parameters:
            raise ValueError(f"unknown task parameter {parameter!r}; this family has {list(family.parameters)}")
        self.parameter = parameter
        if parameter is not None:
            distance = lambda a, b: abs(getattr(a, parameter) - getattr(b, parameter))  # noqa: E731
        self.distance = distance if distance is not None else family.distance

    def __call__(self, task_1: Task, task_2: Task, eps: float) -> bool:
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        return self.distance(task_1, task_2) <= eps

    def matrix(self, tasks: Sequence[Task], eps: float) -> np.ndarray:
        """``A[i, j] = O_c(M_i, M_j, eps)`` for all pairs; vectorised for a parameter distance (the covering
        training phase builds this for thousands of tasks)."""
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        if self.parameter is not None:
            values = np.array([float(getattr(task, self.parameter)) for task in tasks])
            return np.abs(values[:, None] - values[None, :]) <= eps
        return np.array([[self.distance(a, b) <= eps for b in tasks] for a in tasks], dtype=bool).reshape(
            len(tasks), len(tasks))


class NoFeasiblePolicyError(RuntimeError):
    """The oracle found no policy xi-feasible on every task; ``worst_margin`` is the best worst-case margin
    ``min_i (d_i - J_c_i)`` it reached."""

    def __init__(self, xi: float, worst_margin: float, detail: str):
        self.xi = xi
        self.worst_margin = worst_margin
        super().__init__(f"no policy found with margin xi = {xi:g} on every task; the best worst-case margin reached "
                         f"was {worst_margin:.6g} ({detail})")


@dataclasses.dataclass(frozen=True)
class SimultaneouslyFeasibleResult:
    """``pi_s`` and its values on each task of ``U`` (in order)."""

    policy: object
    tasks: tuple[Task, ...]
    reward: tuple[ValueEstimate, ...]
    cost: tuple[ValueEstimate, ...]
    xi: float
    info: dict = dataclasses.field(default_factory=dict)

    @property
    def margins(self) -> np.ndarray:
        """``d_i - J_c_i`` per task (upper confidence bound of ``J_c`` for estimates)."""
        return np.array([t.cost_limit - c.upper_bound for t, c in zip(self.tasks, self.cost)])


class ExactSimultaneouslyFeasibleOracle:
    """``O_s`` on a tabular family by worst-case natural policy gradient with exact advantages.

    The natural-gradient step for a softmax policy is multiplicative: ``pi(a|s) <- pi(a|s) exp(step * A(s, a))``,
    normalised per state; the step is scaled so that no log-probability moves by more than ``step_size``.

    :param iterations: the most steps taken.
    :param step_size: the largest change of a log-probability per step.
    :param reference_tasks: tasks on which ``pi_s`` must also be xi-feasible beyond those of ``U`` (values are still
        reported for ``U`` only). Ni & Kamgarpour take ``pi_s`` feasible on the noisiest gridworld task, so that it
        is safe on test tasks outside the cover too; pass that task here.
    :param exploration: ``rho``: the returned policy is ``(1 - rho) pi + rho uniform`` in every state, optimised as
        such, so each action keeps probability ``>= rho / A``. Test-time methods that adapt ``pi_s`` by policy
        gradient or by Xu & Zhu's closed form cannot move mass onto actions of (numerically) zero probability, and
        the natural-gradient iterates saturate; ``rho > 0`` keeps them able to learn.
    """

    def __init__(self, family: TaskFamily, iterations: int = 2000, step_size: float = 0.5,
                 reference_tasks: Sequence[Task] = (), exploration: float = 0.0):
        if not isinstance(family, TabularFamily):
            raise TypeError(f"ExactSimultaneouslyFeasibleOracle needs a tabular family, got {family!r}")
        self.family = family
        self.iterations = check_count("iterations", iterations, minimum=1)
        self.step_size = float(step_size)
        self.reference_tasks = tuple(reference_tasks)
        if not 0 <= exploration < 1:
            raise ValueError(f"exploration must be in [0, 1), got {exploration}")
        self.exploration = float(exploration)
        for task in self.reference_tasks:
            family.check_task(task)

    def __call__(self, tasks: Sequence[Task], xi: float, initial_policy: np.ndarray | None = None
                 ) -> SimultaneouslyFeasibleResult:
        tasks = tuple(tasks)
        if not tasks:
            raise ValueError("O_s needs at least one task")
        if not xi >= 0:
            raise ValueError(f"xi must be >= 0, got {xi}")
        cmdps = [self.family.tabular(task) for task in tasks + self.reference_tasks]
        asked = len(tasks)
        limits = np.array([task.cost_limit - xi for task in tasks + self.reference_tasks])
        S, A = cmdps[0].n_states, cmdps[0].n_actions
        policy = np.full((S, A), 1.0 / A) if initial_policy is None else np.array(initial_policy, dtype=np.float64)
        best: tuple[float, np.ndarray] | None = None
        worst_margin = -np.inf
        for _ in range(self.iterations):
            executed = (1 - self.exploration) * policy + self.exploration / A
            evaluations = [value_functions(cmdp, executed) for cmdp in cmdps]
            rewards = np.array([cmdp.mu @ V[0] for cmdp, (V, _) in zip(cmdps, evaluations)])
            costs = np.array([cmdp.mu @ V[1] for cmdp, (V, _) in zip(cmdps, evaluations)])
            violation = costs - limits
            worst_margin = max(worst_margin, float(-violation.max()))
            if violation.max() <= 0:
                if best is None or rewards[:asked].mean() > best[0]:
                    best = (float(rewards[:asked].mean()), executed)
                advantage = np.mean([Q[0] - V[0][:, None] for V, Q in evaluations[:asked]], axis=0)
            else:
                V, Q = evaluations[int(violation.argmax())]
                advantage = -(Q[1] - V[1][:, None])
            scale = np.abs(advantage).max()
            if scale == 0:
                break
            logits = np.log(np.maximum(policy, 1e-300)) + self.step_size * advantage / scale
            policy = softmax(logits)
        if best is None:
            raise NoFeasiblePolicyError(xi, worst_margin, f"{self.iterations} exact natural-gradient steps")
        return self._checked(tasks, xi, best[1])

    def _checked(self, tasks: tuple[Task, ...], xi: float, probabilities: np.ndarray) -> SimultaneouslyFeasibleResult:
        policy = TabularPolicy(probabilities)
        checked = tasks + self.reference_tasks
        values = [evaluate(self.family, task, policy) for task in checked]
        result = SimultaneouslyFeasibleResult(
            policy=policy, tasks=checked, reward=tuple(v[0] for v in values), cost=tuple(v[1] for v in values), xi=xi,
            info={"oracle": "exact_worst_case_npg",
                  "reference_tasks": [task.as_dict() for task in self.reference_tasks]},
        )
        if not np.all(result.margins >= xi):
            raise NoFeasiblePolicyError(xi, float(result.margins.min()), "the exact re-check failed")
        if self.reference_tasks:
            result = dataclasses.replace(result, tasks=tasks, reward=result.reward[:len(tasks)],
                                         cost=result.cost[:len(tasks)])
        return result


class LearnedSimultaneouslyFeasibleOracle:
    """``O_s`` with any learner oracle: train against the worst task of ``U`` with the limit tightened by ``xi``,
    evaluate the policy on every task under the learner's own family (exact on tabular families, else Monte Carlo
    with ``evaluate_kwargs`` through the learner's own env, ``learner.make_env()``, when it has one, else
    ``learner.family.make_env()``), and repeat on the new worst task until the policy
    is xi-feasible everywhere or ``max_rounds`` is reached.

    ``training_margin`` (default ``xi``) tightens the limit the learner trains under instead: a Lagrangian learner
    ends near the limit it is given, so asking it for more margin than the check needs makes its answer pass the
    check with noise to spare."""

    def __init__(self, learner: LearnerOracle, max_rounds: int = 5, training_margin: float | None = None,
                 **evaluate_kwargs):
        family = getattr(learner, "family", None)
        if not isinstance(family, TaskFamily):
            raise TypeError(f"the learner must carry its task family as .family, got {learner!r}")
        self.family = family
        self.learner = learner
        self.max_rounds = check_count("max_rounds", max_rounds, minimum=1)
        self.training_margin = None if training_margin is None else check_number("training_margin",
                                                                                  training_margin, 0.0)
        self.evaluate_kwargs = evaluate_kwargs

    def __call__(self, tasks: Sequence[Task], xi: float, seed: int = 0) -> SimultaneouslyFeasibleResult:
        tasks = tuple(tasks)
        if not tasks:
            raise ValueError("O_s needs at least one task")
        # Start from the task with the tightest limit; then always from the task the last policy violated most.
        target = min(range(len(tasks)), key=lambda i: tasks[i].cost_limit)
        worst_margin = -np.inf
        for round_index in range(self.max_rounds):
            margin = xi if self.training_margin is None else max(xi, self.training_margin)
            answer: OracleResult = self.learner(tasks[target], seed=seed + round_index,
                                                cost_limit=tasks[target].cost_limit - margin)
            env = self.learner.make_env() if isinstance(self.learner, LearnedOracle) else None
            values = [evaluate(self.family, task, answer.policy, env, seed=seed, **self.evaluate_kwargs)
                      for task in tasks]
            result = SimultaneouslyFeasibleResult(
                policy=answer.policy, tasks=tasks, reward=tuple(v[0] for v in values),
                cost=tuple(v[1] for v in values), xi=xi,
                info={"oracle": "learned_worst_case", "rounds": round_index + 1, **answer.info},
            )
            margins = result.margins
            worst_margin = max(worst_margin, float(margins.min()))
            if np.all(margins >= xi):
                return result
            target = int(margins.argmin())
        raise NoFeasiblePolicyError(xi, worst_margin, f"{self.max_rounds} rounds of the learner oracle")


class ReferenceTaskOptimum:
    """``O_s`` as the covering + safe mixture authors' gridworld code takes it: the entropy-regularised optimum
    (:func:`~cmdp_envs.tabular.solve_regularised_cmdp`, ``solver_settings`` passed on) of ``reference_task``, their
    noise-0.4 task, computed once whatever ``U`` is. Costs rise with the noise on that layout, so the policy is
    feasible on the easier tasks of ``U``; each call checks that it is xi-feasible on every one of them, exactly, and
    raises :class:`NoFeasiblePolicyError` otherwise."""

    def __init__(self, family: TabularFamily, reference_task: Task, **solver_settings: float):
        if not isinstance(family, TabularFamily):
            raise TypeError(f"ReferenceTaskOptimum needs a tabular family, got {family!r}")
        family.check_task(reference_task)
        self.family, self.reference_task = family, reference_task
        solution = solve_regularised_cmdp(family.tabular(reference_task), **solver_settings)
        self.policy = TabularPolicy(solution.policy)
        self.info = {"oracle": "reference_task_regularised_optimum", "reference_task": reference_task.as_dict(),
                     "reference_reward": solution.reward_value, "reference_cost": solution.cost_value,
                     **solver_settings}

    def __call__(self, tasks: Sequence[Task], xi: float) -> SimultaneouslyFeasibleResult:
        tasks = tuple(tasks)
        if not tasks:
            raise ValueError("O_s needs at least one task")
        if not xi >= 0:
            raise ValueError(f"xi must be >= 0, got {xi}")
        values = [evaluate(self.family, task, self.policy) for task in tasks]
        result = SimultaneouslyFeasibleResult(policy=self.policy, tasks=tasks, reward=tuple(v[0] for v in values),
                                              cost=tuple(v[1] for v in values), xi=xi, info=dict(self.info))
        if not np.all(result.margins >= xi):
            raise NoFeasiblePolicyError(xi, float(result.margins.min()),
                                        f"the optimum of {self.reference_task} checked on U")
        return result
