"""A point robot on the plane that must find a hidden goal while avoiding a circular hazard: a small non-tabular task
family on continuous state, for demonstrating the meta algorithms with learned (SB3) oracles."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from cmdp_envs.task import ParameterDistribution, Task, TaskFamily, Uniform
from cmdp_envs.validation import check_discrete_action, check_family_kwargs, check_number, check_reset_options

__all__ = ["PointNavigationTask", "PointNavigationFamily", "PointNavigationEnv"]

#: Action ``a`` moves by ``STEP_SIZE * MOVES[a]`` in ``(x, y)``: 0 up, 1 right, 2 down, 3 left (as in the gridworld).
MOVES = np.array([(0.0, 1.0), (1.0, 0.0), (0.0, -1.0), (-1.0, 0.0)])
STEP_SIZE = 0.1
GOAL_RADIUS = 0.2
#: The start box: the initial position is uniform in ``[-0.1, 0.1] x [-0.9, -0.7]``.
START_LOW = np.array([-0.1, -0.9])
START_HIGH = np.array([0.1, -0.7])
#: Outside the goal disc the reward falls linearly with the distance to the goal, reaching 0 at this distance.
REWARD_REACH = 2.0
#: The keys ``reset(options=...)`` takes; any other is refused, so a misspelt ``"task"`` is not silently ignored.
RESET_OPTIONS: tuple[str, ...] = ("task",)

#: The bounds outside which the model is undefined; a family's distributions may only narrow them.
PARAMETER_BOUNDS: dict[str, tuple[float, float]] = {
    "cost_limit": (0.0, math.inf),
    "noise": (0.0, 0.5),
    "goal_x": (-1.0, 1.0),
    "goal_y": (-1.0, 1.0),
    "hazard_x": (-1.0, 1.0),
    "hazard_y": (-1.0, 1.0),
    "hazard_radius": (0.0, 1.0),
}


@dataclasses.dataclass(frozen=True)
class PointNavigationTask(Task):
    """One point-navigation CMDP.

    :param cost_limit: ``d``, the bound on the expected discounted cost.
    :param noise: standard deviation of the Gaussian position noise added at every step (dynamics).
    :param goal_x: x of the goal centre (reward).
    :param goal_y: y of the goal centre (reward).
    :param hazard_x: x of the hazard centre (constraint).
    :param hazard_y: y of the hazard centre (constraint).
    :param hazard_radius: radius of the hazard disc (constraint).
    """

    cost_limit: float = 1.0
    noise: float = 0.025
    goal_x: float = 0.0
    goal_y: float = 0.6
    hazard_x: float = 0.0
    hazard_y: float = -0.1
    hazard_radius: float = 0.275


class PointNavigationFamily(TaskFamily[PointNavigationTask]):
    """A distribution over :class:`PointNavigationTask`: rewards (goal), constraints (hazard, cost limit) and dynamics
    (noise) all vary, each parameter independently.

    Defaults, all uniform: goal in the box ``[-0.4, 0.4] x [0.5, 0.7]`` in the upper half; hazard centre in
    ``[-0.15, 0.15] x [-0.25, 0.05]`` with radius in ``[0.2, 0.35]`` (on or near the straight line from the start box
    to the goal, never over the start box or the goal centre); noise standard deviation in ``[0, 0.05]`` (at most
    half a step); cost limit in ``[0.5, 1.5]``.

    ``gamma = 0.95``: an effective horizon of 20 steps, enough to cross the square (the goal is about 14 steps from
    the start), and the 50-step truncation drops only ``0.95^50 < 0.08`` of the discounted weight.

    :param cost_limit: distribution of the cost limit ``d``.
    :param noise: distribution of the position-noise standard deviation.
    :param goal_x: distribution of the goal's x.
    :param goal_y: distribution of the goal's y.
    :param hazard_x: distribution of the hazard's x.
    :param hazard_y: distribution of the hazard's y.
    :param hazard_radius: distribution of the hazard's radius.
    :param gamma: discount factor, a real number in ``[0, 1)``.
    """

    task_type: ClassVar[type[Task]] = PointNavigationTask
    env_id: ClassVar[str] = "cmdp_envs/PointNavigation-v0"

    def __init__(
        self,
        cost_limit: ParameterDistribution = Uniform(0.5, 1.5),
        noise: ParameterDistribution = Uniform(0.0, 0.05),
        goal_x: ParameterDistribution = Uniform(-0.4, 0.4),
        goal_y: ParameterDistribution = Uniform(0.5, 0.7),
        hazard_x: ParameterDistribution = Uniform(-0.15, 0.15),
        hazard_y: ParameterDistribution = Uniform(-0.25, 0.05),
        hazard_radius: ParameterDistribution = Uniform(0.2, 0.35),
        gamma: float = 0.95,
    ):
        gamma = check_number("gamma", gamma, 0.0, 1.0, high_open=True)
        self.parameters = {"cost_limit": cost_limit, "noise": noise, "goal_x": goal_x, "goal_y": goal_y,
                           "hazard_x": hazard_x, "hazard_y": hazard_y, "hazard_radius": hazard_radius}
        for name, dist in self.parameters.items():
            if not isinstance(dist, ParameterDistribution):
                raise TypeError(f"{name} must be a ParameterDistribution, got {dist!r}")
        self.gamma = gamma
        self.check_support()

    def check_task(self, task: Task) -> None:
        super().check_task(task)
        for name, (low, high) in PARAMETER_BOUNDS.items():
            value = getattr(task, name)
            if not low <= value <= high:
                raise ValueError(f"task parameter {name!r} = {value!r} is outside [{low}, {high}]")

    def distance(self, task_1: PointNavigationTask, task_2: PointNavigationTask) -> float:
        """A parameter-space distance, as SPECS allows for parametric families: the largest absolute difference of
        any task parameter (cost limit included), ``max_p |p_1 - p_2|``.

        It is a metric on tasks (zero only for equal tasks) and cheap enough for the covering phase's all-pairs
        matrix; it bounds how far the goal, the hazard's centre and edge, the noise and the limit move (the start
        distribution is the same for every task). It is not an upper bound of the sup-norm CMDP distance of Feng et
        al., which jumps with any move of the hazard (to 1: the cost switches from 0 to 1 at its edge) or of the goal
        (to at least 0.1, the reward's step at the goal's edge)."""
        for task in (task_1, task_2):
            if not isinstance(task, PointNavigationTask):
                raise ValueError(f"expected a PointNavigationTask, got {type(task).__name__}: {task!r}")
        return max(abs(getattr(task_1, name) - getattr(task_2, name)) for name in self.parameters)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items())
        return f"PointNavigationFamily({params}, gamma={self.gamma})"


class PointNavigationEnv(gym.Env):
    """A point robot in the square ``[-1, 1]^2`` that must reach a goal it cannot see while limiting the discounted
    time it spends in a circular hazard.

    ## Description
    The robot starts near the bottom of the square and moves in steps of ``0.1``. The goal (a disc of radius ``0.2``)
    lies in the upper half; a hazard disc sits between start and goal, so the straight path costs and the way round
    takes longer. The goal's position is not observed: tasks differ in it, and a policy must adapt from rewards, as
    in meta-RL. No exact model: values are estimated by Monte Carlo (the env has no ``tabular`` method).

    ## Action Space
    ``Discrete(4)``: 0 up (y + 0.1), 1 right (x + 0.1), 2 down (y - 0.1), 3 left (x - 0.1).

    ## Observation Space
    ``Box(-1, 1, (2,), float32)``: the position ``(x, y)``.

    ## Starting State
    Uniform in the box ``[-0.1, 0.1] x [-0.9, -0.7]``.

    ## Transitions
    ``p <- clip(p + 0.1 * move(a) + noise * N(0, I), -1, 1)``, with ``noise`` the task's standard deviation.

    ## Rewards
    Dense and in ``[0, 1]``, a function of the position ``p`` the action is taken in: ``1`` within ``0.2`` of the
    goal, else ``max(0, 1 - |p - goal| / 2)``. The distance term is there for learners: a random walk rarely meets
    the goal, and with a sparse reward (``1`` in the goal, ``0`` elsewhere) SB3 PPO-Lagrangian (four envs,
    ``n_steps=128``, ``learning_rate=1e-3``) found it in one seed of three after 4,000 steps. With this reward all
    three reached a reward value of about 12.8 on the default task in 4,000 steps, against 5.9 for uniformly random
    actions and 14.2 for a scripted straight line (cost value 3.7, over the default limit of 1); a scripted detour
    round the hazard gets 11.4 at cost 0, and PPO-Lagrangian after 30,000 steps 12.0 at cost 0.11.

    ## Costs
    ``info["cost"] = 1.0`` for every action taken strictly inside the hazard disc, ``0.0`` elsewhere. A policy is
    feasible when ``J_c = E[sum_t gamma^t c_t]`` (``gamma = 0.95``, not normalised) is at most ``task.cost_limit``.

    ## Task distribution
    See :class:`PointNavigationFamily`: goal, hazard centre and radius, noise and cost limit, each uniform and
    independent. The env starts on the family's default task (the midpoints); set another with
    ``env.unwrapped.set_task(task)`` or ``env.reset(options={"task": task})`` (the only reset option: any other key
    raises ``ValueError``), or draw one at every reset with :class:`cmdp_envs.wrappers.TaskSampling`.

    ## Episode End
    No terminal state (the goal does not absorb; the reward is for staying in it). Episodes end by truncation after
    ``max_episode_steps`` (50 as registered).

    ## Information
    ``reset`` returns ``info = {"task": task, "cost": 0.0}``; ``step`` returns ``info = {"cost": c}``.

    ## Arguments
    ``gym.make("cmdp_envs/PointNavigation-v0", render_mode=None, task=None, family=None, **family_kwargs)``:
    ``family_kwargs`` (the parameter distributions and ``gamma``) override :class:`PointNavigationFamily`'s defaults;
    or pass a ready ``family``. ``task`` is the initial task (default: the family's default task). Any other keyword
    argument raises ``TypeError`` listing the accepted ones.
    ``render_mode="rgb_array"`` draws a 200 x 200 image: hazard red, goal green, robot blue.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, family: PointNavigationFamily | None = None, task: PointNavigationTask | None = None,
                 render_mode: str | None = None, **family_kwargs: Any):
        check_family_kwargs(type(self), PointNavigationFamily, family_kwargs)
        if family is not None and family_kwargs:
            raise ValueError(f"pass either family or family keyword arguments, not both: {sorted(family_kwargs)}")
        if family is not None and not isinstance(family, PointNavigationFamily):
            raise TypeError(f"family must be a PointNavigationFamily or None, got {family!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.family = family if family is not None else PointNavigationFamily(**family_kwargs)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(len(MOVES))
        self.observation_space = spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self.task: PointNavigationTask = self.family.default_task
        self.set_task(task if task is not None else self.family.default_task)
        self._position: np.ndarray | None = None

    def set_task(self, task: PointNavigationTask) -> None:
        """Make ``task`` the task in force from the next step on (it must be a valid task of ``self.family``)."""
        self.family.check_task(task)
        self.task = task
        self._goal = np.array([task.goal_x, task.goal_y])
        self._hazard = np.array([task.hazard_x, task.hazard_y])

    def reward(self, position: np.ndarray) -> float:
        """The reward for an action taken at ``position`` (see the class docstring)."""
        distance = float(np.linalg.norm(position - self._goal))
        return 1.0 if distance <= GOAL_RADIUS else max(0.0, 1.0 - distance / REWARD_REACH)

    def cost(self, position: np.ndarray) -> float:
        """The cost of an action taken at ``position``: ``1.0`` strictly inside the hazard disc, else ``0.0``."""
        return 1.0 if float(np.linalg.norm(position - self._hazard)) < self.task.hazard_radius else 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = check_reset_options(options, RESET_OPTIONS)
        if "task" in options:
            self.set_task(options["task"])  # validates first: a bad task leaves the env and its seed untouched
        super().reset(seed=seed)
        self._position = self.np_random.uniform(START_LOW, START_HIGH)
        return self._position.astype(np.float32), {"task": self.task, "cost": 0.0}

    def step(self, action: int):
        if self._position is None:
            raise RuntimeError("call reset() before step()")
        action = check_discrete_action(self.action_space, action)
        position = self._position
        reward, cost = self.reward(position), self.cost(position)
        noise = self.task.noise * self.np_random.standard_normal(2)
        self._position = np.clip(position + STEP_SIZE * MOVES[action] + noise, -1.0, 1.0)
        return self._position.astype(np.float32), reward, False, False, {"cost": cost}

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        return self._render_rgb()

    def _render_rgb(self, pixels: int = 200) -> np.ndarray:
        # Pixel centres in world coordinates; row 0 is the top (y = 1).
        coordinates = (np.arange(pixels) + 0.5) / pixels * 2.0 - 1.0
        x, y = np.meshgrid(coordinates, coordinates[::-1])
        image = np.full((pixels, pixels, 3), 255, dtype=np.uint8)

        def disc(centre: np.ndarray, radius: float) -> np.ndarray:
            return (x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius**2

        image[disc(self._hazard, self.task.hazard_radius)] = (230, 80, 80)
        image[disc(self._goal, GOAL_RADIUS)] = (90, 190, 90)
        if self._position is not None:
            image[disc(self._position, 0.04)] = (40, 70, 200)
        return image
