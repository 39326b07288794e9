"""Lagrangian reward for unconstrained learners."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from cmdp_envs.validation import check_cost, check_number

__all__ = ["LagrangianReward"]


class LagrangianReward(gym.Wrapper):
    """Replaces the reward by the Lagrangian ``r - lambda * c`` with ``c = info["cost"]``, so an unconstrained
    learner (SB3's PPO, say) optimises ``J_r - lambda J_c``; a dual-ascent callback raises or lowers ``lambda``
    (``multiplier``) between rollouts. The original reward stays in ``info["reward"]``.

    ``multiplier`` can be changed at any time: ``env.set_multiplier(value)`` or, through SB3 vector envs,
    ``vec_env.env_method("set_multiplier", value)``, which reaches the wrapper through outer wrappers such as
    ``Monitor``. (``vec_env.set_attr("multiplier", ...)`` sets the attribute on the outermost wrapper only, which has
    no effect unless this wrapper is outermost.) The value must be a finite real number ``>= 0``.

    Every step's ``info["cost"]`` must be a finite real number ``>= 0``: a NaN, infinite or negative cost raises
    ``ValueError`` naming the step of the episode and the value, instead of turning the reward into NaN or a bonus.

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
        multiplier = check_number("the Lagrange multiplier", multiplier, 0.0)
        super().__init__(env)
        self._multiplier = multiplier
        self._length = 0

    @property
    def multiplier(self) -> float:
        """The Lagrange multiplier ``lambda``."""
        return self._multiplier

    @multiplier.setter
    def multiplier(self, value: float) -> None:
        self.set_multiplier(value)

    def set_multiplier(self, value: float) -> None:
        """Set ``lambda``, a finite real number ``>= 0``, for the steps from now on."""
        self._multiplier = check_number("the Lagrange multiplier", value, 0.0)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        observation, info = self.env.reset(seed=seed, options=options)
        self._length = 0
        return observation, info

    def step(self, action: Any):
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._length += 1
        if "cost" not in info:
            raise KeyError("LagrangianReward needs info['cost'] on every step; wrap the env with CostFunction first")
        cost = check_cost(info["cost"], f"step {self._length} of the episode (info['cost'] of the inner env)")
        info["reward"] = reward
        return observation, float(reward) - self._multiplier * cost, terminated, truncated, info
