"""Velocity-constrained locomotion task families on Gymnasium's own MuJoCo robots (HalfCheetah, Hopper, Walker2d,
Ant, Humanoid, Swimmer): tasks vary the reward (target velocity or direction), the constraint (cost limit and
threshold) and the dynamics (mass, friction, joint damping and gravity scales), with the robot's physics left as
Gymnasium ships it (v5 on Gymnasium 1.x, v4 on 0.28.1).

Dynamics are applied to the compiled MuJoCo model in place, as scales of values saved when the env is built, so a
task change never rebuilds or recompiles anything and the default task leaves the model bit for bit as compiled.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from cmdp_envs.task import Choice, Fixed, ParameterDistribution, Task, TaskFamily, TruncatedNormal, Uniform
from cmdp_envs.validation import check_family_kwargs, check_number, check_reset_options

__all__ = ["ROBOTS", "Robot", "LocomotionTask", "LocomotionFamily", "LocomotionEnv", "LocomotionVectorEnv",
           "HEAD_HEIGHT_THRESHOLD"]

#: The keys ``reset(options=...)`` takes.
RESET_OPTIONS: tuple[str, ...] = ("task",)

#: ``h0`` of Ni & Kamgarpour's Half-Cheetah constraint, in metres. The paper does not give it; ours: the head's
#: height in the initial pose is 0.79, a random policy's head stays below 0.78 in 90% of its steps and below 0.97 in
#: 99% (1,000 steps, HalfCheetah-v5), so 0.9 marks the cheetah rearing up, not running.
HEAD_HEIGHT_THRESHOLD = 0.9


@dataclasses.dataclass(frozen=True)
class Robot:
    """One Gymnasium robot and what the families need to know about it.

    :param name: Gymnasium's name (``"HalfCheetah"``).
    :param velocity_threshold: Safety-Gymnasium's v1 velocity threshold for it.
    :param planar_speed: whether Safety-Gymnasium's (v1) velocity cost reads the planar speed ``|(v_x, v_y)|`` (Ant,
        Humanoid) rather than the forward velocity ``v_x``.
    :param target_velocity: the default distribution of target velocities.
    """

    name: str
    velocity_threshold: float
    planar_speed: bool
    target_velocity: ParameterDistribution

    @property
    def gymnasium_id(self) -> str:
        """The robot's newest Gymnasium id here: v5 where this Gymnasium has it (1.x), else v4 (0.28)."""
        newest = f"{self.name}-v5"
        return newest if newest in gym.registry else f"{self.name}-v4"


#: The six robots. Target velocities: Ni & Kamgarpour's truncated normals for HalfCheetah (on [0, 2], mean 1,
#: variance 0.3) and Hopper (on [0, 1], mean 0.5, variance 0.1), read as the untruncated normal's moments; for the
#: others, uniform from 0 to about Safety-Gymnasium's velocity threshold, which sits below what a trained agent runs.
ROBOTS: dict[str, Robot] = {
    robot.name: robot
    for robot in (
        Robot("HalfCheetah", 3.2096, False, TruncatedNormal(1.0, math.sqrt(0.3), 0.0, 2.0)),
        Robot("Hopper", 0.7402, False, TruncatedNormal(0.5, math.sqrt(0.1), 0.0, 1.0)),
        Robot("Walker2d", 2.3415, False, Uniform(0.0, 2.0)),
        Robot("Ant", 2.6222, True, Uniform(0.0, 2.5)),
        Robot("Humanoid", 1.4149, True, Uniform(0.0, 1.4)),
        Robot("Swimmer", 0.2282, False, Uniform(0.0, 0.2)),
    )
}

REWARDS = ("target_velocity", "direction", "gymnasium")
COSTS = ("velocity", "control", "head_height")


@dataclasses.dataclass(frozen=True)
class LocomotionTask(Task):
    """One locomotion CMDP.

    :param cost_limit: ``d`` (read under the family's ``cost_semantics``).
    :param target_velocity: the forward velocity the ``"target_velocity"`` reward asks for.
    :param direction: ``+1`` forward or ``-1`` backward, for the ``"direction"`` reward.
    :param cost_threshold: the velocity (``"velocity"`` cost) or head height (``"head_height"``) above which a step
        costs 1; unused by the ``"control"`` cost.
    :param mass_scale: every body's mass and inertia times this.
    :param friction_scale: every geom's friction coefficients times this.
    :param damping_scale: every joint's damping times this.
    :param gravity_scale: gravity times this.
    """

    cost_limit: float = 25.0
    target_velocity: float = 1.0
    direction: float = 1.0
    cost_threshold: float = 0.0
    mass_scale: float = 1.0
    friction_scale: float = 1.0
    damping_scale: float = 1.0
    gravity_scale: float = 1.0


#: The dynamics fields and the (inclusive) bounds their scales must stay in.
SCALE_BOUNDS = {"mass_scale": (0.05, 20.0), "friction_scale": (0.0, 20.0), "damping_scale": (0.0, 20.0),
                "gravity_scale": (0.0, 5.0)}


class LocomotionFamily(TaskFamily[LocomotionTask]):
    """A distribution over :class:`LocomotionTask` for one robot, with one reward and one cost kind.

    Rewards (``reward``):

    * ``"target_velocity"``: ``-|v_x - target_velocity|`` (Ni & Kamgarpour H.2; Xu & Zhu);
    * ``"direction"``: ``direction * v_x`` (MAML's HalfCheetah-Dir, with ``direction`` in ``{-1, +1}``);
    * ``"gymnasium"``: the robot's own Gymnasium reward (forward progress, healthy and control terms), as
      Safety-Gymnasium's velocity tasks keep it.

    The first two drop Gymnasium's healthy and control terms, as the papers define them; Gymnasium's termination
    of a fallen Hopper, Walker2d, Ant or Humanoid stays.

    Costs (``cost``), each per step and ``>= 0``:

    * ``"velocity"``: Safety-Gymnasium's (v1): 1 when the speed exceeds ``cost_threshold`` (its v1 threshold by
      default), the speed being ``v_x`` for HalfCheetah, Hopper, Walker2d and Swimmer and ``|(v_x, v_y)|`` for Ant
      and Humanoid;
    * ``"control"``: the control effort ``sum_i a_i^2`` (Ni & Kamgarpour's Hopper);
    * ``"head_height"``: 1 when the head is above ``cost_threshold`` (HalfCheetah only; Ni & Kamgarpour's
      Half-Cheetah, default :data:`HEAD_HEIGHT_THRESHOLD`).

    :param robot: a key of :data:`ROBOTS`.
    :param reward, cost: the kinds above.
    :param cost_limit, target_velocity, direction, cost_threshold, mass_scale, friction_scale, damping_scale,
        gravity_scale: the parameters' distributions (``None``: the robot's or the kind's default).
    :param terminate_when_unhealthy: Gymnasium's own switch for Hopper, Walker2d, Ant and Humanoid (the others never
        terminate): ``True`` (Gymnasium's default) ends the episode when the robot falls; ``False`` runs every
        episode to its time limit, so that a fallen robot keeps paying ``-|v_x - target|`` (with a non-positive
        reward and termination, falling at once is the best policy).
    :param gamma: the discount (0.99).
    :param cost_semantics: ``"discounted"`` (this package's convention) or ``"undiscounted"`` (the expected episode
        cost, Safety-Gymnasium's and OmniSafe's reading).
    """

    task_type: ClassVar[type[Task]] = LocomotionTask

    def __init__(
        self,
        robot: str = "HalfCheetah",
        reward: str = "target_velocity",
        cost: str = "velocity",
        cost_limit: ParameterDistribution = Fixed(25.0),
        target_velocity: ParameterDistribution | None = None,
        direction: ParameterDistribution | None = None,
        cost_threshold: ParameterDistribution | None = None,
        mass_scale: ParameterDistribution = Fixed(1.0),
        friction_scale: ParameterDistribution = Fixed(1.0),
        damping_scale: ParameterDistribution = Fixed(1.0),
        gravity_scale: ParameterDistribution = Fixed(1.0),
        gamma: float = 0.99,
        cost_semantics: str = "discounted",
        terminate_when_unhealthy: bool = True,
    ):
        if robot not in ROBOTS:
            raise ValueError(f"robot must be one of {list(ROBOTS)}, got {robot!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {list(REWARDS)}, got {reward!r}")
        if cost not in COSTS:
            raise ValueError(f"cost must be one of {list(COSTS)}, got {cost!r}")
        if cost == "head_height" and robot != "HalfCheetah":
            raise ValueError(f"the head_height cost is HalfCheetah's (it has a head geom), not {robot}'s")
        if cost_semantics not in ("discounted", "undiscounted"):
            raise ValueError(f"cost_semantics must be 'discounted' or 'undiscounted', got {cost_semantics!r}")
        self.robot, self.reward, self.cost = robot, reward, cost
        self.gamma = check_number("gamma", gamma, 0.0, 1.0, high_open=True)
        self.cost_semantics = cost_semantics
        if not isinstance(terminate_when_unhealthy, bool):
            raise TypeError(f"terminate_when_unhealthy must be True or False, got {terminate_when_unhealthy!r}")
        if not terminate_when_unhealthy and robot in ("HalfCheetah", "Swimmer"):
            raise ValueError(f"{robot} never terminates: terminate_when_unhealthy=False applies to Hopper, Walker2d, "
                             "Ant and Humanoid")
        self.terminate_when_unhealthy = terminate_when_unhealthy
        default_threshold = {"velocity": ROBOTS[robot].velocity_threshold, "head_height": HEAD_HEIGHT_THRESHOLD,
                             "control": 0.0}[cost]
        self.parameters = {
            "cost_limit": cost_limit,
            "target_velocity": ROBOTS[robot].target_velocity if target_velocity is None else target_velocity,
            "direction": (Choice((1.0, -1.0)) if reward == "direction" else Fixed(1.0)) if direction is None
            else direction,
            "cost_threshold": Fixed(default_threshold) if cost_threshold is None else cost_threshold,
            "mass_scale": mass_scale, "friction_scale": friction_scale, "damping_scale": damping_scale,
            "gravity_scale": gravity_scale,
        }
        for name, dist in self.parameters.items():
            if not isinstance(dist, ParameterDistribution):
                raise TypeError(f"{name} must be a ParameterDistribution, got {dist!r}")
        self.check_support()

    @property
    def env_id(self) -> str:  # type: ignore[override]
        """The registered id :meth:`make_env` builds this family's env with (the robot's family id)."""
        return f"cmdp_envs/{self.robot}Locomotion-v0"

    def check_task(self, task: Task) -> None:
        super().check_task(task)
        assert isinstance(task, LocomotionTask)
        if task.cost_limit < 0:
            raise ValueError(f"task parameter 'cost_limit' = {task.cost_limit!r} must be >= 0")
        if task.direction not in (-1.0, 1.0):
            raise ValueError(f"task parameter 'direction' = {task.direction!r} must be +1 or -1")
        for name, (low, high) in SCALE_BOUNDS.items():
            value = getattr(task, name)
            if not low <= value <= high:
                raise ValueError(f"task parameter {name!r} = {value!r} is outside [{low}, {high}]")

    def distance(self, task_1: LocomotionTask, task_2: LocomotionTask) -> float:
        """The largest absolute difference of any task parameter (a parameter-space distance, as SPECS allows for
        families without a tabular model)."""
        return max(abs(getattr(task_1, name) - getattr(task_2, name)) for name in self.parameters)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items())
        return (f"LocomotionFamily(robot={self.robot!r}, reward={self.reward!r}, cost={self.cost!r}, {params}, "
                f"gamma={self.gamma}, cost_semantics={self.cost_semantics!r}"
                + ("" if self.terminate_when_unhealthy else ", terminate_when_unhealthy=False") + ")")


class LocomotionEnv(gym.Env):
    """A Gymnasium MuJoCo robot as a task family: the robot's own env (observations, actions, physics, resets and
    termination exactly Gymnasium's), with the task's reward and cost and the task's dynamics.

    ## Action Space
    The robot's: ``Box(-1, 1, (6,))`` for HalfCheetah, ``(3,)`` Hopper, ``(6,)`` Walker2d, ``(8,)`` Ant, ``(17,)``
    Humanoid (``[-0.4, 0.4]``), ``(2,)`` Swimmer.

    ## Observation Space
    The robot's Gymnasium observation, unchanged: the task (target, direction, dynamics) is not observed, as in
    meta-RL.

    ## Rewards
    See :class:`LocomotionFamily`: ``-|v_x - target|``, ``direction * v_x`` or the robot's own reward, with ``v_x``
    Gymnasium's forward velocity (``info["x_velocity"]``).

    ## Costs
    ``info["cost"]``, per step and ``>= 0``: Safety-Gymnasium's velocity indicator, the control effort
    ``sum a_i^2``, or the HalfCheetah head-height indicator (:class:`LocomotionFamily`). Feasible means
    ``E[sum_t gamma^t c_t] <= task.cost_limit``, or the undiscounted sum under ``cost_semantics="undiscounted"``.

    ## Task distribution
    The family's (:class:`LocomotionFamily`). Set a task with ``env.unwrapped.set_task(task)`` or
    ``env.reset(options={"task": task})``; dynamics change in place on the compiled model.

    ## Episode End
    Gymnasium's termination (a fallen Hopper, Walker2d, Ant or Humanoid) and truncation after
    ``max_episode_steps`` (1,000 as registered).

    ## Information
    ``reset`` returns ``{"task": task, "cost": 0.0}`` with the robot's reset info; ``step`` returns the robot's
    ``info`` with ``"cost"`` and ``"gymnasium_reward"`` (the robot's own reward) added.

    ## Arguments
    ``gym.make(id, family=None, task=None, render_mode=None, **family_kwargs)``: ``family_kwargs`` override the id's
    settings (``id_defaults``) and build a :class:`LocomotionFamily`; or pass a ready ``family``.
    ``render_mode="rgb_array"`` renders through Gymnasium's MuJoCo renderer.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, family: LocomotionFamily | None = None, task: LocomotionTask | None = None,
                 render_mode: str | None = None, id_defaults: dict[str, Any] | None = None, **family_kwargs: Any):
        check_family_kwargs(type(self), LocomotionFamily, family_kwargs)
        if family is not None and family_kwargs:
            raise ValueError(f"pass either family or family keyword arguments, not both: {sorted(family_kwargs)}")
        if family is not None and not isinstance(family, LocomotionFamily):
            raise TypeError(f"family must be a LocomotionFamily or None, got {family!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        # A registered id's settings (id_defaults), overridden by the caller's keyword arguments.
        self.family = family if family is not None else LocomotionFamily(**{**(id_defaults or {}), **family_kwargs})
        self.render_mode = render_mode
        robot = ROBOTS[self.family.robot]
        self._robot = robot
        try:
            import mujoco  # noqa: F401  (Gymnasium's robots need it)
        except ImportError as error:
            raise ImportError('the locomotion families need MuJoCo: pip install "cmdp-envs[mujoco]" (Gymnasium\'s '
                              '"mujoco" extra)') from error
        # Gymnasium's default is passed as no argument at all, so the default robot is built exactly as Gymnasium's.
        switch = {} if self.family.terminate_when_unhealthy else {"terminate_when_unhealthy": False}
        self._env = gym.make(robot.gymnasium_id, render_mode=render_mode, **switch).unwrapped
        self.metadata = {**self.metadata, "render_fps": self._env.metadata.get("render_fps", 20)}
        self.observation_space = self._env.observation_space
        self.action_space = self._env.action_space
        model = self._env.model
        # The compiled values every task's dynamics scale: a task sets model = pristine * scale, never compounding.
        self._pristine = {"body_mass": model.body_mass.copy(), "body_inertia": model.body_inertia.copy(),
                          "geom_friction": model.geom_friction.copy(), "dof_damping": model.dof_damping.copy(),
                          "gravity": model.opt.gravity.copy()}
        self._head = self._geom_index("head") if self.family.cost == "head_height" else None
        self.set_task(task if task is not None else self.family.default_task)

    def _geom_index(self, name: str) -> int:
        import mujoco

        index = mujoco.mj_name2id(self._env.model, mujoco.mjtObj.mjOBJ_GEOM, name)
        if index < 0:
            raise ValueError(f"{self._robot.gymnasium_id} has no geom named {name!r}")
        return int(index)

    def set_task(self, task: LocomotionTask) -> None:
        """Make ``task`` the task in force, its dynamics written into the compiled model in place."""
        self.family.check_task(task)
        model, pristine = self._env.model, self._pristine
        model.body_mass[:] = pristine["body_mass"] * task.mass_scale
        model.body_inertia[:] = pristine["body_inertia"] * task.mass_scale
        model.geom_friction[:] = pristine["geom_friction"] * task.friction_scale
        model.dof_damping[:] = pristine["dof_damping"] * task.damping_scale
        model.opt.gravity[:] = pristine["gravity"] * task.gravity_scale
        self._task = task

    @property
    def task(self) -> LocomotionTask:
        """The task in force; assigning one calls :meth:`set_task`, so on Gymnasium 1.x a vector env's
        ``set_attr("task", tasks)`` gives each sub-env its own."""
        return self._task

    @task.setter
    def task(self, task: LocomotionTask) -> None:
        self.set_task(task)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = check_reset_options(options, RESET_OPTIONS)
        if "task" in options:
            self.set_task(options["task"])  # validates first: a bad task leaves the env untouched
        super().reset(seed=seed)
        observation, info = self._env.reset(seed=seed)
        return observation, {**info, "task": self.task, "cost": 0.0}

    def step(self, action: np.ndarray):
        observation, gymnasium_reward, terminated, truncated, info = self._env.step(action)
        gymnasium_reward = float(gymnasium_reward)
        reward_kind, task = self.family.reward, self._task
        if reward_kind == "target_velocity":
            reward = -abs(float(info["x_velocity"]) - task.target_velocity)
        elif reward_kind == "direction":
            reward = task.direction * float(info["x_velocity"])
        else:
            reward = gymnasium_reward
        # The robot's info is a fresh dict every step: ours adds to it.
        info["cost"] = self._cost(action, info)
        info["gymnasium_reward"] = gymnasium_reward
        return observation, reward, terminated, truncated, info

    def _cost(self, action: np.ndarray, info: dict[str, Any]) -> float:
        kind = self.family.cost
        if kind == "control":
            return float(np.dot(np.ravel(action), np.ravel(action)))
        if kind == "head_height":
            return float(self._env.data.geom_xpos[self._head][2] > self._task.cost_threshold)
        speed = math.hypot(info["x_velocity"], info["y_velocity"]) if self._robot.planar_speed else info["x_velocity"]
        return float(speed > self._task.cost_threshold)

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'")
            return None
        return self._env.render()

    def close(self) -> None:
        self._env.close()
        super().close()


class LocomotionVectorEnv(gym.vector.SyncVectorEnv):
    """``num_envs`` :class:`LocomotionEnv` of one family stepped one after the other (MuJoCo steps each model on its
    own), each with its own task: ``reset(options={"tasks": tasks})`` hands ``tasks[i % len(tasks)]`` to sub-env
    ``i`` (``{"task": task}`` gives all the same). What ``gym.make_vec(id, num_envs,
    vectorization_mode="vector_entry_point")`` builds on Gymnasium 1.x; on 0.28.1 build it directly. For processes:
    on Gymnasium 1.x, ``gym.make_vec(id, num_envs, vectorization_mode="async")`` and ``envs.set_attr("task", tasks)``;
    with SB3's ``SubprocVecEnv`` (both lanes), ``envs.env_method("set_task", task, indices=[i])``. (Gymnasium
    0.28.1's vector envs set attributes on the outer wrapper, which never reaches the env.)

    Sub-envs report ``info`` as Gymnasium's sync vector env does, ``info["cost"]`` among it, one entry per sub-env.
    """

    def __init__(self, num_envs: int = 1, family: LocomotionFamily | None = None, max_episode_steps: int | None = 1000,
                 render_mode: str | None = None, id_defaults: dict[str, Any] | None = None, **family_kwargs: Any):
        from cmdp_envs.task import check_count

        num_envs = check_count("num_envs", num_envs, minimum=1)
        first = LocomotionEnv(family=family, render_mode=render_mode, id_defaults=id_defaults, **family_kwargs)
        self.family = first.family
        built = iter([first])

        def make() -> gym.Env:
            env = next(built, None) or LocomotionEnv(family=self.family, render_mode=render_mode)
            return gym.wrappers.TimeLimit(env, max_episode_steps) if max_episode_steps else env

        super().__init__([make for _ in range(num_envs)])

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        options = check_reset_options(options, ("task", "tasks"))
        if "tasks" in options:
            tasks = list(options.pop("tasks"))
            if not tasks:
                raise ValueError("options['tasks'] must hold at least one task")
            for task in tasks:
                self.family.check_task(task)  # all checked before any sub-env changes
            for index, env in enumerate(self.envs):
                env.unwrapped.set_task(tasks[index % len(tasks)])
        return super().reset(seed=seed, options=options or None)
