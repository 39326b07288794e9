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
path serves a Python float (the single env) and numpy arrays of any shape: :func:`integrate` takes the
``sin``/``cos`` to use. :class:`Integrator` is the vector env's hot loop: the same operations in the same order
(so bit-identical results, which a test checks) on preallocated ``(2, n)`` rows, in place.
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
    "Integrator",
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
    ``ax = (f0 + mr sin alpha) / d`` and ``ay = (f1 - mr cos alpha) / d``. With ``f0 = F' cos - bxy vx`` and
    ``f1 = F' sin - bxy vy`` (``F'`` the forward force plus the centripetal term) the forward force cancels from
    ``sin f0 - cos f1 = -bxy (sin vx - cos vy)``, and every constant is folded into :func:`_coefficients`' products,
    so a substep costs the fewest operations (the vector env's hot loop). ``thrust`` is the forward force times
    ``s / d``."""
    gear, along_gain, damping_gain, coupling, turn_gain, spin_damping, lateral_damping, _ = coefficients
    alpha = (turn_gain * clip(turn - gear * omega, FORCE_LIMIT) - spin_damping * omega
             - lateral_damping * (sin_psi * vx - cos_psi * vy))
    along = along_gain * omega * omega + thrust
    return (
        along * cos_psi - damping_gain * vx + coupling * sin_psi * alpha,
        along * sin_psi - damping_gain * vy - coupling * cos_psi * alpha,
        alpha,
    )


def _thrust(action: Number, coefficients: tuple[Number, ...], clip: Callable[[Number, float], Number]) -> Number:
    """The forward force ``g clip(a0)`` times ``s / d``, as :func:`_generalised_acceleration` takes it."""
    return coefficients[7] * (coefficients[0] * clip(action, FORCE_LIMIT))


def _coefficients(mass_scale: Number, damping_scale: Number, gain_scale: Number, timestep: float) -> tuple:
    """The constants of :func:`_generalised_acceleration` for ``A = M + timestep * B`` and ``s = timestep`` (a
    substep), or ``A = M`` and ``s = 1`` (``timestep = 0``, the sensor's acceleration): ``(g, s mr / d, s bxy / d,
    mr / d, s g / p, s bpsi / p, s mr bxy / (d p), s / d)``."""
    mass_offset = MASS_OFFSET * mass_scale
    damping_xy, damping_psi = DAMPING[0] * damping_scale, DAMPING[2] * damping_scale
    gear = GEAR * gain_scale
    d = MASS * mass_scale + timestep * damping_xy
    pivot = INERTIA * mass_scale + timestep * damping_psi - mass_offset * mass_offset / d
    scale = timestep if timestep > 0 else 1.0
    return (gear, scale * mass_offset / d, scale * damping_xy / d, mass_offset / d, scale * gear / pivot,
            scale * damping_psi / pivot, scale * mass_offset * damping_xy / (d * pivot), scale / d)


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
    thrust = _thrust(action[0], coefficients, clip)
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


class Integrator:
    """:func:`integrate` and :func:`acceleration` for ``n`` robots on numpy arrays, in place and without allocating.

    The x and y rows are updated as one ``(2, n)`` array and every intermediate lives in a buffer (fresh arrays cost
    more than the arithmetic at this size); the operations and their order are :func:`_generalised_acceleration`'s,
    so results equal the float path's bit for bit (MuJoCo's unsaturated turn servo is chaotic: any rounding
    difference would grow to visible ones).

    :param scales: ``(3, n)`` mass, damping and gain scales; call :meth:`set_scales` when they change.
    """

    def __init__(self, scales: np.ndarray):
        n = scales.shape[1]
        #: ``(cos psi, sin psi)`` of the current headings, kept across steps (the first substep and the sensors use
        #: it); whoever sets a heading outside :meth:`step` calls :meth:`set_heading`.
        self.trig = np.array([np.ones(n), np.zeros(n)])
        self._delta, self._coupled, self._total = np.empty((2, n)), np.empty((2, n)), np.empty((2, n))
        self._along, self._lateral, self._alpha = np.empty(n), np.empty(n), np.empty(n)
        self.set_scales(scales)

    def set_heading(self, index: int, psi: float) -> None:
        """Robot ``index`` now faces ``psi``."""
        self.trig[:, index] = (math.cos(psi), math.sin(psi))

    def set_scales(self, scales: np.ndarray) -> None:
        # Each set of coefficients comes with ``mr / d`` signed as the x and y rows' coupling terms (``+ sin``,
        # ``- cos``), see :meth:`_accelerate`.
        signs = np.array([[1.0], [-1.0]])
        self._substep = _coefficients(*scales, TIMESTEP)
        self._substep_coupling = self._substep[3] * signs
        self._sensor = _coefficients(*scales, 0.0)
        self._sensor_coupling = self._sensor[3] * signs

    def _accelerate(self, velocity: np.ndarray, thrust: np.ndarray, turn: np.ndarray, coefficients: tuple,
                    signed_coupling: np.ndarray, out: np.ndarray) -> np.ndarray:
        """:func:`_generalised_acceleration` at the heading in ``self.trig``, the x and y rows into ``out``;
        returns ``alpha`` (a buffer the next call overwrites)."""
        gear, along_gain, damping_gain, _, turn_gain, spin_damping, lateral_damping, _ = coefficients
        trig, along, lateral, alpha = self.trig, self._along, self._lateral, self._alpha
        cos_psi, sin_psi = trig
        omega, planar = velocity[2], velocity[:2]
        np.multiply(gear, omega, out=alpha)
        np.subtract(turn, alpha, out=alpha)
        np.maximum(alpha, -FORCE_LIMIT, out=alpha)
        np.minimum(alpha, FORCE_LIMIT, out=alpha)
        alpha *= turn_gain
        alpha -= spin_damping * omega
        products = np.multiply(trig[::-1], planar, out=self._coupled)  # (sin vx, cos vy) in one call
        np.subtract(products[0], products[1], out=lateral)
        lateral *= lateral_damping
        alpha -= lateral
        np.multiply(along_gain, omega, out=along)
        along *= omega
        along += thrust
        np.multiply(trig, along, out=out)
        out -= damping_gain * planar
        # ``(+ mr/d sin alpha, - mr/d cos alpha)``: ``trig[::-1]`` is ``(sin, cos)``.
        coupled = np.multiply(signed_coupling, trig[::-1], out=self._coupled)
        coupled *= alpha
        out += coupled
        return alpha

    def step(self, position: np.ndarray, velocity: np.ndarray, acceleration: np.ndarray, action: np.ndarray) -> None:
        """One environment step of every robot: ``position``, ``velocity`` and ``acceleration`` ``(3, n)`` updated
        in place under ``action`` ``(n, 2)`` (already clipped to ``[-1, 1]``)."""
        turn = action[:, 1]
        psi, omega, planar = position[2], velocity[2], velocity[:2]
        delta, total = self._delta, self._total
        thrust = _thrust(action[:, 0], self._substep, clip_array)
        total.fill(0.0)
        for substep in range(SUBSTEPS):
            if substep:  # the first substep starts from the heading of the last step
                np.cos(psi, out=self.trig[0])
                np.sin(psi, out=self.trig[1])
            alpha = self._accelerate(velocity, thrust, turn, self._substep, self._substep_coupling, delta)
            planar += delta
            omega += alpha
            psi += TIMESTEP * omega
            total += planar
        total *= TIMESTEP
        position[:2] += total
        np.cos(psi, out=self.trig[0])
        np.sin(psi, out=self.trig[1])
        thrust = _thrust(action[:, 0], self._sensor, clip_array)
        acceleration[2] = self._accelerate(velocity, thrust, turn, self._sensor, self._sensor_coupling,
                                           acceleration[:2])


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
    thrust = _thrust(action[0], coefficients, clip)
    return _generalised_acceleration(
        sin(position[2]), cos(position[2]), *velocity, thrust, action[1], coefficients, clip
    )


def sensors(
    cos_psi: Number, sin_psi: Number, velocity: tuple[Number, Number, Number],
    acceleration: tuple[Number, Number, Number],
) -> tuple[Number, ...]:
    """The twelve sensor values in Safety-Gymnasium's order at heading ``psi`` (given by its cosine and sine), all in
    the body frame (rotation ``R(psi)``): accelerometer ``R^T (ax, ay) + (0, 0, 9.81)``, velocimeter ``R^T (vx, vy)``
    and 0, gyro ``(0, 0, omega)``, magnetometer ``R^T (0, -0.5) = (-0.5 sin psi, -0.5 cos psi)`` and 0. The constant
    entries are floats whatever the inputs."""
    ax, ay, _ = acceleration
    vx, vy, omega = velocity
    return (
        cos_psi * ax + sin_psi * ay, cos_psi * ay - sin_psi * ax, GRAVITY,
        cos_psi * vx + sin_psi * vy, cos_psi * vy - sin_psi * vx, 0.0,
        0.0, 0.0, omega,
        -MAGNETIC_FIELD * sin_psi, -MAGNETIC_FIELD * cos_psi, 0.0,
    )
