"""Safety-Gymnasium's ``Point`` robot in closed form: planar rigid-body dynamics and its sensors.

The robot has three degrees of freedom, ``q = (x, y, psi)``, with velocities ``v = (vx, vy, omega)``. The constants
below were measured from Safety-Gymnasium's MuJoCo model (SPECS, "Point robot"): the centre of mass sits a distance
``r`` ahead of the body origin, so the mass matrix couples translation and rotation::

    M(psi) = [[m, 0, -m r sin psi], [0, m, m r cos psi], [-m r sin psi, m r cos psi, I]]

Two actuators act with gear ``g = 0.3`` (scaled by the task's ``gain_scale``):

* forward force along the heading, ``F = g * clip(a0, -0.05, 0.05)``;
* a turning velocity servo, ``tau = g * clip(a1 - g * omega, -0.05, 0.05)`` (a MuJoCo velocity actuator's force is
  computed on the gear-scaled joint velocity and clamped before the gear scales it again).

With joint damping ``B = diag(bx, by, bpsi)`` the generalised force is
``f = [F cos psi + m r omega^2 cos psi, F sin psi + m r omega^2 sin psi, tau] - B v`` (the ``m r omega^2`` terms are
the centripetal force of the offset centre of mass). An environment step is ten substeps of ``h = 0.002 s`` of
MuJoCo's Euler integrator with implicit damping::

    v <- v + h (M + h B)^-1 f,        q <- q + h v

The 3 x 3 solve is written out (a Schur complement on ``psi``, see :func:`_generalised_acceleration`).
:class:`Integrator` steps ``n`` robots with one compiled loop (numba); the single env is the case ``n = 1``, so
both run the same code.
"""

from __future__ import annotations

import math
import numba
import numpy as np

__all__ = [
    "MASS",
    "MASS_OFFSET",
    "INERTIA",
    "DAMPING",
    "GEAR",
    "FORCE_LIMIT",
    "TIMESTEP",
    "SUBSTEPS",
    "GRAVITY",
    "MAGNETIC_FIELD",
    "Integrator",
    "sensors",
    "clip_array",
]

# The body is a sphere of radius 0.1 at the origin and a cube of side 0.1 centred 0.1 ahead of it, both of density 1
# (Safety-Gymnasium's point.xml); the constants follow exactly, which the MuJoCo model reproduces to 1e-16.
_SPHERE_MASS = 4.0 / 3.0 * math.pi * 0.1**3
_CUBE_MASS = 0.1**3
#: Body mass ``m`` (kg), 0.0051888.
MASS = _SPHERE_MASS + _CUBE_MASS
#: ``m r``: mass times the distance of the centre of mass ahead of the body origin (kg m), 1e-4.
MASS_OFFSET = _CUBE_MASS * 0.1
#: Rotational inertia about the vertical axis through the body origin (kg m^2), 2.84218e-5.
INERTIA = 0.4 * _SPHERE_MASS * 0.1**2 + _CUBE_MASS * (2 * 0.1**2) / 12 + _CUBE_MASS * 0.1**2
#: Joint damping of ``x``, ``y`` and ``psi`` (equal along x and y, which the solve relies on).
DAMPING = (0.01, 0.01, 0.005)
#: Actuator gear ``g`` of both motors, and the limit on the actuators' force before the gear.
GEAR = 0.3
FORCE_LIMIT = 0.05
#: MuJoCo's timestep and the substeps of one environment step.
TIMESTEP = 0.002
SUBSTEPS = 10
#: Gravity's magnitude (the accelerometer reads ``+g`` upwards at rest).
GRAVITY = 9.81
#: MuJoCo's default magnetic field ``(0, -0.5, 0)`` in the world frame.
MAGNETIC_FIELD = 0.5


def clip_array(value: np.ndarray, limit: float) -> np.ndarray:
    """``value`` clipped to ``[-limit, limit]`` (for arrays; faster than ``np.clip`` on small arrays)."""
    return np.minimum(np.maximum(value, -limit), limit)


@numba.njit(cache=True)
def _generalised_acceleration(coefficients: np.ndarray, i: int, sin_psi: float, cos_psi: float, vx: float,
                              vy: float, omega: float, forward: float, turn: float) -> tuple[float, float, float]:
    """``s A^-1 f`` for robot ``i`` under the clipped action ``(forward, turn)``, for a scale ``s``: ``f`` the
    generalised force (actuators, the offset mass's centripetal term, damping) and
    ``A = [[d, 0, -mr sin], [0, d, mr cos], [-mr sin, mr cos, d2]]`` (``M + h B`` with ``s = h``: the velocity change
    of a substep; ``M`` with ``s = 1``: the acceleration the sensor reads).

    Translation is isotropic (equal mass and damping along x and y), so a Schur complement on ``psi`` has the
    constant pivot ``p = d2 - (mr)^2 / d``: ``alpha = (f2 + mr (sin f0 - cos f1) / d) / p``, then
    ``ax = (f0 + mr sin alpha) / d`` and ``ay = (f1 - mr cos alpha) / d``. With ``f0 = F' cos - bxy vx`` and
    ``f1 = F' sin - bxy vy`` (``F'`` the forward force plus the centripetal term) the forward force cancels from
    ``sin f0 - cos f1 = -bxy (sin vx - cos vy)``. ``coefficients`` holds :func:`_coefficients`' constants, one
    column per robot."""
    gear = coefficients[0, i]
    thrust = coefficients[7, i] * (gear * min(max(forward, -FORCE_LIMIT), FORCE_LIMIT))
    alpha = (coefficients[4, i] * min(max(turn - gear * omega, -FORCE_LIMIT), FORCE_LIMIT)
             - coefficients[5, i] * omega - coefficients[6, i] * (sin_psi * vx - cos_psi * vy))
    along = coefficients[1, i] * omega * omega + thrust
    coupling = coefficients[3, i]
    return (
        along * cos_psi - coefficients[2, i] * vx + coupling * sin_psi * alpha,
        along * sin_psi - coefficients[2, i] * vy - coupling * cos_psi * alpha,
        alpha,
    )


def _coefficients(mass_scale: np.ndarray, damping_scale: np.ndarray, gain_scale: np.ndarray,
                  timestep: float) -> np.ndarray:
    """``(8, n)``: the constants of :func:`_generalised_acceleration` for ``A = M + timestep * B`` and
    ``s = timestep`` (a substep), or ``A = M`` and ``s = 1`` (``timestep = 0``, the sensor's acceleration):
    ``(g, s mr / d, s bxy / d, mr / d, s g / p, s bpsi / p, s mr bxy / (d p), s / d)``, folded so a substep costs
    the fewest operations."""
    mass_offset = MASS_OFFSET * mass_scale
    damping_xy, damping_psi = DAMPING[0] * damping_scale, DAMPING[2] * damping_scale
    gear = GEAR * gain_scale
    d = MASS * mass_scale + timestep * damping_xy
    pivot = INERTIA * mass_scale + timestep * damping_psi - mass_offset * mass_offset / d
    scale = timestep if timestep > 0 else 1.0
    return np.array([gear, scale * mass_offset / d, scale * damping_xy / d, mass_offset / d, scale * gear / pivot,
                     scale * damping_psi / pivot, scale * mass_offset * damping_xy / (d * pivot), scale / d])


@numba.njit(cache=True)
def _settle(i: int, position: np.ndarray, velocity: np.ndarray, acceleration: np.ndarray, trig: np.ndarray,
            forward: float, turn: float, sensor: np.ndarray) -> None:
    """Robot ``i``'s heading trig and the acceleration its accelerometer reads (``M^-1 f``: MuJoCo reports the
    explicit acceleration after a step, without the damping term in the matrix) at its current state."""
    cos_psi, sin_psi = math.cos(position[2, i]), math.sin(position[2, i])
    trig[0, i], trig[1, i] = cos_psi, sin_psi
    acceleration[0, i], acceleration[1, i], acceleration[2, i] = _generalised_acceleration(
        sensor, i, sin_psi, cos_psi, velocity[0, i], velocity[1, i], velocity[2, i], forward, turn)


@numba.njit(cache=True)
def _step(position: np.ndarray, velocity: np.ndarray, acceleration: np.ndarray, trig: np.ndarray,
          action: np.ndarray, substep: np.ndarray, sensor: np.ndarray) -> None:
    """:meth:`Integrator.step`: ``v <- v + h (M + h B)^-1 f`` and ``q <- q + h v`` ``SUBSTEPS`` times per robot."""
    for i in range(position.shape[1]):
        forward, turn = min(max(action[i, 0], -1.0), 1.0), min(max(action[i, 1], -1.0), 1.0)
        psi, vx, vy, omega = position[2, i], velocity[0, i], velocity[1, i], velocity[2, i]
        # The substeps' x and y moves are summed and applied once (the heading, which the forces depend on, moves
        # every substep); the first substep starts from the trig of the last step's heading.
        sum_vx = sum_vy = 0.0
        cos_psi, sin_psi = trig[0, i], trig[1, i]
        for k in range(SUBSTEPS):
            if k:
                cos_psi, sin_psi = math.cos(psi), math.sin(psi)
            dvx, dvy, domega = _generalised_acceleration(substep, i, sin_psi, cos_psi, vx, vy, omega, forward, turn)
            vx, vy, omega = vx + dvx, vy + dvy, omega + domega
            psi = psi + TIMESTEP * omega
            sum_vx, sum_vy = sum_vx + vx, sum_vy + vy
        position[0, i] += TIMESTEP * sum_vx
        position[1, i] += TIMESTEP * sum_vy
        position[2, i] = psi
        velocity[0, i], velocity[1, i], velocity[2, i] = vx, vy, omega
        _settle(i, position, velocity, acceleration, trig, forward, turn, sensor)


class Integrator:
    """The dynamics of ``n`` robots: one compiled loop over the robots steps them all in place (numpy's per-call
    overhead made the substeps' arithmetic cost several times its work at a thousand robots). The single env and
    the vector env both run it, so they agree bit for bit.

    :param scales: ``(3, n)`` mass, damping and gain scales; call :meth:`set_scales` when they change.
    """

    def __init__(self, scales: np.ndarray):
        #: ``(cos psi, sin psi)`` of the current headings ``(2, n)`` (the first substep and the sensors use them).
        self.trig = np.array([np.ones(scales.shape[1]), np.zeros(scales.shape[1])])
        self.set_scales(scales)

    def set_scales(self, scales: np.ndarray) -> None:
        self._substep = _coefficients(*scales, TIMESTEP)
        self._sensor = _coefficients(*scales, 0.0)

    def place(self, index: int, position: np.ndarray, velocity: np.ndarray, acceleration: np.ndarray) -> None:
        """Robot ``index`` was put at the state in column ``index`` of ``position`` and ``velocity`` ``(3, n)``:
        its heading trig and, at zero action, its ``acceleration`` (at rest the accelerometer reads gravity
        only)."""
        _settle(index, position, velocity, acceleration, self.trig, 0.0, 0.0, self._sensor)

    def step(self, position: np.ndarray, velocity: np.ndarray, acceleration: np.ndarray, action: np.ndarray) -> None:
        """One environment step (``SUBSTEPS`` Euler substeps with implicit damping) of every robot:
        ``position``, ``velocity`` and ``acceleration`` ``(3, n)`` updated in place under ``action`` ``(n, 2)``
        (clipped to ``[-1, 1]`` here)."""
        _step(position, velocity, acceleration, self.trig, action, self._substep, self._sensor)


@numba.njit(cache=True)
def sensors(trig: np.ndarray, velocity: np.ndarray, acceleration: np.ndarray, out: np.ndarray) -> None:
    """The twelve sensor values of each robot ``i`` into ``out[i, :12]``, in Safety-Gymnasium's order, at the
    heading given by ``trig`` ``(2, n)`` (cosine and sine), all in the body frame (rotation ``R(psi)``):
    accelerometer ``R^T (ax, ay) + (0, 0, 9.81)``, velocimeter ``R^T (vx, vy)`` and 0, gyro ``(0, 0, omega)``,
    magnetometer ``R^T (0, -0.5) = (-0.5 sin psi, -0.5 cos psi)`` and 0. ``out`` may be a whole observation array
    (the sensors come first)."""
    for i in range(out.shape[0]):
        cos_psi, sin_psi = trig[0, i], trig[1, i]
        ax, ay = acceleration[0, i], acceleration[1, i]
        vx, vy = velocity[0, i], velocity[1, i]
        row = out[i]
        row[0], row[1], row[2] = cos_psi * ax + sin_psi * ay, cos_psi * ay - sin_psi * ax, GRAVITY
        row[3], row[4], row[5] = cos_psi * vx + sin_psi * vy, cos_psi * vy - sin_psi * vx, 0.0
        row[6], row[7], row[8] = 0.0, 0.0, velocity[2, i]
        row[9], row[10], row[11] = -MAGNETIC_FIELD * sin_psi, -MAGNETIC_FIELD * cos_psi, 0.0
