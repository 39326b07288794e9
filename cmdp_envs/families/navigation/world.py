"""The simulation of ``n`` point-robot worlds at once: robot dynamics, objects, rewards, costs and observations.

Every array has the environments on its first axis (or, for the robot's ``(3, n)`` state, its second), so one numpy
call steps all of them; each world has its own task. A family has a fixed number of object slots; a task with fewer
objects parks the rest at :data:`~.lidar.ABSENT`, so changing a layout only writes coordinates into arrays and never
rebuilds anything.

Two entry points: :meth:`PointWorld.step` and :meth:`PointWorld.observation` work on arrays (the vector env);
:meth:`PointWorld.step_one` and :meth:`PointWorld.observation_one` run world 0 on Python floats (the single env),
several times faster than numpy on arrays of one element. The robot's dynamics and sensors are the same functions
on either; rewards, costs and lidar have a float version written object by object, and a test checks both agree.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cmdp_envs.families.navigation import robot
from cmdp_envs.families.navigation.layout import goal_position
from cmdp_envs.families.navigation.lidar import ABSENT, N_BINS, PseudoLidar
from cmdp_envs.families.navigation.tasks import CircleFamily, CircleTask, GoalFamily, GoalTask, PointFamily, PointTask

__all__ = ["PointWorld", "GoalWorld", "CircleWorld", "make_world", "N_SENSORS"]

N_SENSORS = 12
#: Contact distance between the robot's sphere (radius 0.1) and a vase (half-size 0.1), and the floor's Coulomb
#: friction deceleration of a sliding vase (friction coefficient 1 times gravity).
VASE_CONTACT_DISTANCE = 0.2
VASE_FRICTION_DECELERATION = 1.0 * robot.GRAVITY
#: Vase speeds below this cost nothing (Safety-Gymnasium's ``velocity_threshold``).
VASE_VELOCITY_THRESHOLD = 1e-4
STEP_SECONDS = robot.TIMESTEP * robot.SUBSTEPS


class PointWorld:
    """``n`` point robots: state ``position`` ``(3, n)`` = ``(x, y, psi)`` and ``velocity`` ``(3, n)``, dynamics
    scales ``(3, n)`` (mass, damping, gain) and the generalised acceleration of the last step (for the
    accelerometer)."""

    def __init__(self, family: PointFamily, n: int):
        self.family = family
        self.n = n
        self.position = np.zeros((3, n))
        self.velocity = np.zeros((3, n))
        self.acceleration = np.zeros((3, n))
        self.scales = np.ones((3, n))
        self.tasks: list[PointTask] = [family.default_task] * n

    def set_task(self, index: int, task: PointTask) -> None:
        self.tasks[index] = task
        self.scales[:, index] = (task.mass_scale, task.damping_scale, task.gain_scale)

    def place_robot(self, index: int, pose: tuple[float, float, float],
                    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        self.position[:, index] = pose
        self.velocity[:, index] = velocity
        # At rest the accelerometer reads gravity only; a given velocity's acceleration follows from zero action.
        self.acceleration[:, index] = robot.acceleration(pose, velocity, (0.0, 0.0), *self.scales[:, index].tolist())

    def step_robot(self, action: np.ndarray) -> None:
        """Advance every robot by one environment step under ``action`` ``(n, 2)`` (clipped to ``[-1, 1]``)."""
        action = np.clip(action, -1.0, 1.0)
        command = (action[:, 0], action[:, 1])
        numpy_math = {"sin": np.sin, "cos": np.cos, "clip": robot.clip_array}
        position, velocity = robot.integrate(tuple(self.position), tuple(self.velocity), command, *self.scales,
                                             **numpy_math)
        self.position = np.array(position)
        self.velocity = np.array(velocity)
        self.acceleration = np.array(robot.acceleration(position, velocity, command, *self.scales, **numpy_math))

    def step_robot_one(self, action: tuple[float, float]) -> None:
        """:meth:`step_robot` for world 0 on Python floats."""
        command = (robot.clip_float(action[0], 1.0), robot.clip_float(action[1], 1.0))
        scales = self.scales[:, 0].tolist()
        position, velocity = robot.integrate(self.position[:, 0].tolist(), self.velocity[:, 0].tolist(), command,
                                             *scales)
        self.position[:, 0] = position
        self.velocity[:, 0] = velocity
        self.acceleration[:, 0] = robot.acceleration(position, velocity, command, *scales)

    def sensors(self) -> np.ndarray:
        """``(n, 12)``: accelerometer, velocimeter, gyro, magnetometer (Safety-Gymnasium's order)."""
        values = robot.sensors(self.position[2], tuple(self.velocity), tuple(self.acceleration), np.sin, np.cos)
        return np.stack(values, axis=1)

    def sensors_one(self) -> list[float]:
        """World 0's twelve sensor values."""
        return list(robot.sensors(self.position[2, 0].item(), self.velocity[:, 0].tolist(),
                                  self.acceleration[:, 0].tolist()))

    def total_cost(self, costs: dict[str, Any]) -> Any:
        """The step's cost from its sources (arrays, or floats for one world): with indicator costs
        (Safety-Gymnasium's default) 1 when any source is positive, else their sum."""
        total = sum(costs.values())
        return (total > 0) * 1.0 if getattr(self.family, "constrain_indicator", True) else total

    # Subclasses: the task's objects, rewards and costs.
    observation_size: int
    cost_names: tuple[str, ...]

    def reset(self, index: int, rng: np.random.Generator, state: Any = None) -> None:
        raise NotImplementedError

    def step(self, action: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Step every world under ``action`` ``(n, 2)``; returns the rewards ``(n,)`` and the costs by source (each
        ``(n,)``, ``>= 0``)."""
        raise NotImplementedError

    def step_one(self, action: tuple[float, float], rng: np.random.Generator) -> tuple[float, dict[str, float]]:
        """:meth:`step` for world 0 on floats: its reward and costs by source."""
        raise NotImplementedError

    def observation(self) -> np.ndarray:
        """``(n, observation_size)``."""
        raise NotImplementedError

    def observation_one(self) -> np.ndarray:
        """World 0's observation ``(observation_size,)``."""
        raise NotImplementedError


class GoalWorld(PointWorld):
    """Goal tasks: hazards, vases (pushed by the robot), a goal redrawn when reached.

    All objects live in one array ``objects`` ``(n, 1 + n_hazards + n_vases, 2)``: the goal, then the hazards, then
    the vases (the lidar's group order); ``goal``, ``hazards`` and ``vases`` are views of it.
    """

    family: GoalFamily

    def __init__(self, family: GoalFamily, n: int):
        super().__init__(family, n)
        n_hazards, n_vases = family.n_hazards, family.n_vases
        self.objects = np.full((n, 1 + n_hazards + n_vases, 2), ABSENT)
        self.goal = self.objects[:, 0]
        self.hazards = self.objects[:, 1 : 1 + n_hazards]
        self.vases = self.objects[:, 1 + n_hazards :]
        self.vase_velocity = np.zeros((n, n_vases, 2))
        self._vases_moving = np.zeros(n, dtype=bool)
        self.last_goal_distance = np.zeros(n)
        self.goal_met = np.zeros(n, dtype=bool)
        groups = [0] + [1] * n_hazards + [2] * n_vases
        if family.hidden_goal:
            self.lidar = PseudoLidar(n, np.array(groups[1:]) - 1, 2, family.lidar_max_dist)
        else:
            self.lidar = PseudoLidar(n, np.array(groups), 3, family.lidar_max_dist)
        self.observation_size = N_SENSORS + N_BINS * self.lidar.n_groups
        self.cost_names = ("cost_hazards",) + (("cost_vases_contact", "cost_vases_velocity") if family.vases_cost else ())

    def set_task(self, index: int, task: GoalTask) -> None:
        super().set_task(index, task)
        self.hazards[index] = ABSENT
        self.hazards[index, : len(task.hazards)] = np.reshape(task.hazards, (-1, 2))

    def reset(self, index: int, rng: np.random.Generator, state: Any = None) -> None:
        task: GoalTask = self.tasks[index]  # type: ignore[assignment]
        self.vases[index] = ABSENT
        self.vases[index, : len(task.vases)] = np.reshape(task.vases, (-1, 2))
        self.vase_velocity[index] = 0.0
        self._vases_moving[index] = False
        self.goal[index] = task.goal
        if state is None:
            self.place_robot(index, task.agent)
        else:
            self.place_robot(index, state.position, state.velocity)
        self.last_goal_distance[index] = math.dist(self.position[:2, index], self.goal[index])

    def _push_vases(self, offset: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """Move the vases one step: robots push the vases they touch, the floor's friction slows them. Returns the
        number of vases each robot touches ``(n,)``. ``offset`` ``(n, n_vases, 2)`` and ``distance`` are the vases'
        positions relative to the robots.

        The contact model: a vase (8e-6 kg) is 650 times lighter than the robot, so a push does not slow the robot;
        a vase within :data:`VASE_CONTACT_DISTANCE` of the robot's origin is moved out to that distance along the
        line of centres and takes at least the robot's velocity along that line; a sliding vase decelerates by
        ``mu g``. Vases do not collide with each other. MuJoCo's contacts (box corners, the robot's nose box, soft
        contact) are richer: this model agrees with Safety-Gymnasium in distribution only.
        """
        touching = distance < VASE_CONTACT_DISTANCE
        # Most worlds touch no vase and have every vase at rest: only the others are worked on.
        active = np.flatnonzero(self._vases_moving | touching.any(axis=1))
        contacts = np.zeros(self.n)
        if active.size == 0:
            return contacts
        touching, offset, distance = touching[active], offset[active], distance[active]
        position = self.position[:2, active].T[:, None, :]
        velocity = self.vase_velocity[active]
        normal = offset / np.maximum(distance, 1e-12)[..., None]
        gain = np.sum(normal * (self.velocity[:2, active].T[:, None, :] - velocity), axis=2)
        velocity += np.where(touching, np.maximum(gain, 0.0), 0.0)[..., None] * normal
        vases = np.where(touching[..., None], position + normal * VASE_CONTACT_DISTANCE, self.vases[active])
        speed = np.sqrt(np.sum(velocity**2, axis=2))
        slowed = np.maximum(speed - VASE_FRICTION_DECELERATION * STEP_SECONDS, 0.0)
        velocity *= np.where(speed > 0, slowed / np.maximum(speed, 1e-12), 0.0)[..., None]
        self.vase_velocity[active] = velocity
        self.vases[active] = vases + velocity * STEP_SECONDS
        self._vases_moving[active] = slowed.any(axis=1)
        contacts[active] = touching.sum(axis=1)
        return contacts

    def step(self, action: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        family = self.family
        self.step_robot(action)
        offset = self.objects - self.position[:2].T[:, None, :]
        distance = np.sqrt(offset[..., 0] ** 2 + offset[..., 1] ** 2)
        n_hazards = family.n_hazards
        contacts = self._push_vases(offset[:, 1 + n_hazards :], distance[:, 1 + n_hazards :])
        goal_distance = distance[:, 0]
        goal_met = goal_distance <= family.goal_size
        reward = self.last_goal_distance - goal_distance + goal_met
        depth = np.maximum(family.hazard_size - distance[:, 1 : 1 + n_hazards], 0.0)
        costs = {"cost_hazards": depth.sum(axis=1)}
        if family.vases_cost:
            speed = np.sqrt(np.sum(self.vase_velocity**2, axis=2))
            costs["cost_vases_contact"] = contacts
            costs["cost_vases_velocity"] = np.where(speed >= VASE_VELOCITY_THRESHOLD, speed, 0.0).sum(axis=1)
        self.last_goal_distance = goal_distance
        self.goal_met = goal_met
        for index in np.flatnonzero(goal_met):
            self._redraw_goal(index, rng)
        if family.constrain_indicator:
            costs = {name: (value > 0).astype(float) for name, value in costs.items()}
        return reward, costs

    def step_one(self, action: tuple[float, float], rng: np.random.Generator) -> tuple[float, dict[str, float]]:
        family = self.family
        self.step_robot_one(action)
        x, y = self.position[0, 0].item(), self.position[1, 0].item()
        distance = [math.hypot(ox - x, oy - y) for ox, oy in self.objects[0].tolist()]
        first_vase = 1 + family.n_hazards
        contacts = 0.0
        if self._vases_moving[0] or any(d < VASE_CONTACT_DISTANCE for d in distance[first_vase:]):
            offset = self.vases[:1] - self.position[:2, :1].T[:, None, :]
            contacts = float(self._push_vases(offset, np.array([distance[first_vase:]]))[0])
        goal_distance = distance[0]
        goal_met = goal_distance <= family.goal_size
        reward = self.last_goal_distance[0].item() - goal_distance + goal_met
        costs = {"cost_hazards": sum(max(family.hazard_size - d, 0.0) for d in distance[1:first_vase])}
        if family.vases_cost:
            speeds = [math.hypot(vx, vy) for vx, vy in self.vase_velocity[0].tolist()]
            costs["cost_vases_contact"] = contacts
            costs["cost_vases_velocity"] = sum(v for v in speeds if v >= VASE_VELOCITY_THRESHOLD)
        self.last_goal_distance[0] = goal_distance
        self.goal_met[0] = goal_met
        if goal_met:
            self._redraw_goal(0, rng)
        if family.constrain_indicator:
            costs = {name: float(value > 0) for name, value in costs.items()}
        return reward, costs

    def _redraw_goal(self, index: int, rng: np.random.Generator) -> None:
        placement = self.family.placement
        others = [(self.position[:2, index], placement.agent_keepout)]
        others += [(p, placement.hazard_keepout) for p in self.hazards[index] if p[0] != ABSENT]
        others += [(p, placement.vase_keepout) for p in self.vases[index] if p[0] != ABSENT]
        self.goal[index] = goal_position(rng, placement, others)
        self.last_goal_distance[index] = math.dist(self.position[:2, index], self.goal[index])

    def observation(self) -> np.ndarray:
        objects = self.objects[:, 1:] if self.family.hidden_goal else self.objects
        return np.concatenate([self.sensors(), self.lidar(self.position[:2].T, self.position[2], objects)], axis=1)

    def observation_one(self) -> np.ndarray:
        objects = self.objects[0, 1:] if self.family.hidden_goal else self.objects[0]
        x, y, heading = self.position[:, 0].tolist()
        return np.array(self.sensors_one() + self.lidar.single(x, y, heading, objects.tolist()))


class CircleWorld(PointWorld):
    """Circle tasks: reward for running counter-clockwise along the circle, cost beyond the walls."""

    family: CircleFamily

    def __init__(self, family: CircleFamily, n: int):
        super().__init__(family, n)
        self.radius = np.full(n, 1.5)
        self.wall = np.full(n, 1.125)
        self.observation_size = N_SENSORS + N_BINS
        self.cost_names = ("cost_out_of_boundary",)
        self._centre = np.zeros((n, 1, 2))
        self.lidar = PseudoLidar(n, np.zeros(1), 1, family.lidar_max_dist)

    def set_task(self, index: int, task: CircleTask) -> None:
        super().set_task(index, task)
        self.radius[index] = task.radius
        self.wall[index] = task.wall

    def reset(self, index: int, rng: np.random.Generator, state: Any = None) -> None:
        if state is not None:
            self.place_robot(index, state.position, state.velocity)
            return
        extent = self.family.start_extent
        x, y = rng.uniform(-extent, extent, size=2)
        self.place_robot(index, (float(x), float(y), float(rng.uniform(0, 2 * math.pi))))

    def step(self, action: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        self.step_robot(action)
        x, y, _ = self.position
        u, v, _ = self.velocity
        rho = np.sqrt(x * x + y * y)
        reward = self.family.reward_factor * ((-u * y + v * x) / rho) / (1 + np.abs(rho - self.radius))
        outside = np.abs(x) > self.wall
        if self.family.four_walls:
            outside |= np.abs(y) > self.wall
        return reward, {"cost_out_of_boundary": outside.astype(float)}

    def step_one(self, action: tuple[float, float], rng: np.random.Generator) -> tuple[float, dict[str, float]]:
        self.step_robot_one(action)
        x, y = self.position[0, 0].item(), self.position[1, 0].item()
        u, v = self.velocity[0, 0].item(), self.velocity[1, 0].item()
        rho = math.hypot(x, y)
        radius, wall = self.radius[0].item(), self.wall[0].item()
        reward = self.family.reward_factor * ((-u * y + v * x) / rho) / (1 + abs(rho - radius))
        outside = abs(x) > wall or (self.family.four_walls and abs(y) > wall)
        return reward, {"cost_out_of_boundary": float(outside)}

    def observation(self) -> np.ndarray:
        lidar = self.lidar(self.position[:2].T, self.position[2], self._centre)
        return np.concatenate([self.sensors(), lidar], axis=1)

    def observation_one(self) -> np.ndarray:
        x, y, heading = self.position[:, 0].tolist()
        return np.array(self.sensors_one() + self.lidar.single(x, y, heading, [[0.0, 0.0]]))


def make_world(family: PointFamily, n: int) -> PointWorld:
    """The world class of ``family``'s tasks, with ``n`` environments."""
    if isinstance(family, GoalFamily):
        return GoalWorld(family, n)
    if isinstance(family, CircleFamily):
        return CircleWorld(family, n)
    raise TypeError(f"no navigation world for {type(family).__name__}")
