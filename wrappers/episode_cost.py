"""Episode statistics with costs."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import gymnasium as gym

from cmdp_envs.task import check_count
from cmdp_envs.validation import check_cost, check_number

__all__ = ["RecordEpisodeCost"]


class RecordEpisodeCost(gym.Wrapper):
    """At the end of every episode, ``info["episode"]`` holds the summed cost ``"c"`` beside the return ``"r"``, the
    length ``"l"`` and the elapsed time ``"t"``, as Gymnasium's ``RecordEpisodeStatistics`` and SB3's ``Monitor``
    write them. With ``gamma``, also the discounted sums ``"r_discounted"`` and ``"c_discounted"`` (``sum_t gamma^t
    x_t``, the quantities a CMDP constrains).

    Put it *outside* Gymnasium's ``RecordEpisodeStatistics`` and SB3's ``Monitor``: both write ``info["episode"]`` at
    episode end (the first refuses an existing one, the second replaces it), and this wrapper adds its keys to
    whatever is there, keeping the other entries. ``make_vec_env(env_id, wrapper_class=RecordEpisodeCost)`` gives
    that order. The last ``buffer_length`` episodes' totals are kept in ``return_queue``, ``cost_queue`` and
    ``length_queue``.

    Every step's ``info["cost"]`` must be a finite real number ``>= 0``: a NaN, infinite or negative cost raises
    ``ValueError`` naming the step of the episode and the value, and ends the recording of that episode (its sums
    would miss the step), so the next ``step`` raises until ``reset()``.

    Example::

        >>> import gymnasium as gym, cmdp_envs
        >>> from cmdp_envs.wrappers import RecordEpisodeCost
        >>> env = RecordEpisodeCost(gym.make("cmdp_envs/GridWorld-v0", max_episode_steps=5), gamma=0.9)
        >>> _ = env.reset(seed=0)
        >>> for _ in range(5):
        ...     _, _, terminated, truncated, info = env.step(0)
        >>> sorted(info["episode"])
        ['c', 'c_discounted', 'l', 'r', 'r_discounted', 't']

    :param env: an env that reports ``info["cost"]`` on every step.
    :param gamma: discount factor for the discounted sums; ``None`` records only undiscounted ones.
    :param buffer_length: how many episodes the queues keep.

    Change log: v0.1.0 first version.
    """

    def __init__(self, env: gym.Env, gamma: float | None = None, buffer_length: int = 100):
        gamma = None if gamma is None else check_number("gamma (or None)", gamma, 0.0, 1.0)
        buffer_length = check_count("buffer_length", buffer_length, minimum=1)
        super().__init__(env)
        self.gamma = gamma
        self.return_queue: deque[float] = deque(maxlen=buffer_length)
        self.cost_queue: deque[float] = deque(maxlen=buffer_length)
        self.length_queue: deque[int] = deque(maxlen=buffer_length)
        self._episode_started = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        observation, info = self.env.reset(seed=seed, options=options)
        self._reward = self._cost = self._discounted_reward = self._discounted_cost = 0.0
        self._length = 0
        self._discount = 1.0
        self._start = time.perf_counter()
        self._episode_started = True
        return observation, info

    def step(self, action: Any):
        if not self._episode_started:
            raise RuntimeError(
                "call reset() before step(): no episode is being recorded (none started, the last one ended, or a "
                "step's cost was refused)"
            )
        observation, reward, terminated, truncated, info = self.env.step(action)
        # Until this step's cost passes, the episode's sums lack the step: a raise below ends the recording.
        self._episode_started = False
        if "cost" not in info:
            raise KeyError("RecordEpisodeCost needs info['cost'] on every step; wrap the env with CostFunction first")
        cost = check_cost(info["cost"], f"step {self._length + 1} of the episode (info['cost'] of the inner env)")
        self._episode_started = True
        self._reward += float(reward)
        self._cost += cost
        self._discounted_reward += self._discount * float(reward)
        self._discounted_cost += self._discount * cost
        self._length += 1
        if self.gamma is not None:
            self._discount *= self.gamma
        if terminated or truncated:
            episode = dict(info.get("episode", {}))
            episode.setdefault("r", self._reward)
            episode.setdefault("l", self._length)
            episode.setdefault("t", round(time.perf_counter() - self._start, 6))
            episode["c"] = self._cost
            if self.gamma is not None:
                episode["r_discounted"] = self._discounted_reward
                episode["c_discounted"] = self._discounted_cost
            info["episode"] = episode
            self.return_queue.append(self._reward)
            self.cost_queue.append(self._cost)
            self.length_queue.append(self._length)
            self._episode_started = False
        return observation, reward, terminated, truncated, info
