"""Draw a new task at every reset."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gymnasium as gym
import numpy as np

from cmdp_envs.task import Task, check_count
from cmdp_envs.validation import check_reset_options

__all__ = ["TaskSampling"]


class TaskSampling(gym.Wrapper):
    """Sets a new task at every ``reset``: drawn from the env's family, or uniformly from a given task list.

    Task draws come from the wrapper's own generator, a stream separate from the env's transition randomness:

    * ``reset(seed=s)`` restarts the task stream from ``s`` (and from ``seed``, when the wrapper was given one), just
      as it restarts the env's own generator; so ``reset(seed=s)`` always yields the same task, and sub-envs of a
      vector env, which receive seeds ``s, s + 1, ...``, draw different task sequences;
    * ``reset()`` continues the stream; before any seeded reset the stream starts from ``seed`` (fresh entropy if
      ``None``).

    A task passed explicitly as ``reset(options={"task": task})`` takes precedence and consumes no draw. ``"task"`` is
    the only reset option: any other key raises ``ValueError`` before a task is drawn or the env is touched.

    Example::

        >>> import gymnasium as gym, cmdp_envs
        >>> from cmdp_envs.wrappers import TaskSampling
        >>> env = TaskSampling(gym.make("cmdp_envs/GridWorld-v0"), seed=0)
        >>> _, info = env.reset()
        >>> round(info["task"].noise, 4)
        0.3228

    :param env: an env whose ``unwrapped`` has ``family`` and ``set_task``.
    :param tasks: draw from these tasks instead of the family: a non-empty list (or other iterable) of valid tasks of
        the env's family.
    :param seed: seed of the task draws (combined with the seed of a seeded reset).

    Change log: v0.1.0 first version.
    """

    # Mixed into the task stream's seed so that it never coincides with the env's own stream for the same seed.
    _STREAM_TAG = 0x7A5C

    def __init__(self, env: gym.Env, tasks: Iterable[Task] | None = None, seed: int | None = None):
        base = env.unwrapped
        if not (hasattr(base, "family") and hasattr(base, "set_task")):
            raise TypeError(f"TaskSampling needs an env with .family and .set_task (a cmdp_envs env), got {base!r}")
        tasks = None if tasks is None else _check_tasks(tasks, base.family)
        seed = None if seed is None else check_count("seed", seed)
        super().__init__(env)
        self.tasks = tasks
        self.seed = seed
        self._task_rng = np.random.default_rng(self._entropy())

    def _entropy(self, reset_seed: int | None = None) -> list[int] | None:
        parts = [p for p in (reset_seed, self.seed) if p is not None]
        return [*parts, self._STREAM_TAG] if parts else None

    def draw_task(self) -> Task:
        """The next task of the stream."""
        if self.tasks is not None:
            return self.tasks[int(self._task_rng.integers(len(self.tasks)))]
        return self.env.unwrapped.family.sample(1, seed=self._task_rng)[0]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = check_reset_options(options, ("task",))
        if seed is not None:
            self._task_rng = np.random.default_rng(self._entropy(check_count("seed", seed)))
        if "task" not in options:
            options["task"] = self.draw_task()
        return self.env.reset(seed=seed, options=options)


def _check_tasks(tasks: Any, family: Any) -> list[Task]:
    """``tasks`` as a non-empty list of valid tasks of ``family``; the errors name the offending index."""
    if isinstance(tasks, Task):
        # A frozen dataclass is not iterable: without this the error would be "object is not iterable".
        raise TypeError(f"tasks got a single task ({tasks!r}); pass a list of tasks, e.g. tasks=[task]")
    if isinstance(tasks, (str, bytes)) or not isinstance(tasks, Iterable):
        raise TypeError(f"tasks must be a list of tasks or None, got {tasks!r}")
    tasks = list(tasks)
    if not tasks:
        raise ValueError("tasks must not be empty")
    for index, task in enumerate(tasks):
        if not isinstance(task, Task):
            raise TypeError(f"tasks[{index}] must be a Task, got {task!r}")
        try:
            family.check_task(task)
        except ValueError as error:
            raise ValueError(f"tasks[{index}]: {error}") from error
    return tasks
