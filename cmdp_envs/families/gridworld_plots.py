"""Pictures of gridworld policies: arrows on the grid as text and as a matplotlib figure (the paper's Figure 1)."""

from __future__ import annotations

from typing import Any

import numpy as np

from cmdp_envs.families.gridworld import ACTION_ARROWS, MOVES, SIZE, GridWorldTask, cell_to_state

__all__ = ["policy_text", "draw_policy"]


def policy_text(task: GridWorldTask, policy: np.ndarray) -> str:
    """The most likely action of every cell as an arrow, top row ``y = 6`` first; ``G`` marks the goal and brackets
    mark unsafe cells, e.g. ``[↑]``."""
    policy = np.asarray(policy)
    lines = []
    for y in reversed(range(SIZE)):
        cells = []
        for x in range(SIZE):
            if (x, y) == task.goal:
                symbol = "G"
            else:
                symbol = ACTION_ARROWS[int(np.argmax(policy[cell_to_state((x, y))]))]
            cells.append(f"[{symbol}]" if (x, y) in task.unsafe_cells else f" {symbol} ")
        lines.append(f"y={y} " + "".join(cells))
    lines.append("    " + "".join(f" {x} " for x in range(SIZE)) + "  (x)")
    return "\n".join(lines)


def draw_policy(ax: Any, task: GridWorldTask, policy: np.ndarray, title: str | None = None) -> None:
    """Draw the grid (goal green, unsafe cells red) and, in every other cell, one arrow per action with length
    proportional to its probability."""
    from matplotlib.patches import Rectangle

    policy = np.asarray(policy)
    ax.set_xlim(-0.5, SIZE - 0.5)
    ax.set_ylim(-0.5, SIZE - 0.5)
    ax.set_aspect("equal")
    ax.set_xticks(range(SIZE))
    ax.set_yticks(range(SIZE))
    for k in range(SIZE + 1):
        ax.axhline(k - 0.5, color="0.6", lw=0.8)
        ax.axvline(k - 0.5, color="0.6", lw=0.8)
    for x, y in task.unsafe_cells:
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, color="tab:red", alpha=0.45, lw=0))
    gx, gy = task.goal
    ax.add_patch(Rectangle((gx - 0.5, gy - 0.5), 1, 1, color="tab:green", alpha=0.55, lw=0))
    for y in range(SIZE):
        for x in range(SIZE):
            if (x, y) == task.goal:
                continue
            for action, (dx, dy) in enumerate(MOVES):
                p = policy[cell_to_state((x, y)), action]
                if p < 0.02:
                    continue
                length = 0.38 * p
                ax.arrow(x, y, dx * length, dy * length, width=0.03, head_width=0.14, head_length=0.1,
                         length_includes_head=False, color="black")
    if title:
        ax.set_title(title, fontsize=10)
