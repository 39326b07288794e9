"""The ``cmdp_envs/...`` Gymnasium ids: one row per registered environment."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym

NAMESPACE = "cmdp_envs"


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """One registered id: its entry point, default keyword arguments and a one-line description for ``cmdp-envs list``."""

    name: str
    entry_point: str
    summary: str
    max_episode_steps: int
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)

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
)


def register_all() -> None:
    """Register every id with Gymnasium; idempotent, so re-importing or reloading the package is harmless."""
    for spec in SPECS:
        if spec.id in gym.registry:
            continue
        gym.register(
            id=spec.id,
            entry_point=spec.entry_point,
            max_episode_steps=spec.max_episode_steps,
            kwargs=dict(spec.kwargs),
        )


def registered_ids() -> list[str]:
    """Every id this package registers, in registration order."""
    return [spec.id for spec in SPECS]


def registered_ids_for(env_class: type) -> list[str]:
    """The ids whose entry point is ``env_class``, in registration order (for error messages)."""
    entry_point = f"{env_class.__module__}:{env_class.__name__}"
    return [spec.id for spec in SPECS if spec.entry_point == entry_point]
