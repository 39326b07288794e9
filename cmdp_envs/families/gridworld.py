"""The 7 x 7 safe-navigation gridworld of Ni & Kamgarpour (2026, Section 6 and Appendix H.1) as a task family."""

from __future__ import annotations

import bisect
import dataclasses
import functools
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from cmdp_envs.tabular import TabularCMDP, cmdp_distance, cumulative_distribution
from cmdp_envs.task import ClippedNormal, Fixed, ParameterDistribution, Task, TaskFamily
from cmdp_envs.validation import check_discrete_action, check_family_kwargs, check_number, check_reset_options

__all__ = [
    "GridWorldTask",
    "GridWorldFamily",
    "GridWorldEnv",
    "PAPER_UNSAFE_CELLS",
    "PAPER_GOAL",
    "PAPER_TEST_NOISE_LEVELS",
]

SIZE = 7
Cell = tuple[int, int]

#: Action ``a`` moves by ``MOVES[a]`` in ``(x, y)``: 0 up (y+1), 1 right (x+1), 2 down (y-1), 3 left (x-1).
MOVES: tuple[Cell, ...] = ((0, 1), (1, 0), (0, -1), (-1, 0))
ACTION_ARROWS = ("↑", "→", "↓", "←")

PAPER_GOAL: Cell = (3, 6)
#: The two walls of unsafe cells, columns x = 2 and x = 4 over rows y = 1..4.
PAPER_UNSAFE_CELLS: tuple[Cell, ...] = tuple((x, y) for x in (2, 4) for y in range(1, 5))
#: The ten test noise levels of the paper's Figure 2, as in the authors' code.
PAPER_TEST_NOISE_LEVELS: tuple[float, ...] = (
    0.33994760, 0.25363799, 0.31864008, 0.30796535, 0.33609112,
    0.33084822, 0.31335413, 0.30405411, 0.34453611, 0.26760585,
)  # fmt: skip

GOAL_REWARD = 10.0
UNSAFE_COST = 10.0
#: The keys ``reset(options=...)`` takes; any other is refused, so a misspelt ``"task"`` is not silently ignored.
RESET_OPTIONS: tuple[str, ...] = ("task",)


def cell_to_state(cell: Cell) -> int:
    x, y = cell
    return SIZE * y + x


def state_to_cell(state: int) -> Cell:
    return state % SIZE, state // SIZE


def _in_grid(cell: Cell) -> bool:
    return 0 <= cell[0] < SIZE and 0 <= cell[1] < SIZE


def _move(cell: Cell, action: int) -> Cell:
    """The intended next cell; a move off the grid leaves the agent in place."""
    target = (cell[0] + MOVES[action][0], cell[1] + MOVES[action][1])
    return target if _in_grid(target) else cell


@functools.cache
def _noise_targets(noise_model: str) -> tuple[tuple[tuple[int, tuple[int, ...]], ...], ...]:
    """Per state and action, the intended next state and the states the noise spreads over (in the order the noise
    mass is added): the grid's geometry, the same for every task."""
    rows = []
    for s in range(SIZE * SIZE):
        cell = state_to_cell(s)
        row = []
        for a in range(len(MOVES)):
            intended = cell_to_state(_move(cell, a))
            if noise_model == "reference":
                spread = tuple({intended} | {cell_to_state(_move(cell, b)) for b in range(len(MOVES))
                                             if _move(cell, b) != cell})
            else:
                spread = tuple(cell_to_state(_move(cell, b)) for b in range(len(MOVES)))
            row.append((intended, spread))
        rows.append(tuple(row))
    return tuple(rows)


@dataclasses.dataclass(frozen=True)
class GridWorldTask(Task):
    """One gridworld CMDP.

    :param cost_limit: ``d``, the bound on the expected discounted cost.
    :param noise: the dynamics noise level ``i`` in ``[0, 0.5]``.
    :param goal: the absorbing, rewarding goal cell ``(x, y)``.
    :param unsafe_cells: the cells ``(x, y)`` that cost ``10`` per step spent in them.
    """

    cost_limit: float = 1.5
    noise: float = 0.3
    goal: Cell = PAPER_GOAL
    unsafe_cells: tuple[Cell, ...] = PAPER_UNSAFE_CELLS


NoiseModel = Literal["reference", "random_action"]


class GridWorldFamily(TaskFamily[GridWorldTask]):
    """A distribution over :class:`GridWorldTask`.

    The defaults are the paper's family: only the noise varies, ``i ~ Normal(0.3, 0.03)`` clipped to ``[0, 0.5]``.
    Pass other :class:`~cmdp_envs.task.ParameterDistribution` objects to vary the goal (reward), the unsafe layout and
    cost limit (constraint) and the noise (dynamics); :meth:`varied` is such a family.

    :param noise: distribution of the noise level (the paper's valid range is ``[0, 0.5]``; never beyond ``[0, 1]``).
    :param goal: distribution of the goal cell.
    :param unsafe_cells: distribution of the unsafe layout (a tuple of cells).
    :param cost_limit: distribution of the cost limit ``d``.
    :param noise_model: ``"reference"`` (default): from a non-goal cell the intended next cell gets ``1 - i`` and
        ``i`` is spread uniformly over {intended cell} ∪ {in-grid 4-neighbours}; this is the authors' code and
        reproduces their optimal values. ``"random_action"``: the paper's prose, with probability ``i`` the action is
        replaced by a uniformly random one (each of the four with ``i / 4``).
    :param gamma: discount factor, a real number in ``[0, 1)``.
    """

    task_type: ClassVar[type[Task]] = GridWorldTask
    env_id: ClassVar[str] = "cmdp_envs/GridWorld-v0"

    def __init__(
        self,
        noise: ParameterDistribution = ClippedNormal(mean=0.3, std=0.03, low=0.0, high=0.5),
        goal: ParameterDistribution = Fixed(PAPER_GOAL),
        unsafe_cells: ParameterDistribution = Fixed(PAPER_UNSAFE_CELLS),
        cost_limit: ParameterDistribution = Fixed(1.5),
        noise_model: NoiseModel = "reference",
        gamma: float = 0.9,
    ):
        if noise_model not in ("reference", "random_action"):
            raise ValueError(f"noise_model must be 'reference' or 'random_action', got {noise_model!r}")
        gamma = check_number("gamma", gamma, 0.0, 1.0, high_open=True)
        for name, dist in (("noise", noise), ("goal", goal), ("unsafe_cells", unsafe_cells), ("cost_limit", cost_limit)):
            if not isinstance(dist, ParameterDistribution):
                raise TypeError(f"{name} must be a ParameterDistribution, got {dist!r}")
        self.parameters = {"cost_limit": cost_limit, "noise": noise, "goal": goal, "unsafe_cells": unsafe_cells}
        self.noise_model: NoiseModel = noise_model
        self.gamma = gamma
        self.check_support()
        self._caches()

    def _caches(self) -> None:
        self._cmdps = functools.lru_cache(maxsize=256)(self._build_cmdp)
        self._step_tables = functools.lru_cache(maxsize=256)(self._build_step_tables)

    def __getstate__(self) -> dict[str, Any]:
        # The per-instance cache cannot be pickled (process pools, Ray); it is rebuilt on arrival.
        state = self.__dict__.copy()
        del state["_cmdps"], state["_step_tables"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._caches()

    @classmethod
    def varied(cls, **overrides: Any) -> GridWorldFamily:
        """A family over rewards, constraints and dynamics together: the goal is one of five border cells, the unsafe
        layout one of three, the cost limit ``~ Uniform[1, 2]`` and the noise as in the paper."""
        from cmdp_envs.task import Choice, Uniform

        kwargs: dict[str, Any] = {
            "goal": Choice(((3, 6), (0, 6), (6, 6), (0, 3), (6, 3))),
            "unsafe_cells": Choice(VARIED_UNSAFE_LAYOUTS),
            "cost_limit": Uniform(1.0, 2.0),
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def check_task(self, task: Task) -> None:
        super().check_task(task)
        assert isinstance(task, GridWorldTask)
        # The family's distributions set the valid ranges; these are the bounds outside which the model is undefined.
        if not 0.0 <= task.noise <= 1.0:
            raise ValueError(f"task parameter 'noise' = {task.noise!r} is outside [0, 1]")
        if task.cost_limit < 0.0:
            raise ValueError(f"task parameter 'cost_limit' = {task.cost_limit!r} must be >= 0")
        for cell in (task.goal, *task.unsafe_cells):
            if not (len(cell) == 2 and _in_grid(cell)):
                raise ValueError(f"cell {cell!r} is outside the {SIZE} x {SIZE} grid (x, y in 0..{SIZE - 1})")
        if task.goal in task.unsafe_cells:
            raise ValueError(f"the goal {task.goal} must not be an unsafe cell")

    def tabular(self, task: GridWorldTask) -> TabularCMDP:
        """The exact CMDP of ``task``: ``P`` (49, 4, 49), ``r`` and ``c`` (49, 4), ``mu`` (49,)."""
        return self._cmdps(task)

    def step_tables(self, task: GridWorldTask) -> tuple[list, list, list, list]:
        """Per state and action, Python lists (cumulative probabilities, next states, reward, cost) for fast
        single-environment stepping with :func:`bisect.bisect_right`."""
        return self._step_tables(task)

    def _build_cmdp(self, task: GridWorldTask) -> TabularCMDP:
        self.check_task(task)
        S, A = SIZE * SIZE, len(MOVES)
        goal = cell_to_state(task.goal)
        unsafe = [cell_to_state(cell) for cell in task.unsafe_cells]
        P = np.zeros((S, A, S))
        for s, rows in enumerate(_noise_targets(self.noise_model)):
            if s == goal:
                P[s, :, s] = 1.0
                continue
            for a, (intended, spread) in enumerate(rows):
                P[s, a, intended] += 1.0 - task.noise
                for target in spread:
                    P[s, a, target] += task.noise / len(spread)
        r = np.zeros((S, A))
        r[goal] = GOAL_REWARD
        c = np.zeros((S, A))
        c[unsafe] = UNSAFE_COST
        mu = np.ones(S)
        mu[unsafe] = 0.0
        mu /= mu.sum()
        return TabularCMDP(P=P, r=r, c=c, mu=mu, gamma=self.gamma, cost_limit=task.cost_limit)

    def _build_step_tables(self, task: GridWorldTask) -> tuple[list, list, list, list]:
        cmdp = self.tabular(task)
        cumulative, next_states = [], []
        for s in range(cmdp.n_states):
            targets = [np.flatnonzero(cmdp.P[s, a]) for a in range(cmdp.n_actions)]
            cumulative.append([cumulative_distribution(cmdp.P[s, a, t]).tolist() for a, t in enumerate(targets)])
            next_states.append([t.tolist() for t in targets])
        return cumulative, next_states, cmdp.r.tolist(), cmdp.c.tolist()

    def distance(self, task_1: GridWorldTask, task_2: GridWorldTask) -> float:
        """The exact CMDP distance of the two tasks' tabular models (:func:`cmdp_envs.tabular.cmdp_distance`)."""
        return cmdp_distance(self.tabular(task_1), self.tabular(task_2))

    def policy_text(self, task: GridWorldTask, policy: np.ndarray) -> str:
        """The policy's most likely action per cell as arrows on the grid (see :mod:`.gridworld_plots`)."""
        from cmdp_envs.families.gridworld_plots import policy_text

        return policy_text(task, policy)

    def draw_policy(self, ax: Any, task: GridWorldTask, policy: np.ndarray, title: str | None = None) -> None:
        """Draw the grid and the policy's action probabilities as arrows on a matplotlib axis."""
        from cmdp_envs.families.gridworld_plots import draw_policy

        draw_policy(ax, task, policy, title)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items())
        return f"GridWorldFamily({params}, noise_model={self.noise_model!r}, gamma={self.gamma})"


#: The unsafe layouts of :meth:`GridWorldFamily.varied`: the paper's two walls, two walls one column further out and
#: one row higher, and two staggered horizontal bars.
VARIED_UNSAFE_LAYOUTS: tuple[tuple[Cell, ...], ...] = (
    PAPER_UNSAFE_CELLS,
    tuple((x, y) for x in (1, 5) for y in range(2, 6)),
    tuple([(x, 2) for x in range(1, 4)] + [(x, 4) for x in range(3, 6)]),
)


class GridWorldEnv(gym.Env):
    """A 7 x 7 gridworld CMDP: reach the goal while limiting the discounted time spent in unsafe cells.

    ## Description
    The agent moves on a 7 x 7 grid of cells ``(x, y)``, ``x, y in 0..6``, indexed as states ``s = 7 y + x``. The goal
    cell (the paper's: ``(3, 6)``, top middle) is absorbing and pays a reward at every step spent in it. Two walls of
    unsafe cells (the paper's: columns ``x = 2`` and ``x = 4`` over rows ``y = 1..4``) cost at every step spent in them.
    The shortest way to the goal runs up the middle column between the walls; with more noise that corridor grows
    riskier and the optimal constrained policy goes round along the border. This is the environment of Ni & Kamgarpour
    (2026), Section 6 and Appendix H.1, with the dynamics of the authors' code.

    ## Action Space
    ``Discrete(4)``: 0 up (y + 1), 1 right (x + 1), 2 down (y - 1), 3 left (x - 1).

    ## Observation Space
    ``Discrete(49)``, the state index, by default; with ``observation_type="onehot"``, ``Box(0, 1, (49,), float32)``.

    ## Starting State
    Uniform over the 41 cells that are not unsafe (the goal included), as in the authors' code.

    ## Transitions
    A move off the grid leaves the agent in place. With noise ``i`` (``noise_model="reference"``) the intended next
    cell gets probability ``1 - i`` and ``i`` is spread uniformly over the set {intended cell} ∪ {in-grid
    4-neighbours of the current cell}. ``noise_model="random_action"`` instead replaces the action by a uniformly random
    one with probability ``i``. The goal is absorbing.

    ## Rewards
    ``10`` for every action taken in the goal cell, ``0`` elsewhere.

    ## Costs
    ``info["cost"] = 10.0`` for every action taken in an unsafe cell, ``0.0`` elsewhere. A policy is feasible when its
    expected discounted cost ``J_c = E[sum_t gamma^t c_t]`` (``gamma = 0.9``, not normalised) is at most
    ``task.cost_limit`` (the paper's ``d = 1.5``).

    ## Task distribution
    ``cmdp_envs/GridWorld-v0`` (the paper's family): the noise ``i ~ Normal(0.3, 0.03)`` clipped to ``[0, 0.5]``; goal,
    layout and cost limit fixed. ``cmdp_envs/GridWorldVaried-v0``: also the goal (one of five border cells), the unsafe
    layout (one of three) and the cost limit (``Uniform[1, 2]``). The env starts on the family's default task (the
    mean noise); set another with ``env.unwrapped.set_task(task)`` or ``env.reset(options={"task": task})`` (the only
    reset option: any other key raises ``ValueError``), or draw a new one at every reset with
    :class:`cmdp_envs.wrappers.TaskSampling`.

    ## Episode End
    There is no terminal state: the goal is absorbing. Episodes end by truncation after ``max_episode_steps`` (200 as
    registered; ``0.9^200 < 1e-9``, so truncation changes the discounted values by less than ``1e-7``). The authors'
    test loop uses 600 steps: ``gym.make(..., max_episode_steps=600)`` reproduces it.

    ## Information
    ``reset`` returns ``info = {"task": task, "cost": 0.0}``; ``step`` returns ``info = {"cost": c}``.

    ## Arguments
    ``gym.make("cmdp_envs/GridWorld-v0", observation_type="discrete", render_mode=None, task=None, family=None,
    **family_kwargs)``: ``family_kwargs`` (``noise``, ``goal``, ``unsafe_cells``, ``cost_limit`` distributions,
    ``noise_model``, ``gamma``) override the defaults of the id's family (``variant="paper"`` or ``"varied"``, set
    by the registered id); or pass a ready ``family``, which then replaces the id's. ``task`` is the initial task
    (default: the family's default task). Any other keyword argument raises ``TypeError`` listing the accepted ones.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        family: GridWorldFamily | None = None,
        task: GridWorldTask | None = None,
        observation_type: Literal["discrete", "onehot"] = "discrete",
        render_mode: str | None = None,
        variant: Literal["paper", "varied"] = "paper",
        **family_kwargs: Any,
    ):
        check_family_kwargs(type(self), GridWorldFamily, family_kwargs)
        if family is not None and family_kwargs:
            raise ValueError(f"pass either family or family keyword arguments, not both: {sorted(family_kwargs)}")
        if family is not None and not isinstance(family, GridWorldFamily):
            raise TypeError(f"family must be a GridWorldFamily or None, got {family!r}")
        if variant not in ("paper", "varied"):
            raise ValueError(f"variant must be 'paper' or 'varied', got {variant!r}")
        if observation_type not in ("discrete", "onehot"):
            raise ValueError(f"observation_type must be 'discrete' or 'onehot', got {observation_type!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        if family is None:
            family = GridWorldFamily(**family_kwargs) if variant == "paper" else GridWorldFamily.varied(**family_kwargs)
        self.family = family
        self.observation_type = observation_type
        self.render_mode = render_mode
        n_states = SIZE * SIZE
        self.action_space = spaces.Discrete(len(MOVES))
        if observation_type == "discrete":
            self.observation_space = spaces.Discrete(n_states)
        else:
            self.observation_space = spaces.Box(0.0, 1.0, (n_states,), dtype=np.float32)
            self._one_hot = np.eye(n_states, dtype=np.float32)
        self.task: GridWorldTask = self.family.default_task
        self.set_task(task if task is not None else self.family.default_task)
        self._state: int | None = None

    def set_task(self, task: GridWorldTask) -> None:
        """Make ``task`` the task in force from the next step on (it must be a valid task of ``self.family``)."""
        self.family.check_task(task)
        tables = self.family.step_tables(task)
        self.task = task
        self._cumulative, self._next_states, self._reward, self._cost = tables
        self._mu_cumulative = cumulative_distribution(self.family.tabular(task).mu).tolist()

    def tabular(self) -> TabularCMDP:
        """The exact :class:`~cmdp_envs.tabular.TabularCMDP` of the task in force."""
        return self.family.tabular(self.task)

    def _observation(self, state: int) -> int | np.ndarray:
        if self.observation_type == "discrete":
            return state
        return self._one_hot[state].copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = check_reset_options(options, RESET_OPTIONS)
        if "task" in options:
            self.set_task(options["task"])  # validates first: a bad task leaves the env and its seed untouched
        super().reset(seed=seed)
        self._state = bisect.bisect_right(self._mu_cumulative, float(self.np_random.random()))
        return self._observation(self._state), {"task": self.task, "cost": 0.0}

    def step(self, action: int):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        s, a = self._state, check_discrete_action(self.action_space, action)
        i = bisect.bisect_right(self._cumulative[s][a], float(self.np_random.random()))
        self._state = self._next_states[s][a][i]
        return self._observation(self._state), self._reward[s][a], False, False, {"cost": self._cost[s][a]}

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        if self.render_mode == "ansi":
            return self._render_text()
        return self._render_rgb()

    def _render_text(self) -> str:
        rows = []
        for y in reversed(range(SIZE)):
            row = []
            for x in range(SIZE):
                s = cell_to_state((x, y))
                if s == self._state:
                    row.append("A")
                elif (x, y) == self.task.goal:
                    row.append("G")
                elif (x, y) in self.task.unsafe_cells:
                    row.append("X")
                else:
                    row.append(".")
            rows.append(" ".join(row))
        return "\n".join(rows) + "\n"

    def _render_rgb(self, cell_pixels: int = 32) -> np.ndarray:
        image = np.full((SIZE * cell_pixels, SIZE * cell_pixels, 3), 255, dtype=np.uint8)

        def block(cell: Cell) -> tuple[slice, slice]:
            x, y = cell
            row = SIZE - 1 - y  # y = 6 is drawn at the top, as in the paper's figure
            return slice(row * cell_pixels, (row + 1) * cell_pixels), slice(x * cell_pixels, (x + 1) * cell_pixels)

        for cell in self.task.unsafe_cells:
            image[block(cell)] = (230, 80, 80)
        image[block(self.task.goal)] = (90, 190, 90)
        image[::cell_pixels, :] = 120
        image[:, ::cell_pixels] = 120
        image[-1, :] = 120
        image[:, -1] = 120
        if self._state is not None:
            rows, cols = block(state_to_cell(self._state))
            yy, xx = np.mgrid[0:cell_pixels, 0:cell_pixels]
            centre = (cell_pixels - 1) / 2
            disc = (yy - centre) ** 2 + (xx - centre) ** 2 <= (0.3 * cell_pixels) ** 2
            image[rows, cols][disc] = (40, 70, 200)
        return image
