"""Tasks and task families.

A *task* is one CMDP of a family, written as a frozen, hashable dataclass of its parameters (so tasks can key caches,
sit in sets and travel to worker processes as plain values). A *task family* is a distribution over tasks: it samples
them with a seed, builds and validates explicit ones, measures the distance between two of them and describes, in words,
how each parameter is distributed.
"""

from __future__ import annotations

import abc
import dataclasses
import itertools
import math
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from cmdp_envs.tabular import TabularCMDP

__all__ = [
    "Task",
    "TaskFamily",
    "TabularFamily",
    "ParameterDistribution",
    "ClippedNormal",
    "TruncatedNormal",
    "Uniform",
    "Choice",
    "Fixed",
    "SeedLike",
    "as_generator",
    "check_count",
]

SeedLike = int | np.random.Generator | None


def check_count(name: str, value: Any, minimum: int = 0) -> int:
    """``value`` as an int ``>= minimum`` (bools refused), else ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def as_generator(seed: SeedLike) -> np.random.Generator:
    """A numpy Generator from an int seed, an existing Generator (used as is) or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    return np.random.default_rng(check_count("seed (an int, a numpy Generator or None)", seed))


@dataclasses.dataclass(frozen=True)
class Task:
    """Base class of every task: one CMDP of a family.

    Subclasses add the family's parameters as further frozen fields. ``cost_limit`` is ``d`` in the constraint
    ``J_c(pi) <= d`` on the expected *discounted* cost.
    """

    cost_limit: float

    def as_dict(self) -> dict[str, Any]:
        """The task's parameters as plain Python values (tuples become lists), for JSON."""
        return _jsonable(dataclasses.asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class ParameterDistribution(abc.ABC):
    """The distribution of one task parameter, together with the range of values a task may take."""

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator, n: int) -> list[Any]:
        """``n`` independent draws."""

    @abc.abstractmethod
    def validate(self, name: str, value: Any) -> Any:
        """Return ``value`` in canonical form, or raise ``ValueError`` naming ``name``, the value and the valid range."""

    @abc.abstractmethod
    def describe(self) -> str:
        """One human-readable line: the distribution and the valid range."""

    @property
    @abc.abstractmethod
    def default(self) -> Any:
        """A representative value (mean or first choice): the task an env starts with."""

    @abc.abstractmethod
    def extremes(self) -> list[Any]:
        """Values that span the valid range (interval end points, every choice): checking a family's constraints on
        these checks them on every value it can sample."""


def _validate_interval(name: str, value: Any, low: float, high: float) -> float:
    """``value`` as a float in ``[low, high]``, or ``ValueError`` naming the parameter, the value and the range."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"task parameter {name!r} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"task parameter {name!r} must be finite, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"task parameter {name!r} = {value!r} is outside its range [{low}, {high}]")
    return value


@dataclasses.dataclass(frozen=True)
class ClippedNormal(ParameterDistribution):
    """``Normal(mean, std)`` clipped (not resampled) to ``[low, high]``; valid values are ``[low, high]``."""

    mean: float
    std: float
    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low <= self.mean <= self.high or self.std < 0:
            raise ValueError(f"need low <= mean <= high and std >= 0, got {self}")

    def sample(self, rng: np.random.Generator, n: int) -> list[float]:
        return np.clip(rng.normal(self.mean, self.std, size=n), self.low, self.high).tolist()

    def validate(self, name: str, value: Any) -> float:
        return _validate_interval(name, value, self.low, self.high)

    def describe(self) -> str:
        return f"Normal(mean={self.mean}, std={self.std}) clipped to [{self.low}, {self.high}]"

    @property
    def default(self) -> float:
        return self.mean

    def extremes(self) -> list[float]:
        return [self.low, self.high]


@dataclasses.dataclass(frozen=True)
class TruncatedNormal(ParameterDistribution):
    """``Normal(mean, std)`` conditioned on ``[low, high]`` (a draw outside is drawn again, by the inverse CDF);
    ``mean`` and ``std`` are the untruncated normal's. Valid values are ``[low, high]``."""

    mean: float
    std: float
    low: float
    high: float

    def __post_init__(self) -> None:
        if not (self.low < self.high and self.std > 0 and math.isfinite(self.mean)):
            raise ValueError(f"need low < high, std > 0 and a finite mean, got {self}")

    def sample(self, rng: np.random.Generator, n: int) -> list[float]:
        import scipy.stats

        a, b = (self.low - self.mean) / self.std, (self.high - self.mean) / self.std
        draws = scipy.stats.truncnorm.ppf(rng.uniform(size=n), a, b, loc=self.mean, scale=self.std)
        return np.clip(draws, self.low, self.high).tolist()

    def validate(self, name: str, value: Any) -> float:
        return _validate_interval(name, value, self.low, self.high)

    def describe(self) -> str:
        return f"Normal(mean={self.mean}, std={self.std}) truncated to [{self.low}, {self.high}]"

    @property
    def default(self) -> float:
        return min(max(self.mean, self.low), self.high)

    def extremes(self) -> list[float]:
        return [self.low, self.high]


@dataclasses.dataclass(frozen=True)
class Uniform(ParameterDistribution):
    """``Uniform[low, high]``; valid values are ``[low, high]``."""

    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"need low <= high, got {self}")

    def sample(self, rng: np.random.Generator, n: int) -> list[float]:
        return rng.uniform(self.low, self.high, size=n).tolist()

    def validate(self, name: str, value: Any) -> float:
        return _validate_interval(name, value, self.low, self.high)

    def describe(self) -> str:
        return f"Uniform[{self.low}, {self.high}]"

    @property
    def default(self) -> float:
        return (self.low + self.high) / 2

    def extremes(self) -> list[float]:
        return [self.low, self.high]


@dataclasses.dataclass(frozen=True)
class Choice(ParameterDistribution):
    """Uniform over a finite set of hashable values (tuples for cells and layouts); only those values are valid."""

    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.choices:
            raise ValueError("Choice needs at least one value")

    def sample(self, rng: np.random.Generator, n: int) -> list[Any]:
        return [self.choices[i] for i in rng.integers(len(self.choices), size=n)]

    def validate(self, name: str, value: Any) -> Any:
        canonical = _as_tuple(value)
        if canonical not in self.choices:
            raise ValueError(f"task parameter {name!r} = {value!r} is not one of {list(self.choices)}")
        return canonical

    def describe(self) -> str:
        return f"uniform over {len(self.choices)} values: {list(self.choices)}"

    @property
    def default(self) -> Any:
        return self.choices[0]

    def extremes(self) -> list[Any]:
        return list(self.choices)


@dataclasses.dataclass(frozen=True)
class Fixed(ParameterDistribution):
    """A parameter held at one value; any other value is invalid."""

    value: Any

    def sample(self, rng: np.random.Generator, n: int) -> list[Any]:
        return [self.value] * n

    def validate(self, name: str, value: Any) -> Any:
        canonical = _as_tuple(value)
        if canonical != self.value:
            raise ValueError(f"task parameter {name!r} = {value!r} is fixed at {self.value!r} in this family")
        return canonical

    def describe(self) -> str:
        return f"fixed at {self.value!r}"

    @property
    def default(self) -> Any:
        return self.value

    def extremes(self) -> list[Any]:
        return [self.value]


def _as_tuple(value: Any) -> Any:
    """Lists (e.g. from JSON or the command line) become tuples so they compare equal to the family's choices."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return tuple(_as_tuple(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


TaskT = TypeVar("TaskT", bound=Task)


class TaskFamily(abc.ABC, Generic[TaskT]):
    """A distribution over tasks of one type.

    Subclasses set ``task_type`` and build ``parameters``: one :class:`ParameterDistribution` per field of the task
    type (``cost_limit`` included). Sampling draws every parameter independently.
    """

    task_type: ClassVar[type[Task]]
    #: The registered id whose env runs this family's tasks (:meth:`make_env`).
    env_id: ClassVar[str]
    parameters: dict[str, ParameterDistribution]
    gamma: float
    #: How ``task.cost_limit`` is read: ``"discounted"`` (this package's convention, ``E[sum_t gamma^t c_t] <= d``)
    #: or ``"undiscounted"`` (the expected episode cost ``E[sum_t c_t] <= d``, Safety-Gymnasium's and OmniSafe's
    #: reading). Learners, the OmniSafe bridge and every evaluation honour it.
    cost_semantics: str = "discounted"

    @property
    def cost_discount(self) -> float:
        """The discount of the constrained cost value: ``gamma`` under ``"discounted"`` semantics, 1 otherwise."""
        return self.gamma if self.cost_semantics == "discounted" else 1.0

    def make_env(self, **env_kwargs: Any) -> Any:
        """``gym.make(self.env_id, family=self, **env_kwargs)``: an env (with the id's time limit and checkers) that
        runs exactly this family, so training and evaluation never rebuild the family from an id."""
        import gymnasium as gym

        return gym.make(self.env_id, family=self, **env_kwargs)

    def __eq__(self, other: object) -> bool:
        """Families are equal when they are of one type with equal settings (public attributes), so two envs built
        with equal arguments compare equal; caches and other private state do not count."""
        if type(other) is not type(self):
            return NotImplemented
        return self._settings() == other._settings()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(type(self))

    def _settings(self) -> dict[str, Any]:
        return {name: value for name, value in vars(self).items() if not name.startswith("_")}

    def sample(self, n: int, seed: SeedLike = None) -> list[TaskT]:
        """``n`` tasks drawn independently; the same int seed always gives the same list."""
        n = check_count("n", n)
        rng = as_generator(seed)
        draws = {name: dist.sample(rng, n) for name, dist in self.parameters.items()}
        return [self.task(**{name: values[i] for name, values in draws.items()}) for i in range(n)]

    def task(self, **params: Any) -> TaskT:
        """An explicit task. Omitted parameters take their default; each value is checked against its range."""
        task = self.task_type(**self.parameter_values(params))
        self.check_task(task)
        return task  # type: ignore[return-value]

    def parameter_values(self, params: dict[str, Any], also_accepted: tuple[str, ...] = ()) -> dict[str, Any]:
        """Every parameter's value: ``params``' checked against its range, the others their default. A name that is
        neither a parameter nor in ``also_accepted`` (arguments a subclass handles itself) is a ``ValueError``."""
        unknown = set(params) - set(self.parameters) - set(also_accepted)
        if unknown:
            raise ValueError(f"unknown task parameter(s) {sorted(unknown)}; this family has "
                             f"{[*self.parameters, *also_accepted]}")
        return {
            name: dist.validate(name, params[name]) if name in params else dist.default
            for name, dist in self.parameters.items()
        }

    def check_task(self, task: Task) -> None:
        """Raise ``ValueError`` unless ``task`` is a valid task of this family (type and every parameter in range)."""
        if not isinstance(task, self.task_type):
            raise ValueError(f"expected a {self.task_type.__name__}, got {type(task).__name__}: {task!r}")
        for name, dist in self.parameters.items():
            value = getattr(task, name)
            if dist.validate(name, value) != value:
                raise ValueError(
                    f"task parameter {name!r} = {value!r} is not in canonical form (cells and layouts are tuples); "
                    f"build tasks with family.task(...)"
                )

    def check_support(self) -> None:
        """Raise ``ValueError`` unless every task the parameter distributions can produce is valid: checks
        :meth:`check_task` on every combination of the distributions' extremes. Families call it on construction,
        so a bad distribution fails there and not on some later draw."""
        names = list(self.parameters)
        for values in itertools.product(*(self.parameters[name].extremes() for name in names)):
            self.check_task(self.task_type(**dict(zip(names, values))))

    @property
    def default_task(self) -> TaskT:
        """The task built from every parameter's default (its mean or first choice)."""
        return self.task()

    @abc.abstractmethod
    def distance(self, task_1: TaskT, task_2: TaskT) -> float:
        """The CMDP distance between two tasks of this family (see SPECS: max of reward, cost, initial-state and
        transition differences)."""

    def describe(self) -> str:
        """A few lines: one per task parameter with its distribution and valid range."""
        return "\n".join(f"{name}: {dist.describe()}" for name, dist in self.parameters.items())


@runtime_checkable
class TabularFamily(Protocol):
    """A task family with an exact finite model: ``family.tabular(task)`` is the task's
    :class:`~cmdp_envs.tabular.TabularCMDP`. Exact evaluation, the LP oracle and ``cmdp-envs solve`` need one;
    ``isinstance(family, TabularFamily)`` tells."""

    gamma: float

    def tabular(self, task: Any) -> TabularCMDP: ...

    def check_task(self, task: Task) -> None: ...
