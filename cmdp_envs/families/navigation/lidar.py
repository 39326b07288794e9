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

import numba
import numpy as np

__all__ = ["N_BINS", "ABSENT", "PseudoLidar"]

N_BINS = 16
#: Where absent objects are parked: strength 0 for any sensible ``max_dist``, never within reach of the robot.
ABSENT = 1.0e6


class PseudoLidar:
    """The lidar of ``n_envs`` robots over a fixed list of objects, each in a group.

    :param n_envs: the number of environments ``N``.
    :param group: ``(K,)`` int, the group of each object, in ``[0, n_groups)``.
    :param n_groups: the number of groups (a group without objects reads all zeros).
    :param max_dist: the distance at which the strength reaches zero.
    :param alias: light the neighbouring bins too (Safety-Gymnasium's default).
    """

    def __init__(self, n_envs: int, group: np.ndarray, n_groups: int, max_dist: float, n_bins: int = N_BINS,
                 alias: bool = True):
        self.n_envs, self.n_groups, self.n_bins = n_envs, n_groups, n_bins
        self.max_dist, self.alias = float(max_dist), alias
        #: Where each object's group starts in a robot's readings.
        self._base = np.asarray(group, dtype=np.intp) * n_bins
        # The offsets and bearings live in buffers kept across calls (fresh arrays cost more than the arithmetic).
        pairs = (n_envs, len(group))
        self._buffers = (np.empty(pairs), np.empty(pairs), np.empty(pairs))

    def __call__(self, origin: np.ndarray, heading: np.ndarray, objects: np.ndarray, out: np.ndarray) -> None:
        """The readings into ``out`` ``(N, n_groups * n_bins)`` (a view into the observations, say), the groups side
        by side in group order.

        :param origin: ``(N, 2)`` world positions of the robots.
        :param heading: ``(N,)`` headings ``psi`` (the body frame's x axis is ``(cos psi, sin psi)``).
        :param objects: ``(N, K, 2)`` world positions of the objects.
        """
        dx, dy, bearing = self._buffers
        np.subtract(objects[..., 0], origin[:, 0:1], out=dx)
        np.subtract(objects[..., 1], origin[:, 1:2], out=dy)
        # numpy's vectorised arctan2 is several times faster than a compiled loop's scalar one; the rest is a loop.
        np.arctan2(dy, dx, out=bearing)
        _read(bearing, dx, dy, heading, self._base, self.n_bins, self.max_dist, self.alias, out)


@numba.njit(cache=True)
def _read(bearing: np.ndarray, dx: np.ndarray, dy: np.ndarray, heading: np.ndarray, base: np.ndarray, n_bins: int,
          max_dist: float, alias: bool, out: np.ndarray) -> None:
    """The readings into ``out`` ``(N, n_groups * n_bins)`` from each object's world bearing ``(N, K)`` and offset.
    The body-frame bearing is the world bearing less the heading (no rotation of every offset), in bins; its floor
    wrapped into ``[0, n_bins)`` is the bin of ``theta mod 2 pi`` and its fractional part the alias weight. The
    distance does not depend on the frame."""
    to_bins = n_bins / (2 * math.pi)
    # Bins wrap with a bit mask when n_bins is a power of two (such as 16): integer modulo costs several times more.
    mask = n_bins - 1 if n_bins & (n_bins - 1) == 0 else -1
    for i in range(out.shape[0]):
        row = out[i]
        row[:] = 0.0
        heading_in_bins = heading[i] * to_bins
        for k in range(bearing.shape[1]):
            strength = (max_dist - math.sqrt(dx[i, k] * dx[i, k] + dy[i, k] * dy[i, k])) / max_dist
            if strength <= 0.0:
                continue
            position = bearing[i, k] * to_bins - heading_in_bins
            floor = math.floor(position)
            bin_ = int(floor)
            _keep_larger(row, base[k] + _wrap(bin_, n_bins, mask), strength)
            if alias:
                fraction = position - floor
                _keep_larger(row, base[k] + _wrap(bin_ + 1, n_bins, mask), fraction * strength)
                _keep_larger(row, base[k] + _wrap(bin_ - 1, n_bins, mask), (1.0 - fraction) * strength)


@numba.njit(cache=True, inline="always")
def _wrap(bin_: int, n_bins: int, mask: int) -> int:
    return bin_ & mask if mask >= 0 else bin_ % n_bins


@numba.njit(cache=True, inline="always")
def _keep_larger(row: np.ndarray, index: int, value: float) -> None:
    if value > row[index]:
        row[index] = value
