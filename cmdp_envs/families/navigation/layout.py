"""Safety-Gymnasium's layout placement: where the robot and the objects of a task start.

Each object has a *keepout* radius. Objects are placed in a fixed order (the robot, then the task's object groups in
the order the task adds them), each uniform in the arena's extents shrunk by its keepout, and a draw is rejected
when it lies closer to an already placed object than the sum of the two keepouts; an object gets 100 draws, a layout
10,000 attempts. Then the robot's heading and every other object's rotation are drawn uniform in ``[0, 2 pi)``.
The task's reset follows on the same random stream (Goal redraws its goal against the layout, Button picks its goal
button), which the families do with the stream :func:`layout_from_seed` hands back.

:func:`layout_from_seed` runs this procedure on ``np.random.RandomState(seed)`` and consumes its numbers in
Safety-Gymnasium's order, so it gives exactly the layout of ``safety_gymnasium.make(id).reset(seed=seed)``.
:func:`goal_position` is the goal's draw (at reset and after the goal is reached).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import numpy as np

__all__ = ["Placement", "layout_from_seed", "goal_position", "LayoutError", "AGENT"]

#: Attempts at a whole layout, and draws per object, before giving up (Safety-Gymnasium's numbers).
LAYOUT_ATTEMPTS = 10_000
OBJECT_DRAWS = 100
#: The robot's group name; it is always placed first.
AGENT = "agent"


class LayoutError(RuntimeError):
    """No layout satisfies the keepouts (too many objects for the arena)."""


class _Uniform(Protocol):
    def uniform(self, low: float, high: float) -> float: ...


@dataclasses.dataclass(frozen=True)
class Placement:
    """What the placement procedure needs of an arena: its extents ``(xmin, ymin, xmax, ymax)`` and, in placement
    order, each group's name, keepout and number of objects (the robot, :data:`AGENT`, first)."""

    extents: tuple[float, float, float, float]
    groups: tuple[tuple[str, float, int], ...]

    def __post_init__(self) -> None:
        if not self.groups or self.groups[0][0] != AGENT:
            raise ValueError(f"the robot ({AGENT!r}) is placed first, got groups {self.groups}")

    def keepout(self, name: str) -> float:
        return next(keepout for group, keepout, _ in self.groups if group == name)


def _draw(rng: _Uniform, extents: tuple[float, float, float, float], keepout: float) -> tuple[float, float]:
    xmin, ymin, xmax, ymax = extents
    return rng.uniform(xmin + keepout, xmax - keepout), rng.uniform(ymin + keepout, ymax - keepout)


def _clear(x: float, y: float, keepout: float, placed: list[tuple[float, float, float]]) -> bool:
    # Safety-Gymnasium rejects when the distance is *less* than the sum of keepouts (its placement margin is 0).
    return all((x - ox) ** 2 + (y - oy) ** 2 >= (keepout + other) ** 2 for ox, oy, other in placed)


def _sample_layout(rng: _Uniform, placement: Placement) -> list[tuple[str, float, float, float]] | None:
    placed: list[tuple[float, float, float]] = []
    names: list[str] = []
    for name, keepout, count in placement.groups:
        for _ in range(count):
            for _ in range(OBJECT_DRAWS):
                x, y = _draw(rng, placement.extents, keepout)
                if _clear(x, y, keepout, placed):
                    placed.append((x, y, keepout))
                    names.append(name)
                    break
            else:
                return None
    return [(name, x, y, keepout) for name, (x, y, keepout) in zip(names, placed)]


def goal_position(rng: _Uniform, extents: tuple[float, float, float, float], keepout: float,
                  others: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """A goal drawn uniform in ``extents`` shrunk by its ``keepout``, redrawn (up to 10,000 times) until it keeps out
    of every object in ``others`` (``(position, keepout)`` pairs)."""
    placed = [(float(point[0]), float(point[1]), float(other)) for point, other in others]
    for _ in range(LAYOUT_ATTEMPTS):
        x, y = _draw(rng, extents, keepout)
        if _clear(x, y, keepout, placed):
            return np.array([x, y])
    raise LayoutError(f"no goal position keeps out of the layout after {LAYOUT_ATTEMPTS} draws")


def layout_from_seed(
    seed: int, placement: Placement
) -> tuple[dict[str, list[tuple[np.ndarray, float]]], float, np.random.RandomState]:
    """The layout Safety-Gymnasium builds on ``reset(seed=seed)``, by its procedure and its random stream.

    :returns: each group's ``(position, keepout)`` pairs by name, the robot's heading, and the random stream after
        the rotations (where the task's own reset draws continue).
    """
    rng = np.random.RandomState(seed)
    for _ in range(LAYOUT_ATTEMPTS):
        placed = _sample_layout(rng, placement)
        if placed is not None:
            break
    else:
        raise LayoutError(f"no layout satisfies the keepouts of {placement} after {LAYOUT_ATTEMPTS} attempts")
    heading = rng.uniform(0, 2 * math.pi)
    # One rotation per object but the robot, drawn although most objects are round.
    for _ in range(len(placed) - 1):
        rng.uniform(0, 2 * math.pi)
    groups: dict[str, list[tuple[np.ndarray, float]]] = {name: [] for name, _, _ in placement.groups}
    for name, x, y, keepout in placed:
        groups[name].append((np.array([x, y]), keepout))
    return groups, float(heading), rng
