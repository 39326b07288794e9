"""Safety-Gymnasium's pseudo-lidar, vectorised over environments and objects.

For each object group (goal, hazards, vases, ...) the reading is ``n_bins`` numbers in ``[0, 1]``. Each object at
body-frame offset ``e`` from the robot falls in bin ``b = floor(theta / w)`` of its bearing
``theta = atan2(e_y, e_x) mod 2 pi`` (``w = 2 pi / n_bins``) with strength ``s = max(0, max_dist - |e|) / max_dist``;
the bin keeps the largest strength of its objects. With aliasing (Safety-Gymnasium's default) the object also
lights its two neighbouring bins in proportion to where in its bin it lies: ``alpha s`` the next bin
(``alpha = theta / w - b``) and ``(1 - alpha) s`` the previous one, again keeping maxima.

Objects that are absent from a task (a family's fixed number of slots, fewer used) sit at :data:`ABSENT`, far beyond
any ``max_dist``, so they read zero without a mask.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["N_BINS", "ABSENT", "pseudo_lidar"]

N_BINS = 16
#: Where absent objects are parked: strength 0 for any sensible ``max_dist``, never within reach of the robot.
ABSENT = 1.0e6


def pseudo_lidar(
    origin: np.ndarray,
    heading: np.ndarray,
    objects: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    max_dist: float,
    n_bins: int = N_BINS,
    alias: bool = True,
) -> np.ndarray:
    """Lidar readings of every group for every environment.

    :param origin: ``(N, 2)`` world positions of the robots.
    :param heading: ``(N,)`` headings ``psi`` (the body frame's x axis is ``(cos psi, sin psi)``).
    :param objects: ``(N, K, 2)`` world positions of the objects.
    :param group: ``(K,)`` int, the group of each object, in ``[0, n_groups)``.
    :param n_groups: the number of groups (a group without objects reads all zeros).
    :param max_dist: the distance at which the strength reaches zero.
    :returns: ``(N, n_groups * n_bins)``: the groups' readings side by side, in group order.
    """
    n_envs, n_objects = objects.shape[:2]
    out = np.zeros(n_envs * n_groups * n_bins)
    if n_objects == 0:
        return out.reshape(n_envs, n_groups * n_bins)
    dx = objects[..., 0] - origin[:, 0:1]
    dy = objects[..., 1] - origin[:, 1:2]
    cos_psi = np.cos(heading)[:, None]
    sin_psi = np.sin(heading)[:, None]
    ex = cos_psi * dx + sin_psi * dy
    ey = cos_psi * dy - sin_psi * dx
    width = 2 * math.pi / n_bins
    position = (np.arctan2(ey, ex) % (2 * math.pi)) / width
    bins = position.astype(np.intp)
    strength = np.maximum(0.0, max_dist - np.hypot(ex, ey)) / max_dist
    base = (np.arange(n_envs)[:, None] * n_groups + group[None, :]) * n_bins
    # ``position`` can round up to exactly n_bins; the modulo puts it back in bin 0 as atan2's 2 pi is 0.
    np.maximum.at(out, (base + bins % n_bins).ravel(), strength.ravel())
    if alias:
        alpha = position - bins
        np.maximum.at(out, (base + (bins + 1) % n_bins).ravel(), (alpha * strength).ravel())
        np.maximum.at(out, (base + (bins - 1) % n_bins).ravel(), ((1 - alpha) * strength).ravel())
    return out.reshape(n_envs, n_groups * n_bins)
