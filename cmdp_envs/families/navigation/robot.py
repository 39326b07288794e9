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

The 3 x 3 solve is written out (the block ``[[m + h bx, 0], [0, m + h by]]`` is diagonal, so a Schur complement on
``psi`` solves it) so one code path serves a Python float (the single env) and numpy arrays of any shape (the vector
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
#: Joint damping of ``x``, ``y`` and ``psi``.
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


def _clip(value: Number, limit: float) -> Number:
    if isinstance(value, np.ndarray):
        return np.minimum(np.maximum(value, -limit), limit)
    return min(max(value, -limit), limit)


def _solve(
    sin_psi: Number, cos_psi: Number, f: tuple[Number, Number, Number], diagonal: tuple[Number, Number, Number],
    mass_offset: Number,
) -> tuple[Number, Number, Number]:
    """``A^-1 f`` for ``A = [[d0, 0, -mr s], [0, d1, mr c], [-mr s, mr c, d2]]`` (``M + h B`` or ``M``)."""
    d0, d1, d2 = diagonal
    p = -mass_offset * sin_psi
    q = mass_offset * cos_psi
    p_over_d0 = p / d0
    q_over_d1 = q / d1
    alpha = (f[2] - p_over_d0 * f[0] - q_over_d1 * f[1]) / (d2 - p_over_d0 * p - q_over_d1 * q)
    return (f[0] - p * alpha) / d0, (f[1] - q * alpha) / d1, alpha


def _force(
    sin_psi: Number, cos_psi: Number, velocity: tuple[Number, Number, Number], thrust: Number, turn: Number,
    mass_offset: Number, gear: Number, damping: tuple[Number, Number, Number],
) -> tuple[Number, Number, Number]:
    """The generalised force ``f`` at one instant (actuators, centripetal term of the offset mass, damping)."""
    vx, vy, omega = velocity
    torque = gear * _clip(turn - gear * omega, FORCE_LIMIT)
    centripetal = mass_offset * omega * omega
    along = thrust + centripetal
    return along * cos_psi - damping[0] * vx, along * sin_psi - damping[1] * vy, torque - damping[2] * omega


def integrate(
    position: tuple[Number, Number, Number],
    velocity: tuple[Number, Number, Number],
    action: tuple[Number, Number],
    mass_scale: Number = 1.0,
    damping_scale: Number = 1.0,
    gain_scale: Number = 1.0,
    sin: Callable[[Number], Number] = math.sin,
    cos: Callable[[Number], Number] = math.cos,
) -> tuple[tuple[Number, Number, Number], tuple[Number, Number, Number]]:
    """One environment step (``SUBSTEPS`` Euler substeps with implicit damping) from ``(q, v)`` under ``action``.

    :param position: ``(x, y, psi)``.
    :param velocity: ``(vx, vy, omega)``.
    :param action: ``(a0, a1)``, already clipped to ``[-1, 1]``.
    :param mass_scale: multiplies ``m``, ``m r`` and ``I`` (a denser body of the same shape).
    :param damping_scale: multiplies the three joint dampings.
    :param gain_scale: multiplies the gear of both actuators.
    :param sin: ``math.sin`` for floats, ``np.sin`` for arrays (and ``cos`` likewise).
    :returns: the new ``(q, v)``.
    """
    mass, mass_offset, inertia = MASS * mass_scale, MASS_OFFSET * mass_scale, INERTIA * mass_scale
    gear = GEAR * gain_scale
    damping = (DAMPING[0] * damping_scale, DAMPING[1] * damping_scale, DAMPING[2] * damping_scale)
    implicit = (mass + TIMESTEP * damping[0], mass + TIMESTEP * damping[1], inertia + TIMESTEP * damping[2])
    thrust = gear * _clip(action[0], FORCE_LIMIT)
    x, y, psi = position
    vx, vy, omega = velocity
    for _ in range(SUBSTEPS):
        sin_psi, cos_psi = sin(psi), cos(psi)
        f = _force(sin_psi, cos_psi, (vx, vy, omega), thrust, action[1], mass_offset, gear, damping)
        ax, ay, alpha = _solve(sin_psi, cos_psi, f, implicit, mass_offset)
        vx, vy, omega = vx + TIMESTEP * ax, vy + TIMESTEP * ay, omega + TIMESTEP * alpha
        x, y, psi = x + TIMESTEP * vx, y + TIMESTEP * vy, psi + TIMESTEP * omega
    return (x, y, psi), (vx, vy, omega)


def acceleration(
    position: tuple[Number, Number, Number],
    velocity: tuple[Number, Number, Number],
    action: tuple[Number, Number],
    mass_scale: Number = 1.0,
    damping_scale: Number = 1.0,
    gain_scale: Number = 1.0,
    sin: Callable[[Number], Number] = math.sin,
    cos: Callable[[Number], Number] = math.cos,
) -> tuple[Number, Number, Number]:
    """``M^-1 f`` at ``(q, v)``: the generalised acceleration MuJoCo reports after a step (explicit, no damping term
    in the matrix), which the accelerometer reads."""
    mass, mass_offset, inertia = MASS * mass_scale, MASS_OFFSET * mass_scale, INERTIA * mass_scale
    gear = GEAR * gain_scale
    damping = (DAMPING[0] * damping_scale, DAMPING[1] * damping_scale, DAMPING[2] * damping_scale)
    thrust = gear * _clip(action[0], FORCE_LIMIT)
    sin_psi, cos_psi = sin(position[2]), cos(position[2])
    f = _force(sin_psi, cos_psi, velocity, thrust, action[1], mass_offset, gear, damping)
    return _solve(sin_psi, cos_psi, f, (mass, mass, inertia), mass_offset)


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
