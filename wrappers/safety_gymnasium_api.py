"""Adapters between the Gymnasium 5-tuple and Safety-Gymnasium's 6-tuple step API.

They follow Safety-Gymnasium's own conversion wrappers (``SafetyGymnasium2Gymnasium`` and
``Gymnasium2SafetyGymnasium``): the cost travels in ``info["cost"]`` on the Gymnasium side and as the third element
of ``step``'s return on the Safety-Gymnasium side. Neither needs safety-gymnasium installed.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from cmdp_envs.validation import check_cost

__all__ = ["SafetyGymnasiumToGymnasium", "GymnasiumToSafetyGymnasium"]


class SafetyGymnasiumToGymnasium(gym.Wrapper):
    """Wraps an env whose ``step`` returns ``(obs, reward, cost, terminated, truncated, info)`` (Safety-Gymnasium)
    so that it returns ``(obs, reward, terminated, truncated, info)`` with ``info["cost"] = float(cost)``.

    Like Safety-Gymnasium's ``SafetyGymnasium2Gymnasium``, a different cost already in ``info`` is overwritten with a
    warning (an equal one, as after a round trip through :class:`GymnasiumToSafetyGymnasium`, passes silently).

    Example::

        >>> import gymnasium as gym, cmdp_envs
        >>> from cmdp_envs.wrappers import GymnasiumToSafetyGymnasium, SafetyGymnasiumToGymnasium
        >>> env = SafetyGymnasiumToGymnasium(GymnasiumToSafetyGymnasium(gym.make("cmdp_envs/GridWorld-v0")))
        >>> _ = env.reset(seed=0)
        >>> len(env.step(0)), "cost" in env.step(0)[-1]
        (5, True)

    Change log: v0.1.0 first version.
    """

    def step(self, action: Any):
        result = self.env.step(action)
        if len(result) != 6:
            raise ValueError(f"expected a 6-tuple (obs, reward, cost, terminated, truncated, info), got {len(result)}")
        observation, reward, cost, terminated, truncated, info = result
        if "cost" in info and info["cost"] != cost:
            gym.logger.warn(f"info['cost'] = {info['cost']!r} is overwritten by the step's cost element {cost!r}")
        info["cost"] = check_cost(cost, "this step of the Safety-Gymnasium env")
        return observation, reward, terminated, truncated, info


class GymnasiumToSafetyGymnasium(gym.Wrapper):
    """Wraps a Gymnasium env that reports ``info["cost"]`` so that ``step`` returns Safety-Gymnasium's
    ``(obs, reward, cost, terminated, truncated, info)``; ``info`` keeps its ``"cost"`` entry, as in
    Safety-Gymnasium's ``Gymnasium2SafetyGymnasium``. A missing cost raises ``ValueError``.

    Change log: v0.1.0 first version.
    """

    def step(self, action: Any):
        observation, reward, terminated, truncated, info = self.env.step(action)
        if "cost" not in info:
            raise ValueError("the info dict has no 'cost', which the Safety-Gymnasium API requires")
        return observation, reward, check_cost(info["cost"], "this step"), terminated, truncated, info
