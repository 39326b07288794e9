"""Turn any Gymnasium env into a CMDP with a user cost function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from cmdp_envs.validation import check_cost

__all__ = ["CostFunction"]

CostFn = Callable[[Any, Any, Any, dict], float]


class CostFunction(gym.Wrapper):
    """Adds ``info["cost"] = cost_fn(observation, action, next_observation, info)`` to every step and
    ``info["cost"] = 0.0`` to every reset.

    The cost must be a finite real number ``>= 0`` (the CMDP convention of this package; bools count as 0 and 1):
    anything else, a string such as ``"0.5"`` included, raises ``ValueError`` naming the step, the value and its type.
    A step whose cost is refused, or whose ``cost_fn`` raises, ends the episode for this wrapper: the inner env has
    moved on, so the next ``step`` raises until ``reset()``.

    An existing ``info["cost"]`` is an error unless ``overwrite=True``, so two cost sources are never mixed silently
    (checked at reset when the inner env reports a reset cost, else at the first step).

    Example: a CartPole whose cart must stay near the centre::

        >>> import gymnasium as gym
        >>> from cmdp_envs.wrappers import CostFunction
        >>> env = CostFunction(gym.make("CartPole-v1"), lambda obs, act, next_obs, info: float(abs(next_obs[0]) > 0.5))
        >>> _ = env.reset(seed=0)
        >>> env.step(0)[-1]["cost"]
        0.0

    :param env: any Gymnasium env.
    :param cost_fn: ``(observation, action, next_observation, info) -> float``; ``info`` is the inner env's step info.
    :param overwrite: replace an ``info["cost"]`` the inner env already reports.

    Change log: v0.1.0 first version.
    """

    def __init__(self, env: gym.Env, cost_fn: CostFn, overwrite: bool = False):
        if not callable(cost_fn):
            raise TypeError(f"cost_fn must be callable, got {cost_fn!r}")
        if not isinstance(overwrite, (bool, np.bool_)):
            raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
        super().__init__(env)
        self.cost_fn = cost_fn
        self.overwrite = bool(overwrite)
        self._observation: Any = None
        self._length = 0
        # Why step() is refused now, or None while an episode runs.
        self._refusal: str | None = "call reset() before step()"

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        observation, info = self.env.reset(seed=seed, options=options)
        if "cost" in info and not self.overwrite:
            # Caught here, before any step: a step would already have moved the inner env when the conflict shows.
            raise ValueError("the env already reports info['cost']; pass overwrite=True to replace it")
        self._observation = observation
        self._length = 0
        self._refusal = None
        info["cost"] = 0.0
        return observation, info

    def step(self, action: Any):
        if self._refusal is not None:
            raise RuntimeError(self._refusal)
        next_observation, reward, terminated, truncated, info = self.env.step(action)
        # The inner env has moved: should anything below raise, the observation the next cost_fn call would get is
        # stale, so the episode is over for this wrapper until reset().
        self._refusal = "the episode is broken (a previous step raised after the inner env had moved): call reset()"
        if "cost" in info and not self.overwrite:
            raise ValueError("the env already reports info['cost']; pass overwrite=True to replace it")
        self._length += 1
        cost = self.cost_fn(self._observation, action, next_observation, info)
        info["cost"] = check_cost(cost, f"step {self._length} of the episode (returned by cost_fn)")
        self._observation = next_observation
        self._refusal = None
        return next_observation, reward, terminated, truncated, info
