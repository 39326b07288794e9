"""The argument checks every env, wrapper and command applies.

Each check returns the value in canonical form or raises with a message that names the argument, the value (with its
type) and the accepted range, so a caller can fix the call from the message alone. Callers run them before they change
any state. Counts (``n``, seeds, step budgets) are checked by :func:`cmdp_envs.task.check_count`.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from cmdp_envs.registration import registered_ids_for

__all__ = ["check_number", "check_discrete_action", "check_reset_options", "check_cost", "check_family_kwargs"]


def _described(value: Any) -> str:
    """``value``'s repr and type: ``'0.5' (str)`` and ``0.5 (float)`` read alike without the type."""
    return f"{value!r} ({type(value).__name__})"


def _is_real(value: Any) -> bool:
    """A real number that is not a bool: ``True`` where a number is expected is almost always a slipped argument."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def check_number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a float in the interval from ``low`` to ``high``, else ``ValueError`` naming ``name``, the value and
    the interval.

    A bound of ``None`` is an open infinite end, so infinities are refused unless a bound is ``±math.inf`` and closed;
    NaN is always refused. Bools, strings, ``None`` and arrays are refused (no ``float()`` coercion: ``"0.9"`` is a
    mistake to report, not to repair).
    """
    lower = -math.inf if low is None else float(low)
    upper = math.inf if high is None else float(high)
    lower_open = low_open or low is None
    upper_open = high_open or high is None
    if _is_real(value):
        number = float(value)
        above = lower < number if lower_open else lower <= number
        below = number < upper if upper_open else number <= upper
        if above and below:
            return number
    interval = f"{'(' if lower_open else '['}{lower}, {upper}{')' if upper_open else ']'}"
    raise ValueError(f"{name} must be a real number in {interval}, got {_described(value)}")


def check_discrete_action(space: spaces.Discrete, action: Any) -> int:
    """``action`` as an int of ``space``: a Python or numpy integer (or a 0-d integer array, as vector envs hand out)
    in ``[start, start + n - 1]``; else ``ValueError`` naming the value and the range.

    Stricter than ``Discrete.contains``, which accepts ``True`` as action 1.
    """
    scalar = action[()] if isinstance(action, np.ndarray) and action.shape == () else action
    first, last = int(space.start), int(space.start) + int(space.n) - 1
    if isinstance(scalar, (int, np.integer)) and not isinstance(scalar, (bool, np.bool_)) and first <= scalar <= last:
        return int(scalar)
    raise ValueError(f"action must be an int in [{first}, {last}], got {_described(action)}")


def check_reset_options(options: Any, accepted: tuple[str, ...]) -> dict[str, Any]:
    """``reset``'s ``options`` as a new dict (``None`` gives ``{}``); a key outside ``accepted`` is a ``ValueError``
    naming it and the accepted keys, so a misspelt option fails instead of being ignored."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict or None, got {_described(options)}")
    unknown = sorted((key for key in options if key not in accepted), key=repr)
    if unknown:
        raise ValueError(f"unknown reset option(s) {unknown}; accepted: {list(accepted)}")
    return dict(options)


def check_cost(value: Any, where: str) -> float:
    """A step cost as a float, finite and ``>= 0`` (this package's CMDP convention), else ``ValueError`` naming
    ``where`` (e.g. ``"step 12 of the episode"``) and the value.

    Accepts real numbers, size-1 numpy arrays and bools (indicator costs such as ``abs(x) > 0.5`` are common and
    unambiguous); refuses strings, bytes, ``None`` and arrays of any other size.
    """
    scalar = value.reshape(()).item() if isinstance(value, np.ndarray) and value.size == 1 else value
    if isinstance(scalar, (bool, np.bool_)) or _is_real(scalar):
        cost = float(scalar)
        if math.isfinite(cost) and cost >= 0.0:
            return cost
    raise ValueError(f"the cost at {where} must be a finite real number >= 0, got {_described(value)}")


def _keyword_names(callable_: Any) -> list[str]:
    return [
        parameter.name
        for parameter in inspect.signature(callable_).parameters.values()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    ]


def check_family_kwargs(env_class: type, family_class: type, family_kwargs: Mapping[str, Any]) -> None:
    """Refuse the keyword arguments an env passes on to its family that the family does not take: a ``TypeError``
    naming the env class, its registered ids and every argument it accepts (its own, then the family's), in place of
    Python's bare "unexpected keyword argument" from deep inside ``gym.make``."""
    family_arguments = _keyword_names(family_class)
    unknown = sorted(set(family_kwargs) - set(family_arguments))
    if unknown:
        ids = registered_ids_for(env_class)
        registered = f" ({', '.join(ids)})" if ids else ""
        accepted: Sequence[str] = [*_keyword_names(env_class), *family_arguments]
        raise TypeError(
            f"{env_class.__name__}{registered} got unexpected keyword argument(s) {unknown}; it accepts "
            f"{list(accepted)} (its own, then {family_class.__name__}'s)"
        )
