"""Safety-Gymnasium's layout placement: where the robot, the goal, hazards and vases start.

Each object has a *keepout* radius. Objects are placed in a fixed order (robot, goal, hazards, vases), each uniform in
the arena's extents shrunk by its keepout, and a draw is rejected when it lies closer to an already placed object
than the sum of the two keepouts; an object gets 100 draws, a layout 10,000 attempts. Then the robot's heading and
every object's rotation are drawn uniform in ``[0, 2 pi)``, and, as Safety-Gymnasium's reset does, the goal is drawn
once more against the finished layout.

:func:`layout_from_seed` runs this procedure on ``np.random.RandomState(seed)`` and consumes its numbers in
Safety-Gymnasium's order, so it gives exactly the layout of ``safety_gymnasium.make(id).reset(seed=seed)``.
:func:`goal_position` is the mid-episode redraw of the goal after it is reached.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Protocol

import numpy as np

__all__ = ["Placement", "SeededLayout", "layout_from_seed", "goal_position", "LayoutError"]

#: Attempts at a whole layout, and draws per object, before giving up (Safety-Gymnasium's numbers).
LAYOUT_ATTEMPTS = 10_000
OBJECT_DRAWS = 100


class LayoutError(RuntimeError):
    """No layout satisfies the keepouts (too many objects for the arena)."""


class _Uniform(Protocol):
    def uniform(self, low: float, high: float) -> float: ...


@dataclasses.dataclass(frozen=True)
class Placement:
    """What the placement procedure needs of an arena: its extents ``(xmin, ymin, xmax, ymax)`` and the keepouts of
    the robot, the goal, each hazard and each vase, with the number of hazards and vases."""

    extents: tuple[float, float, float, float]
    agent_keepout: float
    goal_keepout: float
    hazard_keepout: float
    vase_keepout: float
    n_hazards: int
    n_vases: int

    def keepouts(self) -> list[float]:
        """The keepouts in placement order: robot, goal, hazards, vases."""
        return [self.agent_keepout, self.goal_keepout] + [self.hazard_keepout] * self.n_hazards + [
            self.vase_keepout
        ] * self.n_vases


@dataclasses.dataclass(frozen=True)
class SeededLayout:
    """A placed layout: robot pose ``(x, y, heading)``, goal, hazards, vases (and the vases' rotations)."""

    agent: tuple[float, float, float]
    goal: tuple[float, float]
    hazards: tuple[tuple[float, float], ...]
    vases: tuple[tuple[float, float], ...]
    vase_rotations: tuple[float, ...]


def _draw(rng: _Uniform, extents: tuple[float, float, float, float], keepout: float) -> np.ndarray:
    xmin, ymin, xmax, ymax = extents
    return np.array([rng.uniform(xmin + keepout, xmax - keepout), rng.uniform(ymin + keepout, ymax - keepout)])


def _clear(point: np.ndarray, keepout: float, placed: list[tuple[np.ndarray, float]]) -> bool:
    # Safety-Gymnasium rejects when the distance is *less* than the sum of keepouts (its placement margin is 0).
    return all(math.dist(point, other) >= keepout + other_keepout for other, other_keepout in placed)


def _sample_layout(rng: _Uniform, placement: Placement) -> list[tuple[np.ndarray, float]] | None:
    placed: list[tuple[np.ndarray, float]] = []
    for keepout in placement.keepouts():
        for _ in range(OBJECT_DRAWS):
            point = _draw(rng, placement.extents, keepout)
            if _clear(point, keepout, placed):
                placed.append((point, keepout))
                break
        else:
            return None
    return placed


def goal_position(rng: _Uniform, placement: Placement, others: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """A goal drawn uniform in the extents shrunk by its keepout, redrawn (up to 10,000 times) until it keeps out of
    every object in ``others`` (``(position, keepout)`` pairs: the robot where it is now, hazards, vases)."""
    for _ in range(LAYOUT_ATTEMPTS):
        goal = _draw(rng, placement.extents, placement.goal_keepout)
        if _clear(goal, placement.goal_keepout, others):
            return goal
    raise LayoutError(f"no goal position keeps out of the layout after {LAYOUT_ATTEMPTS} draws")


def layout_from_seed(seed: int, placement: Placement) -> SeededLayout:
    """The layout Safety-Gymnasium builds on ``reset(seed=seed)``, by its procedure and its random stream."""
    rng = np.random.RandomState(seed)
    for _ in range(LAYOUT_ATTEMPTS):
        placed = _sample_layout(rng, placement)
        if placed is not None:
            break
    else:
        raise LayoutError(f"no layout satisfies the keepouts of {placement} after {LAYOUT_ATTEMPTS} attempts")
    heading = rng.uniform(0, 2 * math.pi)
    # One rotation per object (the goal's and the hazards' are drawn although they are round).
    rotations = [rng.uniform(0, 2 * math.pi) for _ in range(1 + placement.n_hazards + placement.n_vases)]
    # Safety-Gymnasium's reset then redraws the goal against everything else.
    others = [placed[0]] + placed[2:]
    goal = goal_position(rng, placement, others)
    hazards = placed[2 : 2 + placement.n_hazards]
    vases = placed[2 + placement.n_hazards :]
    point = lambda xy: (float(xy[0]), float(xy[1]))  # noqa: E731
    return SeededLayout(
        agent=(float(placed[0][0][0]), float(placed[0][0][1]), float(heading)),
        goal=point(goal),
        hazards=tuple(point(xy) for xy, _ in hazards),
        vases=tuple(point(xy) for xy, _ in vases),
        vase_rotations=tuple(float(r) for r in rotations[1 + placement.n_hazards :]),
    )
