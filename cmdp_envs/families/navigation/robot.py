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

The 3 x 3 solve is written out (a Schur complement on ``psi``, see :func:`_generalised_acceleration`) so one code
path serves a Python float (the single env) and numpy arrays of any shape (the vector
env): :func:`integrate` takes the ``sin``/``cos`` to use.
"""

from __future__ import annotations

import math
from typing import Any, Callable

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
    "integrate",
    "acceleration",
    "sensors",
    "clip_float",
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

Number = Any  # a float or a numpy array; every function here works on either


def clip_float(value: float, limit: float) -> float:
    """``value`` clipped to ``[-limit, limit]`` (for Python floats)."""
    return -limit if value < -limit else (limit if value > limit else value)


def clip_array(value: np.ndarray, limit: float) -> np.ndarray:
    """``value`` clipped to ``[-limit, limit]`` (for arrays; faster than ``np.clip`` on small arrays)."""
    return np.minimum(np.maximum(value, -limit), limit)


def _generalised_acceleration(
    sin_psi: Number, cos_psi: Number, vx: Number, vy: Number, omega: Number, thrust: Number, turn: Number,
    coefficients: tuple[Number, ...], clip: Callable[[Number, float], Number],
) -> tuple[Number, Number, Number]:
    """``s A^-1 f`` for a scale ``s``: ``f`` the generalised force (actuators, the offset mass's centripetal term,
    damping) and ``A = [[d, 0, -mr sin], [0, d, mr cos], [-mr sin, mr cos, d2]]`` (``M + h B`` with ``s = h``: the
    velocity change of a substep; ``M`` with ``s = 1``: the acceleration the sensor reads).

    Translation is isotropic (equal mass and damping along x and y), so a Schur complement on ``psi`` has the
    constant pivot ``p = d2 - (mr)^2 / d``: ``alpha = (f2 + mr (sin f0 - cos f1) / d) / p``, then
    ``ax = (f0 + mr sin alpha) / d`` and ``ay = (f1 - mr cos alpha) / d``. ``coefficients`` hold
    ``(mr, g, bxy, bpsi, s / d, mr / d, s / p, mr / s)`` (:func:`_coefficients`), so each output costs no extra
    multiplication by ``s``."""
    (mass_offset, gear, damping_xy, damping_psi, scale_over_d, offset_over_d, scale_over_pivot,
     offset_over_scale) = coefficients
    along = thrust + mass_offset * omega * omega
    f0 = along * cos_psi - damping_xy * vx
    f1 = along * sin_psi - damping_xy * vy
    f2 = gear * clip(turn - gear * omega, FORCE_LIMIT) - damping_psi * omega
    alpha = (f2 + offset_over_d * (sin_psi * f0 - cos_psi * f1)) * scale_over_pivot
    return (
        (f0 + offset_over_scale * sin_psi * alpha) * scale_over_d,
        (f1 - offset_over_scale * cos_psi * alpha) * scale_over_d,
        alpha,
    )


def _coefficients(mass_scale: Number, damping_scale: Number, gain_scale: Number, timestep: float) -> tuple:
    """The constants of :func:`_generalised_acceleration`: ``A = M + timestep * B`` and ``s = timestep`` for a
    substep, or ``A = M`` and ``s = 1`` (``timestep = 0``) for the sensor's acceleration."""
    mass_offset = MASS_OFFSET * mass_scale
    damping_xy, damping_psi = DAMPING[0] * damping_scale, DAMPING[2] * damping_scale
    d = MASS * mass_scale + timestep * damping_xy
    pivot = INERTIA * mass_scale + timestep * damping_psi - mass_offset * mass_offset / d
    scale = timestep if timestep > 0 else 1.0
    return (mass_offset, GEAR * gain_scale, damping_xy, damping_psi, scale / d, mass_offset / d, scale / pivot,
            mass_offset / scale)


def integrate(
    position: tuple[Number, Number, Number],
    velocity: tuple[Number, Number, Number],
    action: tuple[Number, Number],
    mass_scale: Number = 1.0,
    damping_scale: Number = 1.0,
    gain_scale: Number = 1.0,
    sin: Callable[[Number], Number] = math.sin,
    cos: Callable[[Number], Number] = math.cos,
    clip: Callable[[Number, float], Number] = clip_float,
) -> tuple[tuple[Number, Number, Number], tuple[Number, Number, Number]]:
    """One environment step (``SUBSTEPS`` Euler substeps with implicit damping) from ``(q, v)`` under ``action``.

    :param position: ``(x, y, psi)``.
    :param velocity: ``(vx, vy, omega)``.
    :param action: ``(a0, a1)``, already clipped to ``[-1, 1]``.
    :param mass_scale: multiplies ``m``, ``m r`` and ``I`` (a denser body of the same shape).
    :param damping_scale: multiplies the three joint dampings.
    :param gain_scale: multiplies the gear of both actuators.
    :param sin: ``math.sin`` for floats, ``np.sin`` for arrays (and ``cos``, ``clip`` likewise:
        :func:`clip_float`, :func:`clip_array`).
    :returns: the new ``(q, v)``.
    """
    coefficients = _coefficients(mass_scale, damping_scale, gain_scale, TIMESTEP)
    thrust = coefficients[1] * clip(action[0], FORCE_LIMIT)
    turn = action[1]
    x, y, psi = position
    vx, vy, omega = velocity
    # The substeps' x and y moves are summed and applied once (the heading, which the forces depend on, moves
    # every substep): the same positions up to rounding, with fewer operations on arrays.
    sum_vx = sum_vy = 0.0
    for _ in range(SUBSTEPS):
        dvx, dvy, domega = _generalised_acceleration(
            sin(psi), cos(psi), vx, vy, omega, thrust, turn, coefficients, clip
        )
        vx, vy, omega = vx + dvx, vy + dvy, omega + domega
        psi = psi + TIMESTEP * omega
        sum_vx, sum_vy = sum_vx + vx, sum_vy + vy
    return (x + TIMESTEP * sum_vx, y + TIMESTEP * sum_vy, psi), (vx, vy, omega)


def acceleration(
    position: tuple[Number, Number, Number],
    velocity: tuple[Number, Number, Number],
    action: tuple[Number, Number],
    mass_scale: Number = 1.0,
    damping_scale: Number = 1.0,
    gain_scale: Number = 1.0,
    sin: Callable[[Number], Number] = math.sin,
    cos: Callable[[Number], Number] = math.cos,
    clip: Callable[[Number, float], Number] = clip_float,
) -> tuple[Number, Number, Number]:
    """``M^-1 f`` at ``(q, v)``: the generalised acceleration MuJoCo reports after a step (explicit, no damping term
    in the matrix), which the accelerometer reads."""
    coefficients = _coefficients(mass_scale, damping_scale, gain_scale, 0.0)
    thrust = coefficients[1] * clip(action[0], FORCE_LIMIT)
    return _generalised_acceleration(
        sin(position[2]), cos(position[2]), *velocity, thrust, action[1], coefficients, clip
    )


def sensors(
    heading: Number, velocity: tuple[Number, Number, Number], acceleration: tuple[Number, Number, Number],
    sin: Callable[[Number], Number] = math.sin, cos: Callable[[Number], Number] = math.cos,
) -> tuple[Number, ...]:
    """The twelve sensor values in Safety-Gymnasium's order, all in the body frame (rotation ``R(psi)``):
    accelerometer ``R^T (ax, ay) + (0, 0, 9.81)``, velocimeter ``R^T (vx, vy)`` and 0, gyro ``(0, 0, omega)``,
    magnetometer ``R^T (0, -0.5) = (-0.5 sin psi, -0.5 cos psi)`` and 0."""
    sin_psi, cos_psi = sin(heading), cos(heading)
    ax, ay, _ = acceleration
    vx, vy, omega = velocity
    zero = 0.0 * heading
    return (
        cos_psi * ax + sin_psi * ay, cos_psi * ay - sin_psi * ax, zero + GRAVITY,
        cos_psi * vx + sin_psi * vy, cos_psi * vy - sin_psi * vx, zero,
        zero, zero, zero + velocity[2],
        -MAGNETIC_FIELD * sin_psi, -MAGNETIC_FIELD * cos_psi, zero,
    )
