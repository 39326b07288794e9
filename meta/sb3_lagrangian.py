"""PPO-Lagrangian and TRPO-Lagrangian the way an SB3 user writes them: SB3's own PPO (or sb3-contrib's TRPO) trained
on the Lagrangian reward ``r - lambda c`` (:class:`~cmdp_envs.wrappers.LagrangianReward`), with a callback that
updates ``lambda`` by dual ascent after every rollout:

    ``lambda <- max(0, lambda + multiplier_lr * (J_c_hat - cost_limit))``

where ``J_c_hat`` is the mean cost of the episodes that ended during the rollout (discounted by default, the
quantity our tasks constrain). Needs the ``sb3`` extra.

Example::

    model, callback = lagrangian_learner("PPO", "cmdp_envs/GridWorld-v0", cost_limit=1.5, gamma=0.9, seed=0)
    model.learn(50_000, callback=callback)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from cmdp_envs.task import check_count
from cmdp_envs.validation import check_number
from cmdp_envs.wrappers import LagrangianReward, RecordEpisodeCost

__all__ = ["DualAscentCallback", "lagrangian_env", "lagrangian_learner", "import_sb3"]


def import_sb3() -> Any:
    """Import stable-baselines3, or explain which extra installs it."""
    try:
        import stable_baselines3
    except ImportError as error:
        raise ImportError('stable-baselines3 is not installed: pip install "cmdp-envs[sb3]"') from error
    return stable_baselines3


def lagrangian_env(env: gym.Env, gamma: float, multiplier: float = 0.0) -> gym.Env:
    """``LagrangianReward(RecordEpisodeCost(env, gamma))``: episode costs for the dual update, the Lagrangian reward
    for the learner. Pass it as ``wrapper_class`` to SB3's ``make_vec_env`` so it sits outside ``Monitor``.

    :param gamma: discount factor of the episode costs, a real number in ``[0, 1]`` (``None`` is refused: the dual
        update reads the discounted cost).
    """
    gamma = check_number("gamma", gamma, 0.0, 1.0)
    return LagrangianReward(RecordEpisodeCost(env, gamma=gamma), multiplier=multiplier)


def _base_callback() -> type:
    import_sb3()
    from stable_baselines3.common.callbacks import BaseCallback

    return BaseCallback


class DualAscentCallback(_base_callback()):  # type: ignore[misc]
    """Dual ascent on the Lagrange multiplier of a :class:`~cmdp_envs.wrappers.LagrangianReward` env.

    After each rollout, ``lambda <- max(0, lambda + multiplier_lr * (mean episode cost - cost_limit))`` and the new
    value is sent to every sub-env with ``env_method("set_multiplier", lambda)``. Rollouts in which no episode ended
    leave ``lambda`` unchanged. Logged under ``lagrangian/``: ``multiplier``, ``episode_cost``, ``cost_limit`` and
    ``constraint_satisfied``; ``history`` keeps one row per update (with the mean undiscounted ``episode_return``).

    :param cost_limit: ``d``.
    :param multiplier_lr: dual step size.
    :param discounted: use the discounted episode cost ``c_discounted`` (the env's ``RecordEpisodeCost`` needs a
        ``gamma``); ``False`` uses the plain sum ``c``.
    :param initial_multiplier: ``lambda`` at the start of training.
    """

    def __init__(
        self,
        cost_limit: float,
        multiplier_lr: float = 0.05,
        discounted: bool = True,
        initial_multiplier: float = 0.0,
        verbose: int = 0,
    ):
        cost_limit = check_number("cost_limit", cost_limit, 0.0)
        multiplier_lr = check_number("multiplier_lr", multiplier_lr, 0.0)
        initial_multiplier = check_number("initial_multiplier", initial_multiplier, 0.0)
        if not isinstance(discounted, (bool, np.bool_)):
            raise TypeError(f"discounted must be True or False, got {discounted!r}")
        super().__init__(verbose)
        self.cost_limit = cost_limit
        self.multiplier_lr = multiplier_lr
        self.cost_key = "c_discounted" if discounted else "c"
        self.multiplier = initial_multiplier
        self.history: list[dict[str, float]] = []
        self._episode_costs: list[float] = []
        self._episode_returns: list[float] = []

    def _on_training_start(self) -> None:
        self.training_env.env_method("set_multiplier", self.multiplier)

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            episode = info.get("episode")
            if episode is None:
                continue
            if self.cost_key not in episode:
                raise KeyError(
                    f"info['episode'] has no {self.cost_key!r}: wrap the env with lagrangian_env(env, gamma) "
                    "(RecordEpisodeCost with gamma, outside Monitor)"
                )
            self._episode_costs.append(float(episode[self.cost_key]))
            self._episode_returns.append(float(episode["r"]))
        return True

    def _on_rollout_end(self) -> None:
        if not self._episode_costs:
            return
        episode_cost = float(np.mean(self._episode_costs))
        episode_return = float(np.mean(self._episode_returns))
        self._episode_costs.clear()
        self._episode_returns.clear()
        self.multiplier = max(0.0, self.multiplier + self.multiplier_lr * (episode_cost - self.cost_limit))
        self.training_env.env_method("set_multiplier", self.multiplier)
        row = {
            "timesteps": float(self.num_timesteps),
            "multiplier": self.multiplier,
            "episode_cost": episode_cost,
            "episode_return": episode_return,
            "cost_limit": self.cost_limit,
            "constraint_satisfied": float(episode_cost <= self.cost_limit),
        }
        self.history.append(row)
        for key in ("multiplier", "episode_cost", "cost_limit", "constraint_satisfied"):
            self.logger.record(f"lagrangian/{key}", row[key])


def lagrangian_learner(
    algo: str,
    env: str | Callable[[], gym.Env],
    cost_limit: float,
    gamma: float,
    seed: int = 0,
    n_envs: int = 4,
    multiplier_lr: float = 0.05,
    env_kwargs: dict[str, Any] | None = None,
    discounted: bool = True,
    **algo_kwargs: Any,
) -> tuple[Any, DualAscentCallback]:
    """An SB3 model on the Lagrangian env and its :class:`DualAscentCallback`: ``algo`` is ``"PPO"`` (SB3) or
    ``"TRPO"`` (sb3-contrib); call ``model.learn(steps, callback=callback)``.

    ``env`` may also be an SB3 ``VecEnv`` already built, such as :class:`~cmdp_envs.wrappers.SB3VecEnv` over a
    native vector env with ``lagrangian=True`` (then ``n_envs``, ``seed`` and ``env_kwargs`` are not used for it).
    ``discounted=False`` constrains the plain episode cost (a family with ``cost_semantics="undiscounted"``).

    Every argument is checked before any env is built: ``gamma`` in ``[0, 1]``, ``cost_limit`` and ``multiplier_lr``
    finite and ``>= 0``, ``seed >= 0``, ``n_envs >= 1``.
    """
    gamma = check_number("gamma", gamma, 0.0, 1.0)
    seed = check_count("seed", seed)
    n_envs = check_count("n_envs", n_envs, minimum=1)
    callback = DualAscentCallback(cost_limit, multiplier_lr=multiplier_lr, discounted=discounted)
    import_sb3()
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecEnv

    if algo == "PPO":
        algo_class = PPO
    elif algo == "TRPO":
        try:
            from sb3_contrib import TRPO
        except ImportError as error:
            raise ImportError('sb3-contrib is not installed: pip install "cmdp-envs[sb3]"') from error
        algo_class = TRPO
    else:
        raise ValueError(f"algo must be 'PPO' or 'TRPO', got {algo!r}")
    if isinstance(env, VecEnv):
        vec_env = env
        vec_env.seed(seed)
    else:
        vec_env = make_vec_env(
            env, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs,
            wrapper_class=lagrangian_env, wrapper_kwargs={"gamma": gamma},
        )
    algo_kwargs.setdefault("device", "cpu")
    model = algo_class("MlpPolicy", vec_env, gamma=gamma, seed=seed, **algo_kwargs)
    return model, callback
