"""Train OmniSafe's algorithms on any ``cmdp_envs`` id (lane B: Python 3.10, ``pip install "cmdp-envs[omnisafe]"``).

One call makes every registered id, and any fixed-task variant of it, an OmniSafe environment::

    import omnisafe
    from cmdp_envs.wrappers.omnisafe_bridge import omnisafe_custom_cfgs, register_omnisafe_envs

    register_omnisafe_envs()
    cfgs = omnisafe_custom_cfgs("PPOLag", "cmdp_envs/GridWorld-v0", total_steps=20_000, seed=0)
    omnisafe.Agent("PPOLag", "cmdp_envs/GridWorld-v0", custom_cfgs=cfgs).learn()

What the bridge does, because OmniSafe's adapters require it:

* **Tensors and Box spaces.** OmniSafe's adapter asserts Box observation and action spaces. Observations are
  flattened with Gymnasium's ``flatten`` (a ``Discrete(n)`` state becomes its one-hot vector). A ``Discrete(n)``
  action space becomes ``Box(-1, 1, (n,))`` and the env takes the **argmax** of the agent's action vector, so
  OmniSafe's Gaussian actor induces a categorical policy: action ``a`` has the probability that coordinate ``a`` of
  a Gaussian draw is the largest (the OmniSafe oracle of ``cmdp_envs.meta`` estimates it for exact evaluation).
* **Episode ends.** The bridge resets finished episodes itself (for any ``num_envs``) and reports
  ``info["final_observation"]`` batched as OmniSafe's on-policy adapter reads it; the time limit is the id's
  ``max_episode_steps``. (OmniSafe's own wrappers for custom envs fail with ``vector_env_nums > 1``, its issue #380;
  the bridge needs none of them.)
* **Native vector envs.** For a family with a native vector env (the navigation families' ``make_vector_env``), the
  ``num_envs`` sub-envs are one :class:`~cmdp_envs.families.navigation.NavigationVectorEnv` stepped by one numpy
  call; otherwise they are ``num_envs`` Gymnasium envs stepped in turn.
* **Seeding.** ``set_seed(s)`` makes the next reset of sub-env ``i`` use seed ``s + i``.
* **The task.** OmniSafe accepts ``env_cfgs`` only for the algorithms whose YAML lists it (PPOLag). For every
  algorithm, :func:`register_omnisafe_task` registers a new OmniSafe id bound to a fixed task and family keyword
  arguments, or to envs you build (``make_env``, such as the meta-test protocol's recording ones); pass that id to
  ``omnisafe.Agent``.
* **Cost semantics.** OmniSafe's on-policy algorithms compare the episode cost ``EpCost`` with their limit;
  ``EpCost`` sums ``info["original_cost"]`` when an env reports it, else the step costs. A family's
  ``cost_semantics`` says what its limit constrains, and the bridge follows it unless told otherwise. With
  ``"discounted"`` (our convention, ``J_c = E[sum_t gamma^t c_t]``) every step reports the raw cost ``c_t`` (so the
  cost critic learns the usual discounted cost-to-go) and ``info["original_cost"] = gamma^t c_t``, so ``EpCost`` *is*
  the discounted episode cost and its limit is ``task.cost_limit``. With ``"undiscounted"`` (e.g. the navigation
  families' Safety-Gymnasium reading) ``EpCost`` is the plain sum ``sum_t c_t`` and the limit is a budget on that
  sum. Saute and Simmer track their budget on the step costs themselves, i.e. undiscounted, whatever the semantics.
  A run's semantics is that of its env id (:func:`bridge_settings`); the oracles record it in their results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from cmdp_envs.registration import registered_ids
from cmdp_envs.task import Task, TaskFamily
from cmdp_envs.validation import check_cost, check_number

__all__ = [
    "register_omnisafe_envs",
    "register_omnisafe_task",
    "unregister_omnisafe_task",
    "omnisafe_custom_cfgs",
    "bridge_settings",
    "BridgeSettings",
    "cost_limit_keys",
    "import_omnisafe",
    "ON_POLICY_ALGORITHMS",
]

COST_SEMANTICS = ("discounted", "undiscounted")

#: OmniSafe 0.5.0's constrained on-policy algorithms (those whose config has a cost limit), by its own names: the
#: ones the bridge and the OmniSafe oracle train. Known without importing OmniSafe, so a misspelt name is reported as
#: such whether or not OmniSafe is installed.
ON_POLICY_ALGORITHMS = ("CPO", "CPPOPID", "CUP", "FOCOPS", "IPO", "OnCRPO", "P3O", "PCPO", "PDO",
                       "PPOEarlyTerminated", "PPOLag", "PPOSaute", "PPOSimmerPID", "RCPO", "TRPOEarlyTerminated",
                       "TRPOLag", "TRPOPID", "TRPOSaute", "TRPOSimmerPID")


def import_omnisafe() -> Any:
    """Import OmniSafe, or explain which extra and Python version it needs."""
    try:
        import omnisafe
    except ImportError as error:
        raise ImportError(
            "OmniSafe is not installed. It needs Python 3.10 (its safety-gymnasium dependency pins gymnasium 0.28.1 "
            'and does not run on Python 3.11+): pip install "cmdp-envs[omnisafe]" on Python 3.10.'
        ) from error
    return omnisafe


@dataclasses.dataclass(frozen=True)
class BridgeSettings:
    """What an OmniSafe id stands for: a Gymnasium id, the keyword arguments of ``gym.make``, an optional fixed task,
    and how costs are reported."""

    gym_id: str
    make_kwargs: tuple[tuple[str, Any], ...] = ()
    task: Task | None = None
    #: Tasks of which every episode draws one (:class:`~cmdp_envs.wrappers.TaskSampling`), instead of one ``task``.
    tasks: tuple[Task, ...] | None = None
    #: ``None``: the family's own ``cost_semantics``.
    cost_semantics: str | None = None
    #: Builds each sub-env instead of ``gym.make`` (envs of ``gym_id``'s family, fixed on ``task``).
    make_env: Callable[[], gym.Env] | None = None

    def __post_init__(self) -> None:
        if self.cost_semantics is not None and self.cost_semantics not in COST_SEMANTICS:
            raise ValueError(f"cost_semantics must be one of {COST_SEMANTICS}, got {self.cost_semantics!r}")


_SETTINGS: dict[str, BridgeSettings] = {}
_BRIDGE_CLASS: type | None = None
_GIVEN_ENVS = itertools.count()  # numbers the ids of envs built by a given make_env


def bridge_settings(omnisafe_id: str) -> BridgeSettings:
    """The settings behind an OmniSafe id registered by this module."""
    if omnisafe_id not in _SETTINGS:
        raise KeyError(f"{omnisafe_id!r} is not registered with OmniSafe; call register_omnisafe_envs() first")
    return _SETTINGS[omnisafe_id]


def register_omnisafe_envs() -> list[str]:
    """Register every ``cmdp_envs`` id with OmniSafe's environment registry (each with its family's cost semantics).
    Idempotent. Returns the ids."""
    bridge = _bridge_class()
    for env_id in registered_ids():
        _add(bridge, env_id, BridgeSettings(gym_id=env_id))
    return registered_ids()


def register_omnisafe_task(
    env: str | TaskFamily,
    task: Task | None = None,
    *,
    tasks: Sequence[Task] | None = None,
    cost_semantics: str | None = None,
    name: str | None = None,
    make_env: Callable[[], gym.Env] | None = None,
    **make_kwargs: Any,
) -> str:
    """Register an OmniSafe id whose envs are ``gym.make(gym_id, **make_kwargs)`` fixed on ``task``.

    This is how to fix the task, or the family's parameters, for algorithms that take no ``env_cfgs``. Pass the
    family you hold rather than its id when you have one: its envs are then ``family.make_env(**make_kwargs)``, so
    OmniSafe trains on exactly that family (its distribution and discount), not on one rebuilt from an id.

    :param env: a registered Gymnasium id of this package, or a :class:`~cmdp_envs.task.TaskFamily`.
    :param task: the task every episode runs (default: the family's default task).
    :param tasks: instead of ``task``, tasks of which every episode draws one (training on a distribution, such as
        pre-training for meta-RL), from the env's seeded stream.
    :param cost_semantics: ``"discounted"`` or ``"undiscounted"`` (see the module docstring); default the family's.
    :param name: the new id (default: derived from ``gym_id`` and the settings; stable across processes).
    :param make_env: builds each sub-env instead of ``gym.make`` (an env of ``env``'s family, e.g. wrapped to
        record its episodes); needs ``task``, which every episode runs, and no ``make_kwargs``. Such an id lives in
        this process only and has a new name each time; :func:`unregister_omnisafe_task` drops it (and the
        ``make_env`` it holds) once OmniSafe has built its envs.
    :returns: the OmniSafe id to pass to ``omnisafe.Agent``.
    """
    if isinstance(env, TaskFamily):
        if "family" in make_kwargs:
            raise ValueError("pass the family once: as the first argument or as family=..., not both")
        gym_id, make_kwargs = env.env_id, {**make_kwargs, "family": env}
    else:
        gym_id = env
    if gym_id not in gym.registry:
        raise ValueError(f"unknown Gymnasium id {gym_id!r}")
    if task is not None and tasks is not None:
        raise ValueError("pass either task or tasks, not both")
    if tasks is not None:
        tasks = tuple(tasks)
        if not tasks:
            raise ValueError("tasks must name at least one task")
    if make_env is not None and (task is None or set(make_kwargs) - {"family"}):
        raise ValueError("make_env builds the envs of one task: pass task=, and no keyword arguments for gym.make")
    made = gym.make(gym_id, **make_kwargs) if make_env is None else make_env()
    for checked in ([task] if task is not None else []) + list(tasks or ()):
        made.unwrapped.family.check_task(checked)  # fail here, not inside OmniSafe's constructor
    if cost_semantics is None:
        cost_semantics = made.unwrapped.family.cost_semantics
    made.close()
    settings = BridgeSettings(
        gym_id=gym_id, make_kwargs=tuple(sorted(make_kwargs.items())), task=task, tasks=tasks,
        cost_semantics=cost_semantics, make_env=make_env,
    )
    if name is None and make_env is not None:
        stem, _, version = gym_id.rpartition("-")
        name = f"{stem}-given-{next(_GIVEN_ENVS)}-{version}"
    elif name is None:
        identity = (settings.make_kwargs, task, cost_semantics) if tasks is None else (
            settings.make_kwargs, tasks, cost_semantics)
        digest = hashlib.sha256(repr(identity).encode()).hexdigest()[:8]
        stem, _, version = gym_id.rpartition("-")
        name = f"{stem}-{cost_semantics}-{digest}-{version}"
    _add(_bridge_class(), name, settings)
    return name


def unregister_omnisafe_task(omnisafe_id: str) -> None:
    """Drop an id of :func:`register_omnisafe_task` (envs OmniSafe already built keep running)."""
    bridge_settings(omnisafe_id)  # a clear error for an unknown id
    del _SETTINGS[omnisafe_id]
    _bridge_class()._support_envs.remove(omnisafe_id)


def _add(bridge: type, omnisafe_id: str, settings: BridgeSettings) -> None:
    if omnisafe_id in _SETTINGS and _SETTINGS[omnisafe_id] != settings:
        raise ValueError(f"{omnisafe_id!r} is already registered with other settings: {_SETTINGS[omnisafe_id]}")
    _SETTINGS[omnisafe_id] = settings
    # OmniSafe's registry keeps a reference to this very list, so appending registers the id.
    if omnisafe_id not in bridge._support_envs:
        bridge._support_envs.append(omnisafe_id)


def default_cfgs(algo: str) -> dict[str, Any]:
    """An OmniSafe algorithm's default config, section by section (its ``<algo>.yaml``)."""
    import_omnisafe()
    import os

    from omnisafe.algorithms import ALGORITHM2TYPE
    from omnisafe.utils.config import __file__ as config_file
    from omnisafe.utils.tools import load_yaml

    if algo not in ALGORITHM2TYPE:
        raise ValueError(f"unknown OmniSafe algorithm {algo!r}; known: {sorted(ALGORITHM2TYPE)}")
    path = os.path.join(os.path.dirname(config_file), "..", "configs", ALGORITHM2TYPE[algo], f"{algo}.yaml")
    return load_yaml(path)["defaults"]


def cost_limit_keys(algo: str) -> list[tuple[str, str]]:
    """The ``(section, key)`` pairs that hold the cost limit in an OmniSafe algorithm's default config:
    ``("lagrange_cfgs", "cost_limit")`` for Lagrangian methods, ``("algo_cfgs", "cost_limit")`` for CPO-style
    methods, ``("algo_cfgs", "safety_budget")`` for Saute and Simmer."""
    defaults = default_cfgs(algo)
    return [
        (section, key)
        for section, values in defaults.items()
        if isinstance(values, dict)
        for key in ("cost_limit", "safety_budget")
        if key in values
    ]


def omnisafe_custom_cfgs(
    algo: str,
    omnisafe_id: str,
    *,
    total_steps: int,
    seed: int = 0,
    steps_per_epoch: int = 1000,
    cost_limit: float | None = None,
    log_dir: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """OmniSafe ``custom_cfgs`` for training ``algo`` on a bridged id.

    Sets the algorithm's cost limit key(s) (see :func:`cost_limit_keys`) to ``cost_limit`` or else the id's task's
    limit, the discount to the family's ``gamma``, turns off reward, cost and observation normalisation (so the
    trained actor reads raw observations, and ``EpCost`` keeps the meaning the bridge's semantics give it: cost
    normalisation would overwrite ``info["original_cost"]``), and quiets logging. ``overrides`` are
    merged section by section (e.g. ``algo_cfgs={"update_iters": 5}``).
    """
    settings = bridge_settings(omnisafe_id)
    env = gym.make(settings.gym_id, **dict(settings.make_kwargs))
    family = env.unwrapped.family
    task = settings.task if settings.task is not None else env.unwrapped.task
    env.close()
    limit = check_number("cost_limit", task.cost_limit if cost_limit is None else cost_limit, 0.0)
    keys = cost_limit_keys(algo)
    if not keys:
        raise ValueError(f"{algo} has no cost limit in its config: it is not a constrained algorithm")
    cfgs: dict[str, Any] = {
        "seed": seed,
        "train_cfgs": {"total_steps": int(total_steps), "device": "cpu", "torch_threads": 1},
        "algo_cfgs": {
            "steps_per_epoch": int(steps_per_epoch),
            "gamma": family.gamma,  # on-policy algorithms discount both critics with it
            "cost_gamma": family.gamma,
            "obs_normalize": False,
            "reward_normalize": False,
            "cost_normalize": False,
        },
        "logger_cfgs": {"use_wandb": False, "use_tensorboard": False, "save_model_freq": 10**9},
    }
    if log_dir is not None:
        cfgs["logger_cfgs"]["log_dir"] = str(log_dir)
    for section, key in keys:
        cfgs.setdefault(section, {})[key] = limit
    for section, values in overrides.items():
        if isinstance(values, dict):
            cfgs.setdefault(section, {}).update(values)
        else:
            cfgs[section] = values
    for key in ("gamma", "cost_gamma"):
        # The bridge discounts costs and our evaluation values with the family's gamma: a different training
        # discount would optimise another objective than the one checked.
        if cfgs["algo_cfgs"].get(key) != family.gamma:
            raise ValueError(f"algo_cfgs.{key} = {cfgs['algo_cfgs'].get(key)!r} differs from the family's discount "
                             f"gamma = {family.gamma}; build the family with the discount you want instead")
    return cfgs


def _bridge_class() -> type:
    """The OmniSafe ``CMDP`` subclass, defined (and registered with OmniSafe) on first use."""
    global _BRIDGE_CLASS
    if _BRIDGE_CLASS is not None:
        return _BRIDGE_CLASS
    import_omnisafe()
    import torch
    from gymnasium.spaces.utils import flatten, flatten_space
    from omnisafe.envs.core import CMDP, env_register

    class CMDPEnvsOmniSafe(CMDP):
        """A ``cmdp_envs`` id as an OmniSafe environment (see :mod:`cmdp_envs.wrappers.omnisafe_bridge`)."""

        _support_envs: list[str] = []  # noqa: RUF012  (OmniSafe's registry holds this list)
        need_auto_reset_wrapper = False  # the bridge resets itself, for any number of envs
        need_time_limit_wrapper = False  # the gym.make time limit applies
        metadata: dict[str, Any] = {}  # noqa: RUF012

        def __init__(self, env_id: str, num_envs: int = 1, device: str | torch.device = "cpu", **kwargs: Any):
            super().__init__(env_id)
            settings = bridge_settings(env_id)
            # env_cfgs (PPOLag only) may override the registered task and semantics.
            task = kwargs.pop("task", settings.task)
            cost_semantics = kwargs.pop("cost_semantics", settings.cost_semantics)
            make_kwargs = {**dict(settings.make_kwargs), **kwargs}
            if settings.make_env is not None and kwargs:
                raise ValueError(f"{env_id!r} builds its envs with a given make_env, which takes no env_cfgs "
                                 f"({sorted(kwargs)})")
            self._num_envs = int(num_envs)
            self._device = torch.device(device)

            def make() -> gym.Env:
                return gym.make(settings.gym_id, **make_kwargs) if settings.make_env is None else settings.make_env()

            first = make()
            base = first.unwrapped
            self.cost_semantics = base.family.cost_semantics if cost_semantics is None else cost_semantics
            if self.cost_semantics not in COST_SEMANTICS:
                raise ValueError(f"cost_semantics must be one of {COST_SEMANTICS}, got {self.cost_semantics!r}")
            if isinstance(task, dict):
                task = base.family.task(**task)
            self.task = task if task is not None else base.task
            self.gamma = base.family.gamma
            self._gym_observation_space = first.observation_space
            self._gym_action_space = first.action_space
            self._observation_space = flatten_space(self._gym_observation_space)
            self._discrete_actions = isinstance(self._gym_action_space, gym.spaces.Discrete)
            if self._discrete_actions:
                self._action_space = gym.spaces.Box(-1.0, 1.0, (int(self._gym_action_space.n),), dtype=np.float32)
            else:
                self._action_space = self._gym_action_space
            self._time_limit = first.spec.max_episode_steps
            # The family's own vector env when it has one and nothing else was asked of gym.make.
            native = (settings.make_env is None and hasattr(base.family, "make_vector_env")
                      and set(make_kwargs) <= {"family", "max_episode_steps"})
            if settings.tasks is not None:
                from cmdp_envs.wrappers.task_sampling import TaskSampling

                first.close()
                self.task = None
                self._envs = _GymSubEnvs([TaskSampling(gym.make(settings.gym_id, **make_kwargs), tasks=settings.tasks)
                                          for _ in range(self._num_envs)], None)
            elif native:
                first.close()
                self._envs = _NativeSubEnvs(base.family.make_vector_env(
                    self._num_envs, max_episode_steps=self._time_limit, autoreset_mode="same_step"
                ), self.task)
            else:
                self._envs = _GymSubEnvs([first] + [make() for _ in range(self._num_envs - 1)], self.task)
            self._pending_seed: int | None = None
            self._discount = np.ones(self._num_envs)
            self._steps = np.zeros(self._num_envs, dtype=np.int64)  # steps into each episode, for error messages
            self._flatten = flatten
            self._episode_return = np.zeros(self._num_envs)
            self._episode_cost = np.zeros(self._num_envs)
            self._total_steps = 0
            #: With ``record_episodes`` set, every finished episode as ``(env steps taken by then, undiscounted
            #: return, cost under the bridge's semantics)``: exact per-epoch curves (OmniSafe's own log averages its
            #: last 50 episodes). Off by default, so that long runs keep no growing list.
            self.record_episodes = False
            self.episodes: list[tuple[int, float, float]] = []

        @property
        def max_episode_steps(self) -> int | None:
            return self._time_limit

        def _tensor(self, values: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            tensor = torch.as_tensor(np.asarray(values), dtype=dtype, device=self._device)
            return tensor[0] if self._num_envs == 1 else tensor

        def _observation(self, observation: Any) -> np.ndarray:
            return np.asarray(self._flatten(self._gym_observation_space, observation), dtype=np.float32)

        def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
            base_seed = seed if seed is not None else self._pending_seed
            self._pending_seed = None
            observations = self._envs.reset(base_seed)
            self._discount[:] = 1.0
            self._steps[:] = 0
            self._episode_return[:] = 0.0
            self._episode_cost[:] = 0.0
            return self._tensor([self._observation(o) for o in observations]), {}

        def step(self, action: torch.Tensor):
            actions = action.detach().cpu().numpy().reshape(self._num_envs, -1)
            if self._discrete_actions:
                actions = actions.argmax(axis=1)
            observations, rewards, costs, terminated, truncated, finals = self._envs.step(actions)
            self._steps += 1
            costs = np.array([check_cost(cost, f"step {self._steps[i]} of sub-env {i}'s episode")
                              for i, cost in enumerate(costs)])
            discounted_costs = costs * self._discount
            self._discount *= self.gamma
            done = np.asarray(terminated) | np.asarray(truncated)
            self._total_steps += self._num_envs
            self._episode_return += rewards
            self._episode_cost += discounted_costs if self.cost_semantics == "discounted" else costs
            for index in np.flatnonzero(done) if self.record_episodes else ():
                self.episodes.append((self._total_steps, float(self._episode_return[index]),
                                      float(self._episode_cost[index])))
            self._episode_return[done] = 0.0
            self._episode_cost[done] = 0.0
            self._discount[done] = 1.0
            self._steps[done] = 0
            info = {"final_observation": self._tensor([self._observation(o) for o in finals])}
            if self.cost_semantics == "discounted":
                info["original_cost"] = self._tensor(discounted_costs)
            return (
                self._tensor([self._observation(o) for o in observations]),
                self._tensor(rewards),
                self._tensor(costs),
                self._tensor(terminated, torch.bool),
                self._tensor(truncated, torch.bool),
                info,
            )

        def set_seed(self, seed: int) -> None:
            self._pending_seed = int(seed)

        def render(self) -> Any:
            return self._envs.render()

        def close(self) -> None:
            self._envs.close()

    env_register(CMDPEnvsOmniSafe)
    _BRIDGE_CLASS = CMDPEnvsOmniSafe
    return CMDPEnvsOmniSafe


class _GymSubEnvs:
    """``num_envs`` Gymnasium envs stepped in turn, each reset on its own when its episode ends."""

    def __init__(self, envs: list[gym.Env], task: Task | None):
        # No task: the envs choose their own (TaskSampling draws one per episode).
        self.envs, self.options = envs, None if task is None else {"task": task}

    def reset(self, seed: int | None) -> list[Any]:
        return [env.reset(seed=None if seed is None else seed + i, options=self.options)[0]
                for i, env in enumerate(self.envs)]

    def step(self, actions: np.ndarray) -> tuple[list[Any], np.ndarray, list[Any], list[bool], list[bool], list[Any]]:
        """Observations (a reset one where an episode ended), rewards, costs (as reported: the bridge checks them),
        terminations, truncations and the episodes' last observations."""
        observations, rewards, costs, terminated, truncated, finals = [], [], [], [], [], []
        for env, action in zip(self.envs, actions):
            observation, reward, term, trunc, info = env.step(int(action) if np.ndim(action) == 0 else action)
            finals.append(observation)
            if term or trunc:
                observation, _ = env.reset(options=self.options)
            observations.append(observation)
            rewards.append(reward)
            costs.append(info.get("cost"))
            terminated.append(term)
            truncated.append(trunc)
        return observations, np.array(rewards, dtype=float), costs, terminated, truncated, finals

    def render(self) -> Any:
        return self.envs[0].render()

    def close(self) -> None:
        for env in self.envs:
            env.close()


class _NativeSubEnvs:
    """A native vector env with same-step autoreset: all sub-envs in one call."""

    def __init__(self, vector_env: Any, task: Task):
        self.vector_env = vector_env
        vector_env.set_tasks([task])

    def reset(self, seed: int | None) -> np.ndarray:
        return self.vector_env.reset(seed=seed)[0]

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any, Any, Any]:
        observations, rewards, terminated, truncated, info = self.vector_env.step(actions)
        finals = observations.copy()
        for index in np.flatnonzero(info.get("_final_obs", np.zeros(len(rewards), bool))):
            finals[index] = info["final_obs"][index]
        return observations, rewards, list(info["cost"]), terminated, truncated, finals

    def render(self) -> Any:
        return self.vector_env.render()

    def close(self) -> None:
        self.vector_env.close()
