"""Turn any Gymnasium env into a CMDP with a user cost function."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym

__all__ = ["CostFunction"]

CostFn = Callable[[Any, Any, Any, dict], float]


class CostFunction(gym.Wrapper):
    """Adds ``info["cost"] = cost_fn(observation, action, next_observation, info)`` to every step and
    ``info["cost"] = 0.0`` to every reset.

    The cost must be a finite number ``>= 0`` (the CMDP convention of this package); anything else raises
    ``ValueError`` naming the value. An existing ``info["cost"]`` is an error unless ``overwrite=True``, so two cost
    sources are never mixed silently (checked at reset when the inner env reports a reset cost, else at the first
    step).

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
        super().__init__(env)
        if not callable(cost_fn):
            raise TypeError(f"cost_fn must be callable, got {cost_fn!r}")
        self.cost_fn = cost_fn
        self.overwrite = overwrite
        self._observation: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        observation, info = self.env.reset(seed=seed, options=options)
        if "cost" in info and not self.overwrite:
            # Caught here, before any step: a step would already have moved the inner env when the conflict shows.
            raise ValueError("the env already reports info['cost']; pass overwrite=True to replace it")
        self._observation = observation
        info["cost"] = 0.0
        return observation, info

    def step(self, action: Any):
        if self._observation is None:
            raise RuntimeError("call reset() before step()")
        next_observation, reward, terminated, truncated, info = self.env.step(action)
        if "cost" in info and not self.overwrite:
            raise ValueError("the env already reports info['cost']; pass overwrite=True to replace it")
        cost = self.cost_fn(self._observation, action, next_observation, info)
        try:
            cost = float(cost)
        except (TypeError, ValueError):
            raise ValueError(f"cost_fn must return a number, got {cost!r}") from None
        if not (math.isfinite(cost) and cost >= 0.0):
            raise ValueError(f"cost_fn returned {cost!r}; costs must be finite and >= 0")
        info["cost"] = cost
        self._observation = next_observation
        return next_observation, reward, terminated, truncated, info
