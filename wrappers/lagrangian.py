"""Lagrangian reward for unconstrained learners."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym

__all__ = ["LagrangianReward"]


class LagrangianReward(gym.Wrapper):
    """Replaces the reward by the Lagrangian ``r - lambda * c`` with ``c = info["cost"]``, so an unconstrained
    learner (SB3's PPO, say) optimises ``J_r - lambda J_c``; a dual-ascent callback raises or lowers ``lambda``
    (``multiplier``) between rollouts. The original reward stays in ``info["reward"]``.

    ``multiplier`` can be changed at any time: ``env.set_multiplier(value)`` or, through SB3 vector envs,
    ``vec_env.env_method("set_multiplier", value)``, which reaches the wrapper through outer wrappers such as
    ``Monitor``. (``vec_env.set_attr("multiplier", ...)`` sets the attribute on the outermost wrapper only, which has
    no effect unless this wrapper is outermost.) The value must be finite and ``>= 0``.

    Example::

        >>> import gymnasium as gym, cmdp_envs
        >>> from cmdp_envs.wrappers import LagrangianReward
        >>> env = LagrangianReward(gym.make("cmdp_envs/GridWorld-v0"), multiplier=0.5)
        >>> _ = env.reset(seed=0)
        >>> _, reward, _, _, info = env.step(0)
        >>> reward == info["reward"] - 0.5 * info["cost"]
        True

    :param env: an env that reports ``info["cost"]`` on every step.
    :param multiplier: the initial Lagrange multiplier ``lambda >= 0``.

    Change log: v0.1.0 first version.
    """

    def __init__(self, env: gym.Env, multiplier: float = 0.0):
        super().__init__(env)
        self.set_multiplier(multiplier)

    @property
    def multiplier(self) -> float:
        """The Lagrange multiplier ``lambda``."""
        return self._multiplier

    @multiplier.setter
    def multiplier(self, value: float) -> None:
        self.set_multiplier(value)

    def set_multiplier(self, value: float) -> None:
        value = float(value)
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"the Lagrange multiplier must be finite and >= 0, got {value!r}")
        self._multiplier = value

    def step(self, action: Any):
        observation, reward, terminated, truncated, info = self.env.step(action)
        if "cost" not in info:
            raise KeyError("LagrangianReward needs info['cost'] on every step; wrap the env with CostFunction first")
        info["reward"] = reward
        return observation, float(reward) - self._multiplier * float(info["cost"]), terminated, truncated, info
