"""Gymnasium environments for the navigation families: :class:`NavigationEnv` (one world) and
:class:`NavigationVectorEnv` (``num_envs`` worlds stepped by one numpy call, each with its own task)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from cmdp_envs.families.navigation.render import render_world
from cmdp_envs.families.navigation.tasks import ButtonFamily, CircleFamily, GoalFamily, PointFamily, PointTask
from cmdp_envs.families.navigation.world import PointWorld, make_world
from cmdp_envs.task import Task, check_count
from cmdp_envs.validation import check_reset_options

__all__ = ["RobotState", "NavigationEnv", "NavigationVectorEnv", "make_family"]

RESET_OPTIONS: tuple[str, ...] = ("task", "state")
VECTOR_RESET_OPTIONS: tuple[str, ...] = ("task", "tasks")
_FAMILIES: dict[str, type[PointFamily]] = {family.kind: family for family in (GoalFamily, ButtonFamily, CircleFamily)}


@dataclasses.dataclass(frozen=True)
class RobotState:
    """The robot's pose ``(x, y, heading)`` and velocity ``(vx, vy, omega)`` in the world frame, to start an episode
    from (``reset(options={"state": ...})``), e.g. one read from Safety-Gymnasium."""

    position: tuple[float, float, float]
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)


def make_family(kind: str, family: PointFamily | None, family_kwargs: dict[str, Any],
                id_defaults: dict[str, Any] | None = None) -> PointFamily:
    """``family`` itself, or a new family of ``kind`` (``"goal"``, ``"button"`` or ``"circle"``) from the id's
    ``id_defaults`` (e.g. ``level``) overridden by ``family_kwargs``."""
    if kind not in _FAMILIES:
        raise ValueError(f"kind must be one of {sorted(_FAMILIES)}, got {kind!r}")
    family_class = _FAMILIES[kind]
    if family is not None:
        if family_kwargs:
            raise ValueError(f"pass either family or family keyword arguments, not both: {sorted(family_kwargs)}")
        if not isinstance(family, family_class):
            raise TypeError(f"family must be a {family_class.__name__}, got {family!r}")
        return family
    try:
        return family_class(**{**(id_defaults or {}), **family_kwargs})
    except TypeError as error:
        raise TypeError(f"{family_class.__name__}: {error}") from None


def _observation_space(world: PointWorld) -> spaces.Box:
    # Sensors are unbounded, lidar bins lie in [0, 1] (Safety-Gymnasium's spaces, float64 as there).
    low = np.full(world.observation_size, -np.inf)
    high = np.full(world.observation_size, np.inf)
    low[12:], high[12:] = 0.0, 1.0
    return spaces.Box(low, high, dtype=np.float64)


def _action_space() -> spaces.Box:
    return spaces.Box(-1.0, 1.0, (2,), dtype=np.float64)


def _check_action(action: Any, shape: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(action, dtype=float) if not isinstance(action, (str, bytes)) else None
    if array is None or array.shape != shape or not np.all(np.isfinite(array)):
        raise ValueError(f"action must be finite numbers of shape {shape} (clipped to [-1, 1]), got {action!r}")
    return array


class NavigationEnv(gym.Env):
    """Safety-Gymnasium's point-robot navigation tasks as task families, in numpy.

    ## Description
    A point robot (Safety-Gymnasium's ``Point``: a sphere with a nose, pushed forward by one actuator and turned by
    a velocity servo) moves on the plane. **Goal** tasks: reach a goal disc (radius 0.3); when reached, a new goal
    is drawn; hazards (radius 0.2) cost; at level 2 vases cost when touched or moving. **Button** tasks: press the
    goal button among four (a new goal button is drawn after each press), without pressing the others and
    without touching the gremlins, boxes that circle their centres. **Circle** tasks: run counter-clockwise along a
    circle of radius ``R`` round the origin without crossing the walls. Contacts with vases, buttons and gremlins
    follow planar models (:mod:`.world`) that agree with Safety-Gymnasium's MuJoCo contacts in distribution.
    The dynamics are Safety-Gymnasium's MuJoCo model in closed form (:mod:`.robot`): from the same state and actions
    they agree with MuJoCo to about 1e-12 while the turning servo is saturated. Unsaturated, MuJoCo's own explicit
    treatment of the servo is unstable at its 2 ms step (the servo's gain times the step over the inertia is 6.3,
    above Euler's limit of 2): the turn rate chatters and rounding differences grow about eightfold per step, so
    MuJoCo started 1e-15 apart from itself parts after about ten steps. Trajectories then agree in distribution.

    ## Action Space
    ``Box(-1, 1, (2,), float64)``: forward force command and turn-rate command (clipped to ``[-1, 1]``; the
    actuators saturate at 0.05, as in Safety-Gymnasium).

    ## Observation Space
    ``Box(float64)`` in Safety-Gymnasium's order: accelerometer (3), velocimeter (3), gyro (3), magnetometer (3),
    then 16-bin pseudo-lidars: Goal: goal (unless ``hidden_goal``), hazards, vases (60 dims); Button: buttons (zero
    for 10 steps after a press), goal button, hazards, gremlins (76 dims); Circle: the circle's centre with
    ``max_dist = 6`` (28 dims). A policy trained on one runs on the other.

    ## Starting State
    Goal and Button: the task's start pose. Circle: uniform in ``[-0.8, 0.8]^2`` with a uniform heading.
    ``reset(options={"state": RobotState(...)})`` starts from a given pose and velocity.

    ## Rewards
    Goal: ``d_prev - d + 1[d <= 0.3]`` with ``d`` the distance from the robot to the goal. Button: ``d_prev - d``
    to the goal button, plus 1 on the step it is pressed. Circle:
    ``0.1 (-u y + v x) / rho / (1 + |rho - R|)``, with ``(u, v)`` the world velocity and ``rho`` the distance to
    the centre.

    ## Costs
    Per-source costs in ``info``: ``cost_hazards`` (within 0.2 of a hazard centre), level 2 ``cost_vases_contact``
    (vases touched) and ``cost_vases_velocity`` (vases moving faster than 1e-4 m/s, also after the push), Button
    ``cost_buttons`` (wrong buttons pressed, except in the 10 steps after a press) and ``cost_gremlins`` (gremlins
    touched), Circle ``cost_out_of_boundary`` (beyond a wall). As in Safety-Gymnasium (``constrain_indicator=True``,
    the default) each source and ``info["cost"]`` are indicators: 1 when positive, so a step costs at most 1. With
    ``constrain_indicator=False`` hazards cost their depth ``0.2 - d``, vases one per contact plus their speeds in
    m/s, and ``info["cost"]`` is the sum. The limit's semantics is the
    family's ``cost_semantics``: ``"discounted"`` (default, ``E[sum_t gamma^t c_t] <= d``) or ``"undiscounted"``
    (the episode sum, Safety-Gymnasium's and OmniSafe's reading).

    ## Task distribution
    See :class:`~.tasks.GoalFamily`, :class:`~.tasks.ButtonFamily` and :class:`~.tasks.CircleFamily`: layouts from
    Safety-Gymnasium's placement procedure (``family.task(layout_seed=s)`` is its layout for seed ``s``), C-MAML's
    goal arc, circle radius and walls, dynamics scales, cost limit.

    ## Episode End
    No termination. Truncation after ``max_episode_steps`` (1,000 for Goal and Button, 500 for Circle).

    ## Information
    ``reset``: ``{"task": task, "cost": 0.0}``; ``step``: ``{"cost": c, <source>: c_source, ...}``, plus
    ``"goal_met"`` for Goal and Button.

    ## Arguments
    ``gym.make(id, render_mode=None, task=None, family=None, **family_kwargs)``: ``family_kwargs`` (e.g. ``level``,
    ``goal_arc``, ``cost_semantics``, parameter distributions) override the id's defaults (``id_defaults``) and build
    a :class:`~.tasks.GoalFamily`, :class:`~.tasks.ButtonFamily` or :class:`~.tasks.CircleFamily` (``kind``); or pass
    a ready ``family``.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, kind: str = "goal", family: PointFamily | None = None, task: PointTask | None = None,
                 render_mode: str | None = None, id_defaults: dict[str, Any] | None = None, **family_kwargs: Any):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.family = make_family(kind, family, family_kwargs, id_defaults)
        self.render_mode = render_mode
        self._world = make_world(self.family, 1)
        self.observation_space = _observation_space(self._world)
        self.action_space = _action_space()
        self.task: PointTask = self.family.default_task
        self.set_task(task if task is not None else self.family.default_task)
        self._started = False

    def set_task(self, task: PointTask) -> None:
        """Make ``task`` the task of the next episode (it must be a valid task of ``self.family``)."""
        self.family.check_task(task)
        self.task = task
        self._world.set_task(0, task)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = check_reset_options(options, RESET_OPTIONS)
        state = options.get("state")
        if state is not None and not isinstance(state, RobotState):
            raise TypeError(f"options['state'] must be a RobotState, got {state!r}")
        if "task" in options:
            self.set_task(options["task"])
        super().reset(seed=seed)
        self._world.reset(0, self.np_random, state)
        self._started = True
        return self._world.observation()[0], {"task": self.task, "cost": 0.0}

    def step(self, action: Any):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        # The common case (a float array of two finite numbers) checked on Python floats: numpy's checks cost more
        # than a step here.
        pair = action.tolist() if isinstance(action, np.ndarray) and action.shape == (2,) and action.dtype.kind == "f" \
            else None
        if pair is None or not (math.isfinite(pair[0]) and math.isfinite(pair[1])):
            pair = _check_action(action, (2,)).tolist()
        reward, info = self._world.step_one((float(pair[0]), float(pair[1])), self.np_random)
        info["cost"] = self._world.total_cost(info)
        if hasattr(self._world, "goal_met"):
            info["goal_met"] = bool(self._world.goal_met[0])
        return self._world.observation()[0], float(reward), False, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        return render_world(self._world, 0, self._world.observation()[0])


def _vector_base_init(env: gym.vector.VectorEnv, num_envs: int, single_observation: spaces.Space,
                      single_action: spaces.Space) -> None:
    """Set the vector-env attributes on Gymnasium 1.x (plain attributes) and 0.28.1 (constructor arguments)."""
    from gymnasium.vector.utils import batch_space

    try:
        gym.vector.VectorEnv.__init__(env, num_envs, single_observation, single_action)  # type: ignore[call-arg]
    except TypeError:  # Gymnasium 1.x: no constructor arguments
        env.num_envs = num_envs
        env.single_observation_space = single_observation
        env.single_action_space = single_action
        env.observation_space = batch_space(single_observation, num_envs)
        env.action_space = batch_space(single_action, num_envs)


class NavigationVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` navigation worlds stepped together by one numpy call; each sub-env has its own task.

    ``reset(seed=..., options={"tasks": [...]})`` gives sub-env ``i`` the task ``tasks[i % len(tasks)]`` (so a list of
    ``num_envs`` tasks, or a shorter list cycled); ``{"task": t}`` gives every sub-env ``t``. Sub-envs keep their tasks
    across automatic resets.

    Autoreset: ``"next_step"`` (Gymnasium 1.x's default, declared in ``metadata["autoreset_mode"]``): the step after
    a sub-env's episode ends resets it, ignores its action and reports reward 0 and cost 0. ``"same_step"``: a
    finished sub-env is reset in the same step, its last observation in ``info["final_obs"]`` and its last info in
    ``info["final_info"]`` (the convention SB3 needs). ``info`` holds arrays (``cost`` and every cost source, with
    ``_<key>`` masks), the way Gymnasium 1.x vector envs report them.

    Made by ``gym.make_vec(id, num_envs, vectorization_mode="vector_entry_point")`` on Gymnasium 1.x, or directly
    (``NavigationVectorEnv(num_envs, kind=..., family=...)``) on any Gymnasium.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50, "autoreset_mode": "next_step"}

    def __init__(self, num_envs: int = 1, kind: str = "goal", family: PointFamily | None = None,
                 max_episode_steps: int | None = None, autoreset_mode: str = "next_step",
                 render_mode: str | None = None, id_defaults: dict[str, Any] | None = None, **family_kwargs: Any):
        num_envs = check_count("num_envs", num_envs, minimum=1)
        if autoreset_mode not in ("next_step", "same_step"):
            raise ValueError(f"autoreset_mode must be 'next_step' or 'same_step', got {autoreset_mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.family = make_family(kind, family, family_kwargs, id_defaults)
        self.max_episode_steps = check_count(
            "max_episode_steps", max_episode_steps if max_episode_steps is not None else self.family.max_episode_steps,
            minimum=1,
        )
        self._world = make_world(self.family, num_envs)
        _vector_base_init(self, num_envs, _observation_space(self._world), _action_space())
        self.metadata = dict(self.metadata, autoreset_mode=self._autoreset_enum(autoreset_mode))
        self.autoreset_mode = autoreset_mode
        self.render_mode = render_mode
        self.tasks: list[PointTask] = [self.family.default_task] * num_envs
        self._elapsed = np.zeros(num_envs, dtype=np.int64)
        self._needs_reset = np.zeros(num_envs, dtype=bool)
        self._started = False
        self._np_random = np.random.default_rng()
        for index in range(num_envs):
            self._world.set_task(index, self.tasks[index])

    @staticmethod
    def _autoreset_enum(mode: str) -> Any:
        try:
            from gymnasium.vector import AutoresetMode  # Gymnasium >= 1.1
        except ImportError:
            return mode
        return AutoresetMode.NEXT_STEP if mode == "next_step" else AutoresetMode.SAME_STEP

    @property
    def np_random(self) -> np.random.Generator:
        return self._np_random

    def set_tasks(self, tasks: list[Task]) -> None:
        """Sub-env ``i`` gets ``tasks[i % len(tasks)]`` from its next episode on (every task is checked first)."""
        if isinstance(tasks, Task) or not isinstance(tasks, (list, tuple)) or not tasks:
            raise ValueError(f"tasks must be a non-empty list of tasks, got {tasks!r}")
        for task in tasks:
            self.family.check_task(task)
        for index in range(self.num_envs):
            self.tasks[index] = tasks[index % len(tasks)]
            self._world.set_task(index, self.tasks[index])

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = check_reset_options(options, VECTOR_RESET_OPTIONS)
        if "task" in options and "tasks" in options:
            raise ValueError("pass either options['task'] or options['tasks'], not both")
        if "tasks" in options:
            self.set_tasks(options["tasks"])
        elif "task" in options:
            self.set_tasks([options["task"]])
        if seed is not None:
            self._np_random = np.random.default_rng(check_count("seed", seed))
        for index in range(self.num_envs):
            self._world.reset(index, self._np_random)
        self._elapsed[:] = 0
        self._needs_reset[:] = False
        self._started = True
        tasks = np.array(self.tasks, dtype=object)
        return self._world.observation(), {"task": tasks, "_task": np.ones(self.num_envs, dtype=bool)}

    def step(self, actions: Any):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        actions = _check_action(actions, (self.num_envs, 2))
        resetting = self._needs_reset
        reward, costs = self._world.step(actions, self._np_random)
        self._elapsed += 1
        truncated = self._elapsed >= self.max_episode_steps
        terminated = np.zeros(self.num_envs, dtype=bool)
        cost = self._world.total_cost(costs)
        infos: dict[str, Any] = {"cost": cost, **costs}
        if hasattr(self._world, "goal_met"):
            infos["goal_met"] = self._world.goal_met.copy()
        if self.autoreset_mode == "next_step":
            if resetting.any():
                # Sub-envs that finished last step restart now: their step was not taken as an episode step.
                for index in np.flatnonzero(resetting):
                    self._world.reset(index, self._np_random)
                self._elapsed[resetting] = 0
                truncated[resetting] = False
                reward = np.where(resetting, 0.0, reward)
                for key in ("cost", *costs):
                    infos[key] = np.where(resetting, 0.0, infos[key])
                if "goal_met" in infos:
                    infos["goal_met"] &= ~resetting
            observation = self._world.observation()
            self._needs_reset = truncated | terminated
        else:
            observation = self._world.observation()
            done = truncated | terminated
            if done.any():
                final_obs = np.full(self.num_envs, None, dtype=object)
                final_info = np.full(self.num_envs, None, dtype=object)
                for index in np.flatnonzero(done):
                    final_obs[index] = observation[index].copy()
                    final_info[index] = {key: value[index] for key, value in infos.items()}
                    self._world.reset(index, self._np_random)
                    self._elapsed[index] = 0
                observation = self._world.observation()
                infos["final_obs"], infos["_final_obs"] = final_obs, done.copy()
                infos["final_info"], infos["_final_info"] = final_info, done.copy()
        mask = np.ones(self.num_envs, dtype=bool)
        for key in ("cost", *costs, "goal_met"):
            if key in infos:
                infos[f"_{key}"] = mask
        return observation, reward, terminated, truncated, infos

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        observation = self._world.observation()
        return tuple(render_world(self._world, index, observation[index]) for index in range(self.num_envs))

    def close_extras(self, **kwargs: Any) -> None:
        pass
