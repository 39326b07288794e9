"""Draw a new task at every reset."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from cmdp_envs.task import Task, as_generator

__all__ = ["TaskSampling"]


class TaskSampling(gym.Wrapper):
    """Sets a new task at every ``reset``: drawn from the env's family, or uniformly from a given task list.

    The draws come from the wrapper's own generator, so they do not disturb the env's transition randomness. It is
    seeded by ``seed``, or else by the first ``reset(seed=...)``; the same seed gives the same task sequence.
    A task passed explicitly as ``reset(options={"task": task})`` takes precedence and consumes no draw.

    Example::

        >>> import gymnasium as gym, cmdp_envs
        >>> from cmdp_envs.wrappers import TaskSampling
        >>> env = TaskSampling(gym.make("cmdp_envs/GridWorld-v0"), seed=0)
        >>> _, info = env.reset()
        >>> round(info["task"].noise, 4)
        0.3038

    :param env: an env whose ``unwrapped`` has ``family`` and ``set_task``.
    :param tasks: draw from these tasks instead of the family.
    :param seed: seed of the task draws.

    Change log: v0.1.0 first version.
    """

    def __init__(self, env: gym.Env, tasks: Sequence[Task] | None = None, seed: int | None = None):
        super().__init__(env)
        base = env.unwrapped
        if not (hasattr(base, "family") and hasattr(base, "set_task")):
            raise TypeError(f"TaskSampling needs an env with .family and .set_task (a cmdp_envs env), got {base!r}")
        if tasks is not None:
            tasks = list(tasks)
            if not tasks:
                raise ValueError("tasks must not be empty")
            for task in tasks:
                base.family.check_task(task)
        self.tasks = tasks
        self._task_rng = as_generator(seed) if seed is not None else None

    def draw_task(self) -> Task:
        """The next task of the sequence (advances the wrapper's generator)."""
        if self._task_rng is None:
            self._task_rng = np.random.default_rng()
        if self.tasks is not None:
            return self.tasks[int(self._task_rng.integers(len(self.tasks)))]
        return self.env.unwrapped.family.sample(1, seed=self._task_rng)[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None and self._task_rng is None:
            # A separate stream from the env's own np_random, derived from the same seed.
            self._task_rng = np.random.default_rng([seed, 1])
        options = dict(options or {})
        if "task" not in options:
            options["task"] = self.draw_task()
        return self.env.reset(seed=seed, options=options)
