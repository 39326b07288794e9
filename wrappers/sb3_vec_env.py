"""A Stable-Baselines3 ``VecEnv`` over a native vector env of this package (e.g. the navigation families'), so SB3
learners train on all its sub-envs in one numpy step instead of one Python env per process."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from cmdp_envs.validation import check_number

__all__ = ["SB3VecEnv"]


def _vec_env_base() -> type:
    try:
        from stable_baselines3.common.vec_env import VecEnv
    except ImportError as error:
        raise ImportError('stable-baselines3 is not installed: pip install "cmdp-envs[sb3]"') from error
    return VecEnv


class SB3VecEnv(_vec_env_base()):  # type: ignore[misc]
    """SB3's ``VecEnv`` interface over a :class:`~cmdp_envs.families.navigation.NavigationVectorEnv`.

    The vector env must use ``autoreset_mode="same_step"`` (SB3's convention): a finished sub-env's last observation
    goes to ``info["terminal_observation"]`` and ``info["TimeLimit.truncated"]`` says whether it was cut by the time
    limit. Every step's ``info`` has ``"cost"`` and the per-source costs; at an episode's end ``info["episode"]``
    has ``r`` (return), ``l`` (length), ``c`` (cost sum) and ``c_discounted`` (``sum_t gamma^t c_t`` with the
    family's ``gamma``), as SB3's ``Monitor`` and :class:`~cmdp_envs.wrappers.RecordEpisodeCost` report them, so
    SB3's logger and :class:`~cmdp_envs.meta.sb3_lagrangian.DualAscentCallback` work unchanged.

    With ``lagrangian=True`` the reward is ``r - lambda c`` (the original in ``info["reward"]``) and
    ``env_method("set_multiplier", lambda)`` sets ``lambda``, the protocol of
    :class:`~cmdp_envs.wrappers.LagrangianReward`.

    Example::

        >>> from cmdp_envs.families.navigation import NavigationVectorEnv
        >>> venv = SB3VecEnv(NavigationVectorEnv(64, kind="goal", autoreset_mode="same_step"), lagrangian=True)
        >>> obs = venv.reset()   # (64, 60)

    :param vector_env: the native vector env.
    :param lagrangian: subtract ``lambda`` times the cost from the reward.
    :param multiplier: the initial ``lambda >= 0``.
    """

    def __init__(self, vector_env: Any, lagrangian: bool = False, multiplier: float = 0.0):
        if getattr(vector_env, "autoreset_mode", None) != "same_step":
            raise ValueError(
                "SB3 needs same-step autoreset: build the vector env with autoreset_mode='same_step', got "
                f"{getattr(vector_env, 'autoreset_mode', None)!r}"
            )
        self.vector_env = vector_env
        self.lagrangian = bool(lagrangian)
        self.multiplier = check_number("the Lagrange multiplier", multiplier, 0.0)
        self.gamma = vector_env.family.gamma
        self.render_mode = vector_env.render_mode
        super().__init__(vector_env.num_envs, vector_env.single_observation_space, vector_env.single_action_space)
        n = vector_env.num_envs
        self._return = np.zeros(n)
        self._cost = np.zeros(n)
        self._discounted_cost = np.zeros(n)
        self._length = np.zeros(n, dtype=np.int64)
        self._actions: np.ndarray | None = None
        self._reset_options: dict[str, Any] = {}

    def set_multiplier(self, value: float) -> None:
        self.multiplier = check_number("the Lagrange multiplier", value, 0.0)

    def set_tasks(self, tasks: Sequence[Any]) -> None:
        """Tasks for the sub-envs from the next reset on (see ``NavigationVectorEnv.set_tasks``)."""
        self.vector_env.set_tasks(list(tasks))

    def reset(self) -> np.ndarray:
        seed = self._seeds[0] if self._seeds and self._seeds[0] is not None else None
        observation, _ = self.vector_env.reset(seed=seed)
        self._reset_seeds()
        self._return[:] = self._cost[:] = self._discounted_cost[:] = 0.0
        self._length[:] = 0
        return observation

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=float).reshape(self.num_envs, -1)

    def step_wait(self):
        observation, reward, terminated, truncated, info = self.vector_env.step(self._actions)
        cost = info["cost"]
        self._discounted_cost += self.gamma ** self._length * cost
        self._return += reward
        self._cost += cost
        self._length += 1
        done = terminated | truncated
        sources = [key for key in info if key.startswith("cost") and not key.startswith("_")]
        infos: list[dict[str, Any]] = []
        for index in range(self.num_envs):
            row = {key: float(info[key][index]) for key in sources}
            row["reward"] = float(reward[index])
            if done[index]:
                row["terminal_observation"] = info["final_obs"][index]
                row["TimeLimit.truncated"] = bool(truncated[index] and not terminated[index])
                row["episode"] = {
                    "r": float(self._return[index]), "l": int(self._length[index]),
                    "c": float(self._cost[index]), "c_discounted": float(self._discounted_cost[index]),
                }
            infos.append(row)
        self._return[done] = self._cost[done] = self._discounted_cost[done] = 0.0
        self._length[done] = 0
        if self.lagrangian:
            reward = reward - self.multiplier * cost
        return observation, reward.astype(np.float32), done, infos

    def close(self) -> None:
        self.vector_env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        """Calls the adapter's own method once (the sub-envs share it) and reports the result for each index."""
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result] * len(self._indices(indices))

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)

    def render(self, mode: str | None = None) -> Any:
        return self.vector_env.render()
