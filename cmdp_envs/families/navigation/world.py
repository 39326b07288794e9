"""The simulation of ``n`` point-robot worlds at once: robot dynamics, objects, rewards, costs and observations.

Every array has the environments on its first axis (or, for the robot's ``(3, n)`` state, its second), so one numpy
call steps all of them; each world has its own task. A family has a fixed number of object slots; a task with fewer
objects parks the rest at :data:`~.lidar.ABSENT`, so changing a layout only writes coordinates into arrays and never
rebuilds anything.

Two entry points: :meth:`PointWorld.step` and :meth:`PointWorld.observation` work on arrays (the vector env, and
the single env as one world); :meth:`PointWorld.step_one` steps world 0 on Python floats, several times faster than
numpy on arrays of one element, where the rewards and costs are simple (Goal and Circle; a test checks both paths
agree). The robot's dynamics, its sensors and the lidar are compiled loops that serve both.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cmdp_envs.families.navigation import robot
from cmdp_envs.families.navigation.layout import AGENT, goal_position
from cmdp_envs.families.navigation.lidar import ABSENT, N_BINS, PseudoLidar
from cmdp_envs.families.navigation.tasks import (
    ButtonFamily,
    ButtonTask,
    CircleFamily,
    CircleTask,
    GoalFamily,
    GoalTask,
    PointFamily,
    PointTask,
)

__all__ = ["PointWorld", "GoalWorld", "ButtonWorld", "CircleWorld", "make_world", "N_SENSORS"]

N_SENSORS = 12
#: The floor's Coulomb friction deceleration of a sliding vase (friction coefficient 1 times gravity).
VASE_FRICTION_DECELERATION = 1.0 * robot.GRAVITY
#: MuJoCo's friction is a soft constraint: once a vase slides slowly its speed halves every step (measured in
#: Safety-Gymnasium: after a 0.5 m/s push a vase stays above 1e-4 m/s for 10 steps) instead of stopping dead.
VASE_SLOW_DECAY = 0.5
#: Below this speed a vase is at rest (far under the velocity cost's threshold; it ends the exponential tail).
VASE_REST_SPEED = 1e-6
#: Vase speeds below this cost nothing (Safety-Gymnasium's ``velocity_threshold``).
VASE_VELOCITY_THRESHOLD = 1e-4
STEP_SECONDS = robot.TIMESTEP * robot.SUBSTEPS
#: The robot's sphere, and its nose: a square of half-size 0.05 centred 0.1 ahead of the origin (point.xml).
ROBOT_RADIUS = 0.1
NOSE_CENTRE, NOSE_HALF = 0.1, 0.05
#: Beyond this distance from the robot's origin no vase (a box of half-size 0.1) touches its sphere or nose: the
#: farthest contact is a corner of the nose face against the vase's face (:func:`contact` with ``box``).
VASE_REACH = math.hypot(NOSE_CENTRE + NOSE_HALF + 0.1, NOSE_HALF + 0.1)
#: A gremlin is a light box welded to a target that circles its centre; the weld makes it follow with a lag, modelled
#: as first order with this time constant (it reaches 57% of a jump in 0.08 s and trails a 1 rad/s circle of radius
#: 0.35 by 0.03 m, as Safety-Gymnasium's gremlins do).
GREMLIN_LAG_SECONDS = 0.094
#: How the robot bounces off a button, which its sphere and its nose both hit: MuJoCo's soft contact is a one-sided
#: spring that pushes the robot back out within a step (restitution) and lets it slide around the button as it
#: leans (no friction). Both constants were chosen by measurement: with them a robot chasing buttons presses wrong
#: buttons about as often as Safety-Gymnasium's (README, "Navigation families"; a hard, sticky contact gave 3-4
#: times as many).
BUTTON_RESTITUTION, BUTTON_FRICTION = 0.5, 0.0
#: Gremlins push the robot with the stiff weld behind them; an inelastic contact with Coulomb friction 1 on the
#: robot's sphere (its nose passes into soft gremlins) matches Safety-Gymnasium's gremlin contact counts.
GREMLIN_FRICTION = 1.0


def contact(position: np.ndarray, centres: np.ndarray, radius: float, nose: bool = True, box: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
    """How deep discs of ``radius`` at ``centres`` ``(m, k, 2)`` reach into the robots at poses ``position``
    ``(3, m)``: the depth ``(m, k)`` (positive when touching) and the unit normal ``(m, k, 2)`` from the robot's
    nearest part (its sphere, or its nose square when that reaches deeper and ``nose``) towards each centre.

    With ``box`` the objects are boxes of half-size ``radius`` (vases) that a push from the nose's flat front face
    turns square to it (MuJoCo's box-on-box contact does so within a step or two): when the nose touches one whose
    face overlaps the nose's sideways, the push is straight ahead. Without it a vase slides off the rounded corner of
    a disc model after one push, where Safety-Gymnasium's robot pushes it along. When contact begins is the disc
    model's either way (the first contact comes on Safety-Gymnasium's step)."""
    offset_x = centres[..., 0] - position[0][:, None]
    offset_y = centres[..., 1] - position[1][:, None]
    cos_psi, sin_psi = np.cos(position[2])[:, None], np.sin(position[2])[:, None]
    distance = np.sqrt(offset_x**2 + offset_y**2)
    sphere_depth = ROBOT_RADIUS + radius - distance
    # Normals are written component by component into (..., 2) arrays: np.stack costs more than the arithmetic.
    sphere_normal = np.empty((*distance.shape, 2))
    safe_distance = np.maximum(distance, 1e-12)
    np.divide(offset_x, safe_distance, out=sphere_normal[..., 0])
    np.divide(offset_y, safe_distance, out=sphere_normal[..., 1])
    if not nose:
        return sphere_depth, sphere_normal
    ahead = cos_psi * offset_x + sin_psi * offset_y
    side = cos_psi * offset_y - sin_psi * offset_x
    gap_ahead = ahead - np.minimum(np.maximum(ahead, NOSE_CENTRE - NOSE_HALF), NOSE_CENTRE + NOSE_HALF)
    gap_side = side - robot.clip_array(side, NOSE_HALF)
    gap = np.sqrt(gap_ahead**2 + gap_side**2)
    nose_depth = radius - gap
    # A centre inside the nose square is pushed straight ahead.
    inside = gap == 0
    gap_ahead, gap = np.where(inside, 1.0, gap_ahead), np.where(inside, 1.0, gap)
    nose_normal = np.empty_like(sphere_normal)
    np.divide(cos_psi * gap_ahead - sin_psi * gap_side, gap, out=nose_normal[..., 0])
    np.divide(sin_psi * gap_ahead + cos_psi * gap_side, gap, out=nose_normal[..., 1])
    if box:
        on_face = (np.abs(side) < NOSE_HALF + radius) & (ahead > NOSE_CENTRE)
        nose_normal[..., 0] = np.where(on_face, cos_psi, nose_normal[..., 0])
        nose_normal[..., 1] = np.where(on_face, sin_psi, nose_normal[..., 1])
    deeper = nose_depth > sphere_depth
    return np.where(deeper, nose_depth, sphere_depth), np.where(deeper[..., None], nose_normal, sphere_normal)


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
        self._integrator = robot.Integrator(self.scales)
        self._scales_changed = False

    def set_task(self, index: int, task: PointTask) -> None:
        self.tasks[index] = task
        self.scales[:, index] = (task.mass_scale, task.damping_scale, task.gain_scale)
        self._scales_changed = True  # the integrator's coefficients are refreshed once, at the next step

    def place_robot(self, index: int, pose: tuple[float, float, float],
                    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        self.position[:, index] = pose
        self.velocity[:, index] = velocity
        self._integrator.place(index, self.position, self.velocity, self.acceleration)

    def step_robot(self, action: np.ndarray) -> None:
        """Advance every robot by one environment step under ``action`` ``(n, 2)`` (clipped to ``[-1, 1]``)."""
        if self._scales_changed:
            self._integrator.set_scales(self.scales)
            self._scales_changed = False
        self._integrator.step(self.position, self.velocity, self.acceleration, action)

    def _observation(self, objects: np.ndarray) -> np.ndarray:
        """``(n, observation_size)``, a fresh array: the sensors (accelerometer, velocimeter, gyro, magnetometer,
        Safety-Gymnasium's order) then the lidar's readings of ``objects`` ``(n, K, 2)``, each written in place."""
        observation = np.empty((self.n, self.observation_size))
        robot.sensors(self._integrator.trig, self.velocity, self.acceleration, observation)
        self.lidar(self.position[:2].T, self.position[2], objects, observation[:, N_SENSORS:])
        return observation

    def indicators(self, costs: dict[str, Any]) -> dict[str, Any]:
        """Each cost source as an indicator (1 when positive) under Safety-Gymnasium's ``constrain_indicator``,
        else as it is (arrays, or floats for one world)."""
        if not getattr(self.family, "constrain_indicator", True):
            return costs
        return {name: (value > 0) * 1.0 for name, value in costs.items()}

    def total_cost(self, costs: dict[str, Any]) -> Any:
        """The step's cost from its sources (arrays, or floats for one world): with indicator costs
        (Safety-Gymnasium's default) 1 when any source is positive, else their sum."""
        total = sum(costs.values())
        return (total > 0) * 1.0 if getattr(self.family, "constrain_indicator", True) else total

    # Subclasses: the task's objects, rewards and costs.
    observation_size: int

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
        self._offset = np.empty((2, *self.objects.shape[:2]))
        self._vases_moving = np.zeros(n, dtype=bool)
        self.last_goal_distance = np.zeros(n)
        self.goal_met = np.zeros(n, dtype=bool)
        groups = [0] + [1] * n_hazards + [2] * n_vases
        if family.hidden_goal:
            self.lidar = PseudoLidar(n, np.array(groups[1:]) - 1, 2, family.lidar_max_dist)
        else:
            self.lidar = PseudoLidar(n, np.array(groups), 3, family.lidar_max_dist)
        self.observation_size = N_SENSORS + N_BINS * self.lidar.n_groups

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

    def _push_vases(self, distance: np.ndarray) -> np.ndarray:
        """Move the vases one step: robots push the vases they touch, the floor's friction slows them. Returns the
        number of vases each robot touches ``(n,)``. ``distance`` ``(n, n_vases)`` are the vases' distances from the
        robots' origins.

        The contact model: a vase (8e-6 kg) is 650 times lighter than the robot, so a push does not slow the robot.
        A vase (a box of half-size 0.1, a disc to the robot's sphere and a box turned square to the nose's front face,
        see :func:`contact`) that the robot reaches into is moved out along the contact normal and takes at least the
        robot's velocity along it; a sliding vase decelerates by ``mu g``.
        Vases do not collide with each other. MuJoCo's contacts (box corners, soft contact) are richer: this model
        agrees with Safety-Gymnasium in distribution only (see the README's measurements).
        """
        near = distance < VASE_REACH
        # Most worlds have no vase within reach and every vase at rest: only the others are worked on.
        active = np.flatnonzero(self._vases_moving | near.any(axis=1))
        contacts = np.zeros(self.n)
        if active.size == 0:
            return contacts
        vases, velocity = self.vases[active], self.vase_velocity[active]
        depth, normal = contact(self.position[:, active], vases, self.family.vase_size, box=True)
        touching = depth > 0
        gain = np.sum(normal * (self.velocity[:2, active].T[:, None, :] - velocity), axis=2)
        velocity += np.where(touching, np.maximum(gain, 0.0), 0.0)[..., None] * normal
        vases += np.where(touching, depth, 0.0)[..., None] * normal
        speed = np.sqrt(np.sum(velocity**2, axis=2))
        slowed = np.maximum(speed - VASE_FRICTION_DECELERATION * STEP_SECONDS, VASE_SLOW_DECAY * speed)
        slowed[slowed < VASE_REST_SPEED] = 0.0
        velocity *= np.where(speed > 0, slowed / np.maximum(speed, 1e-12), 0.0)[..., None]
        self.vase_velocity[active] = velocity
        self.vases[active] = vases + velocity * STEP_SECONDS
        self._vases_moving[active] = slowed.any(axis=1)
        contacts[active] = touching.sum(axis=1)
        return contacts

    def step(self, action: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        family = self.family
        self.step_robot(action)
        distance = self._distances()
        n_hazards = family.n_hazards
        contacts = self._push_vases(distance[:, 1 + n_hazards :])
        goal_distance = distance[:, 0]
        goal_met = goal_distance <= family.goal_size
        reward = self.last_goal_distance - goal_distance + goal_met
        depth = np.maximum(family.hazard_size - distance[:, 1 : 1 + n_hazards], 0.0)
        costs = {"cost_hazards": depth.sum(axis=1)}
        if family.vases_cost:
            speed = np.sqrt(np.sum(self.vase_velocity**2, axis=2))
            costs["cost_vases_contact"] = contacts
            costs["cost_vases_velocity"] = np.where(speed >= VASE_VELOCITY_THRESHOLD, speed, 0.0).sum(axis=1)
        self.last_goal_distance[:] = goal_distance  # goal_distance is a view of a reused buffer
        self.goal_met = goal_met
        for index in np.flatnonzero(goal_met):
            self._redraw_goal(index, rng)
        return reward, self.indicators(costs)

    def step_one(self, action: tuple[float, float], rng: np.random.Generator) -> tuple[float, dict[str, float]]:
        family = self.family
        self.step_robot(np.array([action]))
        x, y = self.position[0, 0].item(), self.position[1, 0].item()
        distance = [math.hypot(ox - x, oy - y) for ox, oy in self.objects[0].tolist()]
        first_vase = 1 + family.n_hazards
        contacts = 0.0
        if self._vases_moving[0] or any(d < VASE_REACH for d in distance[first_vase:]):
            contacts = float(self._push_vases(np.array([distance[first_vase:]]))[0])
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
        return reward, self.indicators(costs)

    def _distances(self) -> np.ndarray:
        """``(n, n_objects)``: each object's distance from its robot's origin, in a buffer the next call overwrites
        (contiguous x and y planes: numpy is several times slower on the interleaved pairs)."""
        dx, dy = self._offset
        np.subtract(self.objects[..., 0], self.position[0][:, None], out=dx)
        np.subtract(self.objects[..., 1], self.position[1][:, None], out=dy)
        dx *= dx
        dy *= dy
        dy += dx
        return np.sqrt(dy, out=dy)

    def _redraw_goal(self, index: int, rng: np.random.Generator) -> None:
        placement = self.family.placement
        others = [(self.position[:2, index], placement.keepout(AGENT))]
        for name, points in (("hazards", self.hazards[index]), ("vases", self.vases[index])):
            others += [(p, placement.keepout(name)) for p in points if p[0] != ABSENT]
        self.goal[index] = goal_position(rng, placement.extents, placement.keepout("goal"), others)
        self.last_goal_distance[index] = math.dist(self.position[:2, index], self.goal[index])

    def observation(self) -> np.ndarray:
        objects = self.objects[:, 1:] if self.family.hidden_goal else self.objects
        return self._observation(objects)


class ButtonWorld(PointWorld):
    """Button tasks: buttons (one the goal), hazards, gremlins circling their centres.

    ``objects`` ``(n, 4 + 1 + n_hazards + n_gremlins, 2)`` holds the buttons, the goal (on the goal button), the
    hazards and the gremlins, in the lidar's group order.

    Contacts (MuJoCo's are soft and three-dimensional; these are their planar, hard counterparts, so presses, wrong
    presses and gremlin contacts agree with Safety-Gymnasium in distribution, not step for step): the robot touches
    a button (a sphere of radius 0.1) when its own sphere is within 0.2 of the button's centre or its nose square
    within 0.1, and bounces off it (:data:`BUTTON_RESTITUTION`). A gremlin is a light box welded to a target that
    circles its centre: it follows the target with a lag (:data:`GREMLIN_LAG_SECONDS`) and, held by the stiff weld,
    acts as a moving obstacle; it touches the robot within 0.2 of the robot's origin or 0.1 of its nose (a disc for
    its box), and a robot sphere inside one is put back on its surface with an inelastic contact and Coulomb
    friction (:meth:`_collide`).
    """

    family: ButtonFamily

    def __init__(self, family: ButtonFamily, n: int):
        super().__init__(family, n)
        n_buttons, n_hazards, n_gremlins = family.n_buttons, family.n_hazards, family.n_gremlins
        self.objects = np.full((n, n_buttons + 1 + n_hazards + n_gremlins, 2), ABSENT)
        self.buttons = self.objects[:, :n_buttons]
        self.goal = self.objects[:, n_buttons]
        self.hazards = self.objects[:, n_buttons + 1 : n_buttons + 1 + n_hazards]
        self.gremlins = self.objects[:, n_buttons + 1 + n_hazards :]
        self.gremlin_centres = np.full((n, n_gremlins, 2), ABSENT)
        self.goal_button = np.zeros(n, dtype=np.intp)
        self.timer = np.zeros(n, dtype=np.intp)
        self.elapsed = np.zeros(n, dtype=np.int64)
        self.last_goal_distance = np.zeros(n)
        self.goal_met = np.zeros(n, dtype=bool)
        groups = [0] * n_buttons + [1] + [2] * n_hazards + [3] * n_gremlins
        self.lidar = PseudoLidar(n, np.array(groups), 4, family.lidar_max_dist)
        self.observation_size = N_SENSORS + N_BINS * 4

    def set_task(self, index: int, task: ButtonTask) -> None:
        super().set_task(index, task)
        self.buttons[index] = task.buttons
        self.hazards[index] = ABSENT
        self.hazards[index, : len(task.hazards)] = np.reshape(task.hazards, (-1, 2))
        self.gremlin_centres[index] = ABSENT
        self.gremlin_centres[index, : len(task.gremlins)] = np.reshape(task.gremlins, (-1, 2))

    def reset(self, index: int, rng: np.random.Generator, state: Any = None) -> None:
        task: ButtonTask = self.tasks[index]  # type: ignore[assignment]
        self.goal_button[index] = task.goal_button
        self.goal[index] = self.buttons[index, task.goal_button]
        self.gremlins[index] = self.gremlin_centres[index]
        self.timer[index] = 0
        self.elapsed[index] = 0
        if state is None:
            self.place_robot(index, task.agent)
        else:
            self.place_robot(index, state.position, state.velocity)
        self.last_goal_distance[index] = math.dist(self.position[:2, index], self.goal[index])

    def _collide(self, depth: np.ndarray, normal: np.ndarray, friction: float, restitution: float) -> None:
        """Move robots out of the obstacles that :func:`contact` found them in (``depth``, ``normal``): the velocity
        into the obstacle is reversed times ``restitution`` and the sideways velocity shrinks by ``friction`` times
        the velocity into it (Coulomb). Contacts are rare: a loop."""
        for index, obstacle in zip(*np.nonzero(depth > 0)):
            towards = normal[index, obstacle]
            self.position[:2, index] -= depth[index, obstacle] * towards
            velocity = self.velocity[:2, index]
            into = float(velocity @ towards)
            if into <= 0:
                continue
            sideways = velocity - into * towards
            speed = float(np.hypot(*sideways))
            kept = max(speed - friction * into, 0.0) / speed if speed > 0 else 0.0
            self.velocity[:2, index] = kept * sideways - restitution * into * towards

    def _move_gremlins(self) -> None:
        """Gremlins follow their circling targets with the weld's lag."""
        time = self.elapsed * STEP_SECONDS
        travel = self.family.gremlin_travel
        target = self.gremlin_centres + travel * np.stack([np.sin(time), np.cos(time)], axis=1)[:, None, :]
        self.gremlins += (target - self.gremlins) * (1.0 - math.exp(-STEP_SECONDS / GREMLIN_LAG_SECONDS))

    def step(self, action: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        family = self.family
        self.step_robot(action)
        self.elapsed += 1
        self._move_gremlins()
        # A press is any touch (sphere or nose), and both block; a gremlin touches either but blocks only the sphere,
        # after the buttons have moved the robot.
        button_depth, button_normal = contact(self.position, self.buttons, family.button_size)
        pressed = button_depth > 0
        gremlin_contact = contact(self.position, self.gremlins, family.gremlin_size)[0] > 0
        self._collide(button_depth, button_normal, friction=BUTTON_FRICTION, restitution=BUTTON_RESTITUTION)
        self._collide(*contact(self.position, self.gremlins, family.gremlin_size, nose=False),
                      friction=GREMLIN_FRICTION, restitution=0.0)
        rows = np.arange(self.n)
        goal_met = pressed[rows, self.goal_button]
        goal_distance = np.sqrt(np.sum((self.goal - self.position[:2].T) ** 2, axis=1))
        reward = self.last_goal_distance - goal_distance + goal_met
        wrong = pressed.copy()
        wrong[rows, self.goal_button] = False
        hazard_distance = np.sqrt(np.sum((self.hazards - self.position[:2].T[:, None, :]) ** 2, axis=2))
        costs = {
            # Wrong presses count only while no press is being waited out (Safety-Gymnasium's timer).
            "cost_buttons": np.where(self.timer == 0, wrong.sum(axis=1), 0).astype(float),
            "cost_hazards": np.maximum(family.hazard_size - hazard_distance, 0.0).sum(axis=1),
            "cost_gremlins": gremlin_contact.sum(axis=1).astype(float),
        }
        self.timer = np.maximum(self.timer - 1, 0)
        self.last_goal_distance[:] = goal_distance  # goal_distance is a view of a reused buffer
        self.goal_met = goal_met
        for index in np.flatnonzero(goal_met):
            self._new_goal_button(index, rng)
        return reward, self.indicators(costs)

    def _new_goal_button(self, index: int, rng: np.random.Generator) -> None:
        # Drawn with replacement, as Safety-Gymnasium does: the same button may be the goal again.
        self.goal_button[index] = rng.integers(self.family.n_buttons)
        self.goal[index] = self.buttons[index, self.goal_button[index]]
        self.last_goal_distance[index] = math.dist(self.position[:2, index], self.goal[index])
        self.timer[index] = self.family.resampling_delay

    def step_one(self, action: tuple[float, float], rng: np.random.Generator) -> tuple[float, dict[str, float]]:
        reward, costs = self.step(np.array([action]), rng)
        return float(reward[0]), {name: float(value[0]) for name, value in costs.items()}

    def observation(self) -> np.ndarray:
        observation = self._observation(self.objects)
        # The buttons' lidar reads zero while a press is being waited out.
        observation[self.timer != 0, N_SENSORS : N_SENSORS + N_BINS] = 0.0
        return observation


class CircleWorld(PointWorld):
    """Circle tasks: reward for running counter-clockwise along the circle, cost beyond the walls."""

    family: CircleFamily

    def __init__(self, family: CircleFamily, n: int):
        super().__init__(family, n)
        self.radius = np.full(n, 1.5)
        self.wall = np.full(n, 1.125)
        self.observation_size = N_SENSORS + N_BINS
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
        self.step_robot(np.array([action]))
        x, y = self.position[0, 0].item(), self.position[1, 0].item()
        u, v = self.velocity[0, 0].item(), self.velocity[1, 0].item()
        rho = math.hypot(x, y)
        radius, wall = self.radius[0].item(), self.wall[0].item()
        reward = self.family.reward_factor * ((-u * y + v * x) / rho) / (1 + abs(rho - radius))
        outside = abs(x) > wall or (self.family.four_walls and abs(y) > wall)
        return reward, {"cost_out_of_boundary": float(outside)}

    def observation(self) -> np.ndarray:
        return self._observation(self._centre)


def make_world(family: PointFamily, n: int) -> PointWorld:
    """The world class of ``family``'s tasks, with ``n`` environments."""
    if isinstance(family, GoalFamily):
        return GoalWorld(family, n)
    if isinstance(family, CircleFamily):
        return CircleWorld(family, n)
    if isinstance(family, ButtonFamily):
        return ButtonWorld(family, n)
    raise TypeError(f"no navigation world for {type(family).__name__}")
