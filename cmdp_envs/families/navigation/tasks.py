"""Navigation tasks and their families: Goal (levels 1 and 2, and C-MAML's goal arc) and Circle (levels 1 and 2,
and Meta-CPO's radius and wall distribution), for Safety-Gymnasium's point robot.

A task is a frozen value: the robot's dynamics scales, the cost limit and, for Goal, the whole layout (robot pose,
goal, hazards, vases) as explicit coordinates. A family is a distribution over tasks plus the settings that every
task of it shares (arena, object sizes, number of object slots, cost semantics, discount). Families sample layouts
with Safety-Gymnasium's own placement procedure (:mod:`.layout`), so ``family.task(layout_seed=s)`` is exactly the
layout that ``safety_gymnasium.make(id).reset(seed=s)`` builds.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Literal

import numpy as np

from cmdp_envs.families.navigation.layout import AGENT, Placement, goal_position, layout_from_seed
from cmdp_envs.task import Fixed, ParameterDistribution, SeedLike, Task, TaskFamily, Uniform, as_generator, check_count
from cmdp_envs.validation import check_number

__all__ = [
    "PointTask",
    "GoalTask",
    "ButtonTask",
    "CircleTask",
    "PointFamily",
    "LayoutFamily",
    "GoalFamily",
    "ButtonFamily",
    "CircleFamily",
    "CostSemantics",
]

Point2 = tuple[float, float]
#: ``"discounted"``: a policy is feasible when ``E[sum_t gamma^t c_t] <= cost_limit`` (this package's convention);
#: ``"undiscounted"``: when the expected episode cost ``E[sum_t c_t] <= cost_limit`` (Safety-Gymnasium's and
#: OmniSafe's usual reading, e.g. OmniSafe's limit of 25 and C-MAML's 5).
CostSemantics = Literal["discounted", "undiscounted"]

#: Bounds of the dynamics scales: beyond them the 2 ms Euler step of the robot is no longer a faithful integrator.
SCALE_BOUNDS = (0.25, 4.0)
#: How many placed layouts a family keeps (a task is a few hundred bytes).
LAYOUT_CACHE_SIZE = 4096


@dataclasses.dataclass(frozen=True)
class PointTask(Task):
    """What every point-robot task has.

    :param cost_limit: ``d``; its semantics (discounted or episode sum) is the family's ``cost_semantics``.
    :param mass_scale: multiplies the robot's mass and inertia.
    :param damping_scale: multiplies its joint damping.
    :param gain_scale: multiplies the gear of both actuators.
    """

    cost_limit: float = 2.5
    mass_scale: float = 1.0
    damping_scale: float = 1.0
    gain_scale: float = 1.0


@dataclasses.dataclass(frozen=True)
class GoalTask(PointTask):
    """A Goal layout.

    :param agent: the robot's start pose ``(x, y, heading)``.
    :param goal: the first goal's centre (later goals are redrawn during the episode, as in Safety-Gymnasium).
    :param hazards: hazard centres.
    :param vases: the vases' start positions (they move when pushed).
    """

    agent: tuple[float, float, float] = (0.0, 0.0, 0.0)
    goal: Point2 = (1.0, 0.0)
    hazards: tuple[Point2, ...] = ()
    vases: tuple[Point2, ...] = ()


@dataclasses.dataclass(frozen=True)
class ButtonTask(PointTask):
    """A Button layout.

    :param agent: the robot's start pose ``(x, y, heading)``.
    :param buttons: the four buttons' centres.
    :param goal_button: the index of the first goal button (later ones are drawn during the episode).
    :param hazards: hazard centres.
    :param gremlins: the centres of the gremlins' circles.
    """

    agent: tuple[float, float, float] = (0.0, 0.0, 0.0)
    buttons: tuple[Point2, ...] = ()
    goal_button: int = 0
    hazards: tuple[Point2, ...] = ()
    gremlins: tuple[Point2, ...] = ()


@dataclasses.dataclass(frozen=True)
class CircleTask(PointTask):
    """A Circle task.

    :param radius: the radius ``R`` of the circle (centred at the origin) along which the reward is highest.
    :param wall: the walls stand at ``|x| = wall`` (and ``|y| = wall`` with four walls); beyond them every step costs.
    """

    radius: float = 1.5
    wall: float = 1.125


def _point(name: str, value: Any, dims: int = 2) -> tuple[float, ...]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (tuple, list)) or len(value) != dims:
        raise ValueError(f"task parameter {name!r} must be {dims} numbers, got {value!r}")
    return tuple(check_number(f"{name}[{i}]", v) for i, v in enumerate(value))


class PointFamily(TaskFamily):
    """What the point-robot families share: dynamics scales, cost limit and its semantics, discount, episode length.

    :param cost_limit: distribution of ``d``.
    :param mass_scale: distribution of the mass scale (in ``[0.25, 4]``).
    :param damping_scale: distribution of the damping scale (in ``[0.25, 4]``).
    :param gain_scale: distribution of the actuator gain scale (in ``[0.25, 4]``).
    :param cost_semantics: how ``cost_limit`` is read (:data:`CostSemantics`).
    :param gamma: the discount of values and of the ``"discounted"`` constraint, in ``[0, 1)``.
    """

    task_type: ClassVar[type[Task]] = PointTask
    #: ``"goal"``, ``"button"`` or ``"circle"``: the ``kind`` argument of the envs.
    kind: ClassVar[str]
    #: Safety-Gymnasium's episode length for the family's tasks.
    max_episode_steps: ClassVar[int] = 1000

    def __init__(
        self,
        cost_limit: ParameterDistribution,
        mass_scale: ParameterDistribution,
        damping_scale: ParameterDistribution,
        gain_scale: ParameterDistribution,
        cost_semantics: CostSemantics,
        gamma: float,
    ):
        if cost_semantics not in ("discounted", "undiscounted"):
            raise ValueError(f"cost_semantics must be 'discounted' or 'undiscounted', got {cost_semantics!r}")
        self.gamma = check_number("gamma", gamma, 0.0, 1.0, high_open=True)
        self.cost_semantics: CostSemantics = cost_semantics
        self.parameters = {
            "cost_limit": cost_limit,
            "mass_scale": mass_scale,
            "damping_scale": damping_scale,
            "gain_scale": gain_scale,
        }

    def make_vector_env(self, num_envs: int, **vector_kwargs: Any) -> Any:
        """A :class:`~cmdp_envs.families.navigation.NavigationVectorEnv` of ``num_envs`` worlds of exactly this family
        (``vector_kwargs``: ``max_episode_steps``, ``autoreset_mode``, ``render_mode``)."""
        from cmdp_envs.families.navigation.env import NavigationVectorEnv

        return NavigationVectorEnv(num_envs, kind=self.kind, family=self, **vector_kwargs)

    def _check_distributions(self) -> None:
        for name, dist in self.parameters.items():
            if not isinstance(dist, ParameterDistribution):
                raise TypeError(f"{name} must be a ParameterDistribution, got {dist!r}")

    def check_task(self, task: Task) -> None:
        super().check_task(task)
        if task.cost_limit < 0:
            raise ValueError(f"task parameter 'cost_limit' = {task.cost_limit!r} must be >= 0")
        for name in ("mass_scale", "damping_scale", "gain_scale"):
            value = getattr(task, name)
            if not SCALE_BOUNDS[0] <= value <= SCALE_BOUNDS[1]:
                raise ValueError(f"task parameter {name!r} = {value!r} is outside {list(SCALE_BOUNDS)}")

    def distance(self, task_1: PointTask, task_2: PointTask) -> float:
        """A parameter-space distance (SPECS allows one for parametric families): the largest absolute difference of
        any number in the two tasks (coordinates, scales, cost limit), objects compared slot by slot. Tasks with
        different numbers of objects are at distance ``inf``. It is a metric on tasks; it is not a bound on the
        sup-norm CMDP distance, which jumps to the cost's full range with any move of a hazard edge."""
        for task in (task_1, task_2):
            self.check_task(task)
        flat_1, flat_2 = _flatten(dataclasses.astuple(task_1)), _flatten(dataclasses.astuple(task_2))
        if len(flat_1) != len(flat_2):
            return math.inf
        return max(abs(a - b) for a, b in zip(flat_1, flat_2))

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings().items() if k != "parameters")
        params = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items())
        return f"{type(self).__name__}({params}, {settings})"


def _flatten(values: Any) -> list[float]:
    if isinstance(values, (tuple, list)):
        return [x for value in values for x in _flatten(value)]
    return [float(values)]


class LayoutFamily(PointFamily):
    """Families whose tasks are layouts placed by Safety-Gymnasium's procedure (Goal, Button).

    Layouts come from layout seeds (:func:`~.layout.layout_from_seed`), so every sampled task is rebuilt by its seed,
    ``task(layout_seed=s)`` is Safety-Gymnasium's layout for ``reset(seed=s)``, and explicit coordinates may replace
    any part of it. Subclasses set ``placement`` and the task's layout fields with their slot counts
    (``layout_slots``), and build a task from a placed layout (:meth:`_from_layout`).
    """

    placement: Placement
    #: Each layout field of the task: its number of (x, y) slots, or ``None`` for one point (``agent`` is a pose).
    layout_slots: dict[str, int | None]

    def _finish_init(self) -> None:
        self._check_distributions()
        #: The layout of tasks built without one: the first seed from 0 up whose layout the family accepts.
        self.default_layout_seed = self._first_accepted(0)
        self.check_support()

    def check_support(self) -> None:
        for name, dist in self.parameters.items():
            for value in dist.extremes():
                self.check_task(
                    dataclasses.replace(self._seeded(self.default_layout_seed), **{name: dist.validate(name, value)})
                )

    def _accepts(self, task: PointTask) -> bool:
        """Whether the family keeps a placed layout (all of them unless a subclass restricts it)."""
        return True

    def _from_layout(self, layout: dict[str, list[tuple[np.ndarray, float]]], heading: float,
                     rng: np.random.RandomState, values: dict[str, Any]) -> PointTask:
        raise NotImplementedError

    def _seeded(self, layout_seed: int, **params: Any) -> PointTask:
        """The task of a layout seed, with ``params`` replacing the parameters' defaults. Placing a layout takes up
        to tens of milliseconds (Button's keepouts reject most draws), so the layouts of recent seeds are kept."""
        cache: dict[int, PointTask] = self.__dict__.setdefault("_layouts", {})
        if layout_seed not in cache:
            if len(cache) >= LAYOUT_CACHE_SIZE:
                cache.clear()
            layout, heading, rng = layout_from_seed(layout_seed, self.placement)
            defaults = {name: dist.default for name, dist in self.parameters.items()}
            cache[layout_seed] = self._from_layout(layout, heading, rng, defaults)
        return dataclasses.replace(cache[layout_seed], **params)

    def _first_accepted(self, seed: int) -> int:
        for candidate in range(seed, seed + 100_000):
            if self._accepts(self._seeded(candidate % 2**32)):
                return candidate % 2**32
        raise ValueError(f"no layout among 100,000 seeds from {seed} is accepted by {self!r}: widen its settings")

    def layout_seeds(self, n: int, seed: SeedLike = None) -> list[int]:
        """``n`` layout seeds whose layouts the family accepts, scanning upwards from a start drawn from ``seed``
        (a range of seeds, as C-MAML's tasks are); the same seed gives the same list."""
        n = check_count("n", n)
        rng = as_generator(seed)
        seeds: list[int] = []
        candidate = int(rng.integers(2**31 - 1))
        while len(seeds) < n:
            seeds.append(self._first_accepted(candidate))
            candidate = seeds[-1] + 1
        return seeds

    def sample(self, n: int, seed: SeedLike = None) -> list[PointTask]:
        """``n`` tasks: layouts from :meth:`layout_seeds` and every other parameter drawn from its distribution."""
        n = check_count("n", n)
        rng = as_generator(seed)
        seeds = self.layout_seeds(n, rng)
        draws = {name: dist.sample(rng, n) for name, dist in self.parameters.items()}
        return [self.task(layout_seed=s, **{name: values[i] for name, values in draws.items()})
                for i, s in enumerate(seeds)]

    def task(self, layout_seed: int | None = None, **params: Any) -> PointTask:
        """An explicit task. ``layout_seed`` builds Safety-Gymnasium's layout for that seed; the layout fields
        (``agent`` pose, points, lists of points) give or override coordinates; the other parameters are checked
        against their distributions. Omitted ones take the defaults (the layout of :attr:`default_layout_seed`)."""
        self.parameter_values(params, also_accepted=(*self.layout_slots, "layout_seed"))  # names and ranges
        values = {name: dist.validate(name, params[name]) for name, dist in self.parameters.items() if name in params}
        if layout_seed is not None:
            check_count("layout_seed", layout_seed)
        base = self._seeded(self.default_layout_seed if layout_seed is None else layout_seed, **values)
        layout: dict[str, Any] = {}
        for name, slots in self.layout_slots.items():
            if name not in params:
                continue
            value = params[name]
            if name == "agent":
                layout[name] = _point(name, value, 3)
            elif slots is None:
                layout[name] = _point(name, value)
            else:
                if not isinstance(value, (tuple, list, np.ndarray)):
                    raise ValueError(f"task parameter {name!r} must be a sequence of (x, y), got {value!r}")
                layout[name] = tuple(_point(f"{name}[{i}]", p) for i, p in enumerate(value))
        task = dataclasses.replace(base, **layout)
        self.check_task(task)
        return task

    def check_task(self, task: Task) -> None:
        if not isinstance(task, self.task_type):
            raise ValueError(f"expected a {self.task_type.__name__}, got {type(task).__name__}: {task!r}")
        super().check_task(task)
        xmin, ymin, xmax, ymax = self.placement.extents
        for name, slots in self.layout_slots.items():
            value = getattr(task, name)
            points = [value[:2]] if name == "agent" else [value] if slots is None else list(value)
            if slots is not None and len(points) > slots:
                raise ValueError(f"task has {len(points)} {name}; this family has slots for {slots}")
            for point in points:
                if not all(math.isfinite(v) for v in point) or not (
                    xmin - 1 <= point[0] <= xmax + 1 and ymin - 1 <= point[1] <= ymax + 1
                ):
                    raise ValueError(f"task {name} position {point!r} is outside the arena {self.placement.extents} "
                                     f"(by more than 1)")
        if not math.isfinite(task.agent[2]):
            raise ValueError(f"task agent heading must be finite, got {task.agent[2]!r}")

    def _layout_line(self) -> str:
        xmin, ymin, xmax, ymax = self.placement.extents
        groups = ", ".join(f"{count} {name} (keepout {keepout:g})" for name, keepout, count in self.placement.groups)
        return (f"layout: Safety-Gymnasium's placement in [{xmin:g}, {xmax:g}] x [{ymin:g}, {ymax:g}] from a layout "
                f"seed: {groups}")


class GoalFamily(LayoutFamily):
    """Goal tasks: reach a goal (redrawn each time it is reached) while avoiding hazards and, at level 2, vases.

    Levels (Safety-Gymnasium's ``SafetyPointGoal1/2``): level 1 has 8 hazards and 1 vase that costs nothing in the
    arena ``[-1.5, 1.5]^2``; level 2 has 10 hazards and 10 vases that cost on contact and per m/s of vase speed,
    in ``[-2, 2]^2``. ``n_hazards`` and ``n_vases`` override the counts (every task of the family has that many
    slots).

    Layouts are drawn by Safety-Gymnasium's placement procedure from a layout seed (:class:`LayoutFamily`). With
    ``goal_arc`` (degrees) only layouts whose first goal lies within ``goal_arc / 2`` of the robot's start heading
    and at a distance in ``goal_distance`` are kept, seed after seed: C-MAML's distribution (140 degrees).

    :param level: 1 or 2.
    :param n_hazards: number of hazards (default: the level's).
    :param n_vases: number of vases (default: the level's).
    :param goal_arc: ``None`` (any goal) or the arc in degrees, in ``(0, 360]``.
    :param goal_distance: ``(min, max)`` distance of the first goal from the start (with ``goal_arc``).
    :param hidden_goal: drop the goal lidar from observations (the goal is then inferred from rewards, as in
        meta-RL).
    :param constrain_indicator: Safety-Gymnasium's default (``True``): every cost source and the step's total are
        indicators, 1 when positive (hazards count while strictly within 0.2 of a centre). ``False``: hazards cost
        their depth ``0.2 - d`` summed over hazards, vases one per contact plus their speeds, and the total is the
        sum of the sources (Safety-Gymnasium's ``constrain_indicator=False``).
    :param cost_limit, mass_scale, damping_scale, gain_scale, cost_semantics, gamma: see :class:`PointFamily`.
        The default limit, 2.5 discounted at ``gamma = 0.99``, is the per-step cost rate of OmniSafe's usual limit of
        25 per 1,000-step episode (``25 / 1000 / (1 - 0.99)``); with ``cost_semantics="undiscounted"`` pass
        ``cost_limit=Fixed(25.0)`` for OmniSafe's own.
    """

    task_type: ClassVar[type[Task]] = GoalTask
    env_id: ClassVar[str] = "cmdp_envs/PointGoal1-v0"
    kind: ClassVar[str] = "goal"
    max_episode_steps: ClassVar[int] = 1000
    #: Object sizes (radii; the vase's half-size), Safety-Gymnasium's.
    goal_size: ClassVar[float] = 0.3
    hazard_size: ClassVar[float] = 0.2
    vase_size: ClassVar[float] = 0.1
    lidar_max_dist: ClassVar[float] = 3.0

    def __init__(
        self,
        level: int = 1,
        n_hazards: int | None = None,
        n_vases: int | None = None,
        goal_arc: float | None = None,
        goal_distance: tuple[float, float] = (0.0, math.inf),
        hidden_goal: bool = False,
        constrain_indicator: bool = True,
        cost_limit: ParameterDistribution = Fixed(2.5),
        mass_scale: ParameterDistribution = Fixed(1.0),
        damping_scale: ParameterDistribution = Fixed(1.0),
        gain_scale: ParameterDistribution = Fixed(1.0),
        cost_semantics: CostSemantics = "discounted",
        gamma: float = 0.99,
    ):
        super().__init__(cost_limit, mass_scale, damping_scale, gain_scale, cost_semantics, gamma)
        _check_level(level)
        _check_bool("constrain_indicator", constrain_indicator)
        _check_bool("hidden_goal", hidden_goal)
        if goal_arc is not None:
            goal_arc = check_number("goal_arc", goal_arc, 0.0, 360.0, low_open=True)
        low, high = (check_number(f"goal_distance[{i}]", v, 0.0, math.inf) for i, v in enumerate(goal_distance))
        if low > high:
            raise ValueError(f"goal_distance must be (min, max) with min <= max, got {goal_distance!r}")
        self.level = level
        self.n_hazards = check_count("n_hazards", n_hazards if n_hazards is not None else (8, 10)[level - 1])
        self.n_vases = check_count("n_vases", n_vases if n_vases is not None else (1, 10)[level - 1])
        self.goal_arc = goal_arc
        self.goal_distance = (low, high)
        self.hidden_goal = hidden_goal
        self.constrain_indicator = constrain_indicator
        self.vases_cost = level == 2
        half = (1.5, 2.0)[level - 1]
        self.placement = Placement(
            extents=(-half, -half, half, half),
            groups=((AGENT, 0.4, 1), ("goal", 0.305, 1), ("hazards", 0.18, self.n_hazards),
                    ("vases", 0.15, self.n_vases)),
        )
        self.layout_slots = {"agent": None, "goal": None, "hazards": self.n_hazards, "vases": self.n_vases}
        self._finish_init()

    def _from_layout(self, layout: dict[str, list[tuple[np.ndarray, float]]], heading: float,
                     rng: np.random.RandomState, values: dict[str, Any]) -> GoalTask:
        # Safety-Gymnasium's reset draws the goal once more, against everything else.
        others = [pair for name, pairs in layout.items() if name != "goal" for pair in pairs]
        goal = goal_position(rng, self.placement.extents, self.placement.keepout("goal"), others)
        (agent, _), = layout[AGENT]
        return GoalTask(agent=(*_xy(agent), heading), goal=_xy(goal),
                        hazards=tuple(_xy(p) for p, _ in layout["hazards"]),
                        vases=tuple(_xy(p) for p, _ in layout["vases"]), **values)

    def _accepts(self, task: GoalTask) -> bool:
        """Whether the first goal is in the family's arc and distance range as seen from the start pose."""
        if self.goal_arc is None:
            return True
        x, y, heading = task.agent
        dx, dy = task.goal[0] - x, task.goal[1] - y
        bearing = math.atan2(dy, dx) - heading
        off_axis = abs(math.degrees(math.atan2(math.sin(bearing), math.cos(bearing))))
        return off_axis <= self.goal_arc / 2 and self.goal_distance[0] <= math.hypot(dx, dy) <= self.goal_distance[1]

    def describe(self) -> str:
        arc = (
            f"; kept when the first goal is within {self.goal_arc / 2:g} degrees of the start heading at a distance in "
            f"[{self.goal_distance[0]:g}, {self.goal_distance[1]:g}]" if self.goal_arc is not None else ""
        )
        return "\n".join([
            self._layout_line() + arc,
            super().describe(),
            f"cost: {'indicators (Safety-Gymnasium default)' if self.constrain_indicator else 'depth and counts'}; "
            f"vases {'cost' if self.vases_cost else 'cost nothing'}; limit read as {self.cost_semantics}",
        ])


class ButtonFamily(LayoutFamily):
    """Button tasks: press the goal button (one of four; after a press a new one is drawn) while avoiding hazards,
    gremlins (moving obstacles) and the wrong buttons.

    Level 1 (Safety-Gymnasium's ``SafetyPointButton1``): arena ``[-1.5, 1.5]^2``, 4 buttons, 4 hazards, 4 gremlins
    circling their centres with radius 0.35; level 2: ``[-1.8, 1.8]^2``, 8 hazards, 6 gremlins. Layouts are
    Safety-Gymnasium's (:class:`LayoutFamily`); the task fixes the first goal button, later ones are drawn during
    the episode.

    :param level: 1 or 2.
    :param constrain_indicator: as :class:`GoalFamily`'s (``False``: one per contact, and hazards by depth).
    :param cost_limit, mass_scale, damping_scale, gain_scale, cost_semantics, gamma: see :class:`PointFamily`.
    """

    task_type: ClassVar[type[Task]] = ButtonTask
    env_id: ClassVar[str] = "cmdp_envs/PointButton1-v0"
    kind: ClassVar[str] = "button"
    max_episode_steps: ClassVar[int] = 1000
    button_size: ClassVar[float] = 0.1
    hazard_size: ClassVar[float] = 0.2
    gremlin_size: ClassVar[float] = 0.1
    #: The radius of the gremlins' circles and their angular speed (rad/s).
    gremlin_travel: ClassVar[float] = 0.35
    #: Steps after a press during which the buttons' lidar reads zero and wrong presses cost nothing.
    resampling_delay: ClassVar[int] = 10
    lidar_max_dist: ClassVar[float] = 3.0

    def __init__(
        self,
        level: int = 1,
        constrain_indicator: bool = True,
        cost_limit: ParameterDistribution = Fixed(2.5),
        mass_scale: ParameterDistribution = Fixed(1.0),
        damping_scale: ParameterDistribution = Fixed(1.0),
        gain_scale: ParameterDistribution = Fixed(1.0),
        cost_semantics: CostSemantics = "discounted",
        gamma: float = 0.99,
    ):
        super().__init__(cost_limit, mass_scale, damping_scale, gain_scale, cost_semantics, gamma)
        _check_level(level)
        _check_bool("constrain_indicator", constrain_indicator)
        self.level = level
        self.constrain_indicator = constrain_indicator
        self.n_buttons = 4
        self.n_hazards, self.n_gremlins = ((4, 4), (8, 6))[level - 1]
        half = (1.5, 1.8)[level - 1]
        self.placement = Placement(
            extents=(-half, -half, half, half),
            groups=((AGENT, 0.4, 1), ("buttons", 0.2, self.n_buttons), ("goal", 0.4, 1),
                    ("hazards", 0.18, self.n_hazards), ("gremlins", 0.4, self.n_gremlins)),
        )
        self.layout_slots = {"agent": None, "buttons": self.n_buttons, "hazards": self.n_hazards,
                             "gremlins": self.n_gremlins}
        self._finish_init()

    def _from_layout(self, layout: dict[str, list[tuple[np.ndarray, float]]], heading: float,
                     rng: np.random.RandomState, values: dict[str, Any]) -> ButtonTask:
        (agent, _), = layout[AGENT]
        # Safety-Gymnasium's reset picks the goal button next (its placed "goal" only shaped the layout).
        return ButtonTask(agent=(*_xy(agent), heading), buttons=tuple(_xy(p) for p, _ in layout["buttons"]),
                          goal_button=int(rng.choice(self.n_buttons)),
                          hazards=tuple(_xy(p) for p, _ in layout["hazards"]),
                          gremlins=tuple(_xy(p) for p, _ in layout["gremlins"]), **values)

    def task(self, layout_seed: int | None = None, **params: Any) -> ButtonTask:
        goal_button = params.pop("goal_button", None)
        task = super().task(layout_seed=layout_seed, **params)
        if goal_button is not None:
            task = dataclasses.replace(task, goal_button=check_count("goal_button", goal_button))
            self.check_task(task)
        return task

    def check_task(self, task: Task) -> None:
        super().check_task(task)
        if len(task.buttons) != self.n_buttons or not 0 <= task.goal_button < self.n_buttons:
            raise ValueError(f"a task has {self.n_buttons} buttons and goal_button in [0, {self.n_buttons - 1}], "
                             f"got {len(task.buttons)} buttons and goal_button {task.goal_button!r}")

    def describe(self) -> str:
        return "\n".join([
            self._layout_line() + "; the first goal button drawn after",
            super().describe(),
            f"cost: {'indicators (Safety-Gymnasium default)' if self.constrain_indicator else 'counts and depth'}; "
            f"limit read as {self.cost_semantics}",
        ])


def _xy(point: np.ndarray) -> Point2:
    return float(point[0]), float(point[1])


def _check_level(level: Any) -> None:
    if isinstance(level, bool) or level not in (1, 2):
        raise ValueError(f"level must be 1 or 2, got {level!r}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {value!r}")


class CircleFamily(PointFamily):
    """Circle tasks: run along a circle of radius ``R`` centred at the origin, counter-clockwise and fast, without
    crossing the walls.

    Level 1 (``SafetyPointCircle1``) has two walls at ``|x| = 1.125`` and ``R = 1.5``; level 2 adds the walls at
    ``|y| = 1.125``. Meta-CPO's distribution (:meth:`meta_cpo`) draws ``R ~ U[1.0, 1.5]`` and the walls at
    ``R * U[0.55, 0.75]`` (``wall_factor``). The robot starts uniform in ``[-0.8, 0.8]^2`` with a uniform heading,
    drawn at every reset.

    :param level: 1 (two walls) or 2 (four walls).
    :param radius: distribution of ``R``.
    :param wall_factor: ``None`` (walls at ``wall``) or the distribution of the walls' distance as a fraction of
        ``R``.
    :param wall: distribution of the walls' distance when ``wall_factor`` is ``None``.
    :param cost_limit, mass_scale, damping_scale, gain_scale, cost_semantics, gamma: see :class:`PointFamily`.
        The default limit, 5.0 discounted at ``gamma = 0.99``, is the per-step rate of OmniSafe's 25 per 500-step
        episode.
    """

    task_type: ClassVar[type[Task]] = CircleTask
    env_id: ClassVar[str] = "cmdp_envs/PointCircle1-v0"
    kind: ClassVar[str] = "circle"
    max_episode_steps: ClassVar[int] = 500
    lidar_max_dist: ClassVar[float] = 6.0
    #: The reward's scale (Safety-Gymnasium's ``reward_factor``).
    reward_factor: ClassVar[float] = 0.1
    start_extent: ClassVar[float] = 0.8

    def __init__(
        self,
        level: int = 1,
        radius: ParameterDistribution = Fixed(1.5),
        wall: ParameterDistribution = Fixed(1.125),
        wall_factor: ParameterDistribution | None = None,
        cost_limit: ParameterDistribution = Fixed(5.0),
        mass_scale: ParameterDistribution = Fixed(1.0),
        damping_scale: ParameterDistribution = Fixed(1.0),
        gain_scale: ParameterDistribution = Fixed(1.0),
        cost_semantics: CostSemantics = "discounted",
        gamma: float = 0.99,
    ):
        super().__init__(cost_limit, mass_scale, damping_scale, gain_scale, cost_semantics, gamma)
        _check_level(level)
        self.level = level
        self.four_walls = level == 2
        if wall_factor is not None and not isinstance(wall_factor, ParameterDistribution):
            raise TypeError(f"wall_factor must be a ParameterDistribution or None, got {wall_factor!r}")
        self.wall_factor = wall_factor
        # With a wall factor the wall is derived from the radius, so it is not a parameter of its own.
        self.parameters |= {"radius": radius} if wall_factor is not None else {"radius": radius, "wall": wall}
        self._check_distributions()
        self.check_support()

    @classmethod
    def meta_cpo(cls, **overrides: Any) -> CircleFamily:
        """Meta-CPO's Circle distribution: ``R ~ U[1.0, 1.5]``, walls at ``R * U[0.55, 0.75]``."""
        settings: dict[str, Any] = {"radius": Uniform(1.0, 1.5), "wall_factor": Uniform(0.55, 0.75)} | overrides
        return cls(**settings)

    def sample(self, n: int, seed: SeedLike = None) -> list[CircleTask]:
        n = check_count("n", n)
        rng = as_generator(seed)
        draws = {name: dist.sample(rng, n) for name, dist in self.parameters.items()}
        if self.wall_factor is not None:
            draws["wall"] = [r * f for r, f in zip(draws["radius"], self.wall_factor.sample(rng, n))]
        return [self.task(**{name: values[i] for name, values in draws.items()}) for i in range(n)]

    def task(self, **params: Any) -> CircleTask:
        """An explicit task; with a ``wall_factor``, ``wall`` defaults to ``radius`` times the factor's default and
        an explicit ``wall`` must keep ``wall / radius`` in the factor's range."""
        if self.wall_factor is None:
            return super().task(**params)
        values = self.parameter_values({k: v for k, v in params.items() if k != "wall"}, also_accepted=("wall",))
        wall = params.get("wall")
        wall = values["radius"] * self.wall_factor.default if wall is None else check_number("wall", wall, 0.0)
        task = CircleTask(wall=wall, **values)
        self.check_task(task)
        return task

    def describe(self) -> str:
        lines = [super().describe()]
        if self.wall_factor is not None:
            lines.append(f"wall: radius times {self.wall_factor.describe()}")
        lines.append(f"walls: {'four' if self.four_walls else 'two'}; limit read as {self.cost_semantics}")
        return "\n".join(lines)

    def check_task(self, task: Task) -> None:
        if not isinstance(task, CircleTask):
            raise ValueError(f"expected a CircleTask, got {type(task).__name__}: {task!r}")
        super().check_task(task)
        if self.wall_factor is not None:
            self.wall_factor.validate("wall / radius", task.wall / task.radius)
        elif not task.wall > 0:
            raise ValueError(f"task parameter 'wall' = {task.wall!r} must be > 0")
        if not task.radius > 0:
            raise ValueError(f"task parameter 'radius' = {task.radius!r} must be > 0")

    def check_support(self) -> None:
        """Every combination of the extremes of the radius and of the wall (or wall factor) is a valid task."""
        walls = self.wall_factor.extremes() if self.wall_factor is not None else self.parameters["wall"].extremes()
        for radius in self.parameters["radius"].extremes():
            for wall in walls:
                self.task(radius=radius, wall=radius * wall if self.wall_factor is not None else wall)
