"""The ``cmdp_envs/...`` Gymnasium ids: one row per registered environment."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import gymnasium as gym

from cmdp_envs.task import Fixed, Uniform

NAMESPACE = "cmdp_envs"


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """One registered id: its entry point, default keyword arguments and a one-line description for ``cmdp-envs list``."""

    name: str
    entry_point: str
    summary: str
    max_episode_steps: int
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: A native vector env (``gym.make_vec(..., vectorization_mode="vector_entry_point")`` on Gymnasium 1.x).
    vector_entry_point: str | None = None

    @property
    def id(self) -> str:
        return f"{NAMESPACE}/{self.name}"


SPECS: tuple[EnvSpec, ...] = (
    EnvSpec(
        name="GridWorld-v0",
        entry_point="cmdp_envs.families.gridworld:GridWorldEnv",
        summary="Ni & Kamgarpour's 7x7 safe-navigation gridworld; tasks vary the dynamics noise ~ N(0.3, 0.03).",
        max_episode_steps=200,
    ),
    EnvSpec(
        name="GridWorldVaried-v0",
        entry_point="cmdp_envs.families.gridworld:GridWorldEnv",
        summary="The 7x7 gridworld with tasks varying reward (goal cell), constraint (unsafe layout, cost limit) "
        "and dynamics (noise).",
        max_episode_steps=200,
        kwargs={"variant": "varied"},
    ),
    EnvSpec(
        name="PointNavigation-v0",
        entry_point="cmdp_envs.families.point_navigation:PointNavigationEnv",
        summary="A point robot on continuous state seeking a hidden goal past a circular hazard; tasks vary reward "
        "(goal), constraint (hazard, cost limit) and dynamics (noise). No tabular model.",
        max_episode_steps=50,
    ),
    *(
        EnvSpec(
            name=name,
            entry_point="cmdp_envs.families.navigation.env:NavigationEnv",
            vector_entry_point="cmdp_envs.families.navigation.env:NavigationVectorEnv",
            summary=summary,
            max_episode_steps=steps,
            kwargs={"kind": kind, "id_defaults": defaults},
        )
        for name, summary, steps, kind, defaults in (
            ("PointGoal1-v0", "Safety-Gymnasium's SafetyPointGoal1 as a task family: point robot, goal, 8 hazards, 1 "
             "vase; layouts by its placement procedure; numpy, vectorised.", 1000, "goal", {"level": 1}),
            ("PointGoal2-v0", "Safety-Gymnasium's SafetyPointGoal2: 10 hazards and 10 vases that cost on contact "
             "and when moving.", 1000, "goal", {"level": 2}),
            ("PointGoalArc1-v0", "C-MAML's goal tasks: layouts kept when the goal lies in a 140-degree arc ahead of "
             "the start; 9 hazards, 1 vase.", 1000, "goal", {"level": 1, "n_hazards": 9, "goal_arc": 140.0}),
            ("PointGoalArc2-v0", "C-MAML's goal tasks with 10 hazards and 10 vases that cost (level 2) in a "
             "140-degree arc.", 1000, "goal", {"level": 2, "goal_arc": 140.0}),
            ("PointButton1-v0", "Safety-Gymnasium's SafetyPointButton1: press the goal button among four; wrong "
             "buttons, 4 hazards and 4 moving gremlins cost.", 1000, "button", {"level": 1}),
            ("PointButton2-v0", "Safety-Gymnasium's SafetyPointButton2: 8 hazards and 6 gremlins.", 1000, "button",
             {"level": 2}),
            ("PointCircle1-v0", "Safety-Gymnasium's SafetyPointCircle1: run along a circle of radius 1.5, two walls "
             "at |x| = 1.125.", 500, "circle", {"level": 1}),
            ("PointCircle2-v0", "Safety-Gymnasium's SafetyPointCircle2: four walls.", 500,
             "circle", {"level": 2}),
            ("PointCircleMetaCPO-v0", "Meta-CPO's Circle tasks: radius ~ U[1.0, 1.5], two walls at the radius times "
             "U[0.55, 0.75].", 500, "circle", {"radius": Uniform(1.0, 1.5), "wall_factor": Uniform(0.55, 0.75)}),
        )
    ),
    *(
        EnvSpec(
            name=name,
            entry_point="cmdp_envs.families.locomotion:LocomotionEnv",
            vector_entry_point="cmdp_envs.families.locomotion:LocomotionVectorEnv",
            summary=summary,
            max_episode_steps=1000,
            kwargs={"id_defaults": defaults},
        )
        for name, summary, defaults in (
            *((f"{robot}Locomotion-v0", f"Gymnasium's {robot} as a task family over reward (target velocity), "
               "constraint (Safety-Gymnasium's velocity cost, cost limit) and dynamics (mass, friction, damping "
               "scales).",
               {"robot": robot, "cost_limit": Uniform(5.0, 15.0), "mass_scale": Uniform(0.8, 1.2),
                "friction_scale": Uniform(0.8, 1.2), "damping_scale": Uniform(0.8, 1.2)})
              for robot in ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid", "Swimmer")),
            ("HopperNiKamgarpour-v0", "Ni & Kamgarpour's Hopper (H.2): target velocity ~ N(0.5, 0.1) truncated to "
             "[0, 1], cost the control effort; a fallen Hopper's episode runs on to its time limit.",
             {"robot": "Hopper", "cost": "control", "cost_limit": Fixed(50.0), "terminate_when_unhealthy": False}),
            ("HalfCheetahNiKamgarpour-v0", "Ni & Kamgarpour's Half-Cheetah (H.2): target velocity ~ N(1, 0.3) "
             "truncated to [0, 2], cost 1 when the head is above 0.9 m.",
             {"robot": "HalfCheetah", "cost": "head_height", "cost_limit": Fixed(5.0)}),
            *((f"{robot}Velocity-v0", f"Safety-Gymnasium's Safety{robot}Velocity-v1: {robot}'s own reward, cost 1 "
               "above its velocity threshold, episode-cost limit 25 (OmniSafe's).",
               {"robot": robot, "reward": "gymnasium", "cost_semantics": "undiscounted"})
              for robot in ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid", "Swimmer")),
        )
    ),
)


def register_all() -> None:
    """Register every id with Gymnasium; idempotent, so re-importing or reloading the package is harmless."""
    for spec in SPECS:
        if spec.id in gym.registry:
            continue
        extra = {}
        # Gymnasium 0.28.1's register has no vector entry point; there the vector class is used directly.
        if spec.vector_entry_point and "vector_entry_point" in inspect.signature(gym.register).parameters:
            extra["vector_entry_point"] = spec.vector_entry_point
        gym.register(
            id=spec.id,
            entry_point=spec.entry_point,
            max_episode_steps=spec.max_episode_steps,
            kwargs=dict(spec.kwargs),
            **extra,
        )


def registered_ids() -> list[str]:
    """Every id this package registers, in registration order."""
    return [spec.id for spec in SPECS]


def registered_ids_for(env_class: type) -> list[str]:
    """The ids whose entry point is ``env_class``, in registration order (for error messages)."""
    entry_point = f"{env_class.__module__}:{env_class.__name__}"
    return [spec.id for spec in SPECS if spec.entry_point == entry_point]
