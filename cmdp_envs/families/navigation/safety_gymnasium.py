"""Read a live Safety-Gymnasium env into this package's terms (lane B, where ``safety_gymnasium`` is installed).

``task, state = from_safety_gymnasium(sg_env)`` returns the env's current layout as a task (Goal: robot pose, goal,
hazards, vases where they are now; Button: robot pose, buttons, goal button, hazards, the gremlins' centres; Circle:
radius and wall distance) and the robot's state in the world frame, so
``env.reset(options={"task": task, "state": state})`` continues from the same situation.

Safety-Gymnasium places the robot's body at its layout pose and rotates it by the start heading ``psi0``; its
``x``/``y`` slide joints then move along the rotated axes and its hinge adds to ``psi0``. So the world heading is
``psi0 + qpos[2]`` and the world velocity is ``R(psi0) (qvel[0], qvel[1])``.
"""

from __future__ import annotations

import math
from typing import Any

from cmdp_envs.families.navigation.env import RobotState
from cmdp_envs.families.navigation.tasks import ButtonTask, CircleTask, GoalTask, PointTask

__all__ = ["from_safety_gymnasium", "robot_state"]


def _task_of(env: Any) -> Any:
    inner = getattr(env, "unwrapped", env)
    task = getattr(inner, "task", None)
    if task is None or not hasattr(task, "agent") or not hasattr(task, "data"):
        raise TypeError(f"expected a Safety-Gymnasium env (safety_gymnasium.make(...)), got {env!r}")
    return task


def robot_state(env: Any) -> RobotState:
    """The robot's world-frame pose and velocity in a Safety-Gymnasium env."""
    sg_task = _task_of(env)
    model, data = sg_task.model, sg_task.data
    quaternion = model.body("agent").quat
    start_heading = 2 * math.atan2(float(quaternion[3]), float(quaternion[0]))
    cos_0, sin_0 = math.cos(start_heading), math.sin(start_heading)
    x, y = (float(v) for v in data.body("agent").xpos[:2])
    vx, vy, omega = (float(v) for v in data.qvel[:3])
    return RobotState(
        position=(x, y, start_heading + float(data.qpos[2])),
        velocity=(cos_0 * vx - sin_0 * vy, sin_0 * vx + cos_0 * vy, omega),
    )


def from_safety_gymnasium(env: Any, cost_limit: float | None = None) -> tuple[PointTask, RobotState]:
    """The current task and robot state of a Safety-Gymnasium point-robot Goal, Button or Circle env.

    :param env: ``safety_gymnasium.make("SafetyPointGoal1-v0")`` or similar, after ``reset``.
    :param cost_limit: the task's ``cost_limit`` (default: the task type's default).
    """
    sg_task = _task_of(env)
    state = robot_state(env)
    limit = {} if cost_limit is None else {"cost_limit": float(cost_limit)}
    xy = lambda position: (float(position[0]), float(position[1]))  # noqa: E731
    if hasattr(sg_task, "buttons"):
        layout = sg_task.world_info.layout
        gremlins = tuple(xy(layout[f"gremlin{i}"]) for i in range(sg_task.gremlins.num)) \
            if hasattr(sg_task, "gremlins") else ()
        task = ButtonTask(
            agent=state.position, buttons=tuple(xy(p) for p in sg_task.buttons.pos),
            goal_button=int(sg_task.buttons.goal_button), hazards=tuple(xy(p) for p in sg_task.hazards.pos),
            gremlins=gremlins, **limit,
        )
    elif hasattr(sg_task, "goal") and hasattr(sg_task, "hazards"):
        vases = tuple(xy(p) for p in sg_task.vases.pos) if hasattr(sg_task, "vases") else ()
        task: PointTask = GoalTask(
            agent=state.position, goal=xy(sg_task.goal.pos), hazards=tuple(xy(p) for p in sg_task.hazards.pos),
            vases=vases, **limit,
        )
    elif hasattr(sg_task, "circle"):
        walls = getattr(sg_task, "sigwalls", None)
        task = CircleTask(radius=float(sg_task.circle.radius),
                          wall=float(walls.locate_factor) if walls is not None else math.inf, **limit)
    else:
        raise TypeError(f"only Goal, Button and Circle tasks can be read, got {type(sg_task).__name__}")
    return task, state
