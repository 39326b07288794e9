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
        # Flat index of bin 0 of each (environment, object)'s group in the (N, n_groups * n_bins) output.
        self._base = (np.arange(n_envs)[:, None] * n_groups + np.asarray(group, dtype=np.intp)[None, :]) * n_bins
        n_objects = len(group)
        self._single_base = self._base[0].tolist()
        #: The bins an object lights: its own and, with aliasing, the next and the previous.
        self._neighbours = np.array([0, 1, -1] if alias else [0])[:, None, None]
        pairs = (n_envs, n_objects)
        self._buffers = (
            np.zeros(n_envs * n_groups * n_bins),
            np.empty(pairs), np.empty(pairs), np.empty(pairs), np.empty(pairs), np.empty(pairs, dtype=np.intp),
            np.empty((len(self._neighbours), *pairs), dtype=np.intp), np.empty((len(self._neighbours), *pairs)),
        )

    def __call__(self, origin: np.ndarray, heading: np.ndarray, objects: np.ndarray) -> np.ndarray:
        """Readings ``(N, n_groups * n_bins)``, the groups side by side in group order, in a buffer that the next
        call overwrites (copy what you keep).

        :param origin: ``(N, 2)`` world positions of the robots.
        :param heading: ``(N,)`` headings ``psi`` (the body frame's x axis is ``(cos psi, sin psi)``).
        :param objects: ``(N, K, 2)`` world positions of the objects.
        """
        # Every array lives in a buffer kept across calls: fresh arrays of these sizes cost page faults every call
        # (the output buffer is returned, so callers copy it).
        out, dx, dy, position, floor, bins, index, value = self._buffers
        out.fill(0.0)
        if objects.shape[1] == 0:
            return out.reshape(self.n_envs, -1)
        np.subtract(objects[..., 0], origin[:, 0:1], out=dx)
        np.subtract(objects[..., 1], origin[:, 1:2], out=dy)
        # The body-frame bearing is the world bearing less the heading (no rotation of every offset), in bins; its
        # floor wrapped into [0, n_bins) is the bin of ``theta mod 2 pi`` and its fractional part the alias weight
        # (numpy's float modulo is slow). The distance does not depend on the frame.
        to_bins = self.n_bins / (2 * math.pi)
        np.arctan2(dy, dx, out=position)
        position *= to_bins
        position -= (heading * to_bins)[:, None]
        np.floor(position, out=floor)
        bins[...] = floor
        strength = dx
        strength *= dx
        dy *= dy
        strength += dy
        np.sqrt(strength, out=strength)
        strength *= -1.0 / self.max_dist
        strength += 1.0
        np.maximum(strength, 0.0, out=strength)
        # The object's own bin and, with aliasing, the next and the previous, in one scatter of the maxima.
        np.add(bins, self._neighbours, out=index)
        self._wrap(index)
        index += self._base
        value[0] = strength
        if self.alias:
            alpha = np.subtract(position, floor, out=position)
            np.multiply(alpha, strength, out=value[1])
            np.subtract(1.0, alpha, out=value[2])
            value[2] *= strength
        np.maximum.at(out, index.ravel(), value.ravel())
        return out.reshape(self.n_envs, -1)

    def _wrap(self, bins: np.ndarray) -> None:
        """``bins mod n_bins`` in place (a bit mask for a power of two such as 16: integer modulo is ten times
        slower)."""
        if (self.n_bins & (self.n_bins - 1)) == 0:
            np.bitwise_and(bins, self.n_bins - 1, out=bins)
        else:
            np.remainder(bins, self.n_bins, out=bins)

    def single(self, x: float, y: float, heading: float, objects: list[list[float]]) -> list[float]:
        """The readings of the first robot's slots for one robot at ``(x, y, heading)`` on Python floats, object by
        object as Safety-Gymnasium writes it (numpy's per-call overhead dominates for one robot; a test checks both
        paths agree). ``objects`` is a list of ``[x, y]``."""
        n_bins = self.n_bins
        out = [0.0] * (self.n_groups * n_bins)
        cos_psi, sin_psi = math.cos(heading), math.sin(heading)
        to_bins = n_bins / (2 * math.pi)
        inverse_max_dist = 1.0 / self.max_dist
        for (ox, oy), base in zip(objects, self._single_base):
            dx, dy = ox - x, oy - y
            ex, ey = cos_psi * dx + sin_psi * dy, cos_psi * dy - sin_psi * dx
            strength = (self.max_dist - math.sqrt(ex * ex + ey * ey)) * inverse_max_dist
            if strength <= 0.0:
                continue
            position = math.atan2(ey, ex) * to_bins
            bin_ = math.floor(position)
            index = base + bin_ % n_bins
            if strength > out[index]:
                out[index] = strength
            if self.alias:
                alpha = position - bin_
                for index, value in ((base + (bin_ + 1) % n_bins, alpha * strength),
                                     (base + (bin_ - 1) % n_bins, (1 - alpha) * strength)):
                    if value > out[index]:
                        out[index] = value
        return out
