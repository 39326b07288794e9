"""C-MAML's constrained learners: the inner loops that adapt the meta policy to a task, and the same learners for
fine-tuning and pre-training (:mod:`.cmaml`). The meta policy is each learner's own actor, so ``theta`` passes to and
from it without conversion.

* :class:`SB3InnerLoop`: our SB3 PPO- and TRPO-Lagrangian (:mod:`.sb3_lagrangian`), both lanes. SB3's policies have
  one critic (of ``r - lambda c``), so ``V_C`` stays in the outer loop.
* :class:`OmniSafeInnerLoop`: OmniSafe's on-policy constrained algorithms (``TRPOLag``, as the paper ran, ``CPO``,
  ``PPOLag``, ...) through the bridge, lane B. Their cost critic has ``V_C``'s architecture (64 x 64, tanh), so
  each task's cost critic starts from ``V_C`` (Algorithm 1, line 7). OmniSafe's actors are Gaussian: families with
  continuous actions only.

One update is one rollout-and-update: ``n_steps`` per env for SB3, one epoch of ``steps_per_epoch`` for OmniSafe.
"""

from __future__ import annotations

import contextlib
import io
import math
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cmdp_envs.meta.cmaml import InnerLoop, shared_cost_limit
from cmdp_envs.meta.sb3_lagrangian import _base_callback, lagrangian_learner
from cmdp_envs.task import TabularFamily, Task, TaskFamily, check_count

__all__ = ["SB3InnerLoop", "SB3Actor", "OmniSafeInnerLoop", "OmniSafeActor"]


class SB3Actor:
    """An SB3 ``ActorCriticPolicy`` as C-MAML's :class:`~cmdp_envs.meta.cmaml.Actor`: every parameter but the value
    branch's."""

    def __init__(self, policy: Any):
        self.module = policy

    def parameters(self) -> list[Any]:
        return [parameter for name, parameter in self.module.named_parameters()
                if not name.startswith(("value_net", "mlp_extractor.value_net", "vf_features_extractor"))]

    def sample(self, observations: np.ndarray) -> np.ndarray:
        policy = self.module
        return policy.get_distribution(policy.obs_to_tensor(observations)[0]).get_actions().numpy()

    def log_prob(self, observations: Any, actions: Any) -> Any:
        return self.module.evaluate_actions(observations, actions)[1]

    def distribution(self, observations: Any) -> Any:
        """The torch distribution of actions for a batch of flat observations (a Gaussian in float64)."""
        import torch

        distribution = self.module.get_distribution(observations.to(torch.float32)).distribution
        if isinstance(distribution, torch.distributions.Categorical):
            return distribution
        normal = torch.distributions.Normal(distribution.loc.double(), distribution.scale.double())
        return torch.distributions.Independent(normal, 1)

    def copy(self) -> SB3Actor:
        """A new actor with the same weights: a fresh policy of the same construction (SB3 policies cache their last
        distribution, whose tensors cannot be deep-copied)."""
        policy = self.module
        clone = type(policy)(**policy._get_constructor_parameters())
        clone.load_state_dict(policy.state_dict())
        return SB3Actor(clone)


class _SB3Session:
    def __init__(self, model: Any, callback: Any, updates: int):
        self.actor = SB3Actor(model.policy)
        self._model, self._callback, self._updates = model, callback, updates

    @property
    def history(self) -> list[dict[str, float]]:
        return self._callback.history

    @property
    def steps(self) -> int:
        return int(self._model.num_timesteps)

    def load_cost_critic(self, state: dict[str, np.ndarray]) -> bool:
        return False  # one critic, of the Lagrangian reward

    def learn(self, on_rollout: Callable[[Any], None] | None = None) -> None:
        model = self._model
        callbacks = [self._callback] if on_rollout is None else [_RolloutStart(self.actor, on_rollout),
                                                                 self._callback]
        model.learn(self._updates * model.n_steps * model.n_envs, callback=callbacks)


class _RolloutStart(_base_callback()):  # type: ignore[misc]
    """Calls ``on_rollout(actor)`` as each of SB3's rollouts starts."""

    def __init__(self, actor: SB3Actor, on_rollout: Callable[[Any], None]):
        super().__init__()
        self._actor, self._on_rollout = actor, on_rollout

    def _on_rollout_start(self) -> None:
        self._on_rollout(self._actor)

    def _on_step(self) -> bool:
        return True


class SB3InnerLoop(InnerLoop):
    """The inner loop on an SB3 Lagrangian learner, ``"PPO"`` or ``"TRPO"``.

    :param n_envs: envs per learner.
    :param env_kwargs: further arguments of ``family.make_env`` for every env (e.g. ``max_episode_steps``).
    :param learner_kwargs: passed to the SB3 algorithm (``n_steps``, ``batch_size``, ``learning_rate``, ...).
    """

    def __init__(self, family: TaskFamily, algo: str = "PPO", n_envs: int = 2,
                 env_kwargs: dict[str, Any] | None = None, **learner_kwargs: Any):
        if algo not in ("PPO", "TRPO"):
            raise ValueError(f"algo must be 'PPO' or 'TRPO', got {algo!r}")
        self.family = family
        self.algo = algo
        self.n_envs = check_count("n_envs", n_envs, minimum=1)
        self.learner_kwargs = learner_kwargs
        # Tabular families feed networks one-hot states (as the SB3 oracle does).
        self.env_kwargs = {**({"observation_type": "onehot"} if isinstance(family, TabularFamily) else {}),
                           **_checked_env_kwargs(env_kwargs)}

    def session(self, tasks: Sequence[Task], seed: int, multiplier: float, multiplier_lr: float, updates: int,
                make_env: Callable[[], Any] | None = None) -> _SB3Session:
        from cmdp_envs.wrappers import TaskSampling

        tasks = list(tasks)
        family, env_kwargs = self.family, self.env_kwargs
        if make_env is not None:
            if len(tasks) != 1:
                raise ValueError("make_env builds envs of one task: pass one task with it")
            env, make_kwargs = make_env, None
        elif len(tasks) == 1:
            env: Any = family.env_id
            make_kwargs: dict[str, Any] | None = {**env_kwargs, "family": family, "task": tasks[0]}
        else:
            def env() -> Any:
                return TaskSampling(family.make_env(**env_kwargs), tasks=tasks)

            make_kwargs = None
        model, callback = lagrangian_learner(
            self.algo, env, cost_limit=shared_cost_limit(tasks, "the learner"), gamma=family.gamma, seed=seed,
            n_envs=self.n_envs, multiplier_lr=multiplier_lr, discounted=family.cost_semantics == "discounted",
            env_kwargs=make_kwargs, **self.learner_kwargs,
        )
        callback.multiplier = multiplier
        return _SB3Session(model, callback, check_count("updates", updates, minimum=1))

    def updates_for(self, total_steps: int) -> int:
        return math.ceil(total_steps / (self.learner_kwargs.get("n_steps", 2048) * self.n_envs))


class OmniSafeActor:
    """OmniSafe's Gaussian actor as C-MAML's :class:`~cmdp_envs.meta.cmaml.Actor`: all its parameters (the mean
    network and the log standard deviation)."""

    def __init__(self, actor: Any):
        self.module = actor

    def parameters(self) -> list[Any]:
        return list(self.module.parameters())

    def sample(self, observations: np.ndarray) -> np.ndarray:
        import torch

        return self.module.predict(torch.as_tensor(observations, dtype=torch.float32)).numpy()

    def log_prob(self, observations: Any, actions: Any) -> Any:
        return self.module(observations).log_prob(actions).sum(axis=-1)

    def distribution(self, observations: Any) -> Any:
        """The torch distribution of actions for a batch of flat observations (a Gaussian in float64)."""
        import torch

        normal = self.module._distribution(observations.to(torch.float32))  # forward() would cache it
        return torch.distributions.Independent(torch.distributions.Normal(normal.loc.double(),
                                                                          normal.scale.double()), 1)

    def copy(self) -> OmniSafeActor:
        """A new actor with the same weights (without the distribution OmniSafe caches, which may hold a graph that
        cannot be deep-copied)."""
        import copy

        cached = self.module.__dict__.pop("_current_dist", None)
        try:
            return OmniSafeActor(copy.deepcopy(self.module))
        finally:
            if cached is not None:
                self.module._current_dist = cached


class _OmniSafeSession:
    """An OmniSafe agent; ``on_rollout`` is called before each of its epochs' rollouts (its adapter's ``rollout``
    is wrapped on this instance: OmniSafe's loop has no hook of its own)."""

    def __init__(self, agent: Any, log_dir: tempfile.TemporaryDirectory, steps_per_epoch: int):
        self._agent, self._log_dir, self._steps_per_epoch = agent, log_dir, steps_per_epoch
        self._algorithm = agent.agent
        self._bridge = _bridge(self._algorithm._env._env)
        self._bridge.record_episodes = True
        self.actor = OmniSafeActor(self._algorithm._actor_critic.actor)
        self.history: list[dict[str, float]] = []
        self._steps = 0

    @property
    def steps(self) -> int:
        return self._steps

    def load_cost_critic(self, state: dict[str, np.ndarray]) -> bool:
        import torch

        (network,) = self._algorithm._actor_critic.cost_critic.net_lst
        network.load_state_dict({name: torch.as_tensor(value) for name, value in state.items()})
        return True

    def learn(self, on_rollout: Callable[[Any], None] | None = None) -> None:
        from cmdp_envs.meta.oracles.omnisafe_learners import progress_rows

        adapter = self._algorithm._env
        if on_rollout is not None:
            rollout = adapter.rollout

            def announced_rollout(*args: Any, **kwargs: Any) -> Any:
                on_rollout(self.actor)
                return rollout(*args, **kwargs)

            adapter.rollout = announced_rollout
        try:
            with _quiet():
                self._agent.learn()
            rows = progress_rows(Path(self._log_dir.name))
        finally:
            adapter.__dict__.pop("rollout", None)
            self._log_dir.cleanup()
        # OmniSafe logs its last 50 episodes' average; the bridge recorded every episode, so each epoch's row is
        # the mean of the episodes that ended in it (epochs that ended none get no row, as with SB3).
        episodes = np.array(self._bridge.episodes).reshape(-1, 3)
        epoch_of = (episodes[:, 0] - 1) // self._steps_per_epoch
        self._steps = len(rows) * self._steps_per_epoch
        self.history = []
        for epoch, row in enumerate(rows):
            ended = episodes[epoch_of == epoch]
            if len(ended):
                self.history.append({"timesteps": float((epoch + 1) * self._steps_per_epoch),
                                     "episode_return": float(ended[:, 1].mean()),
                                     "episode_cost": float(ended[:, 2].mean()),
                                     "multiplier": _multiplier(row)})


def _checked_env_kwargs(env_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    env_kwargs = dict(env_kwargs or {})
    if "family" in env_kwargs or "task" in env_kwargs:
        raise ValueError("env_kwargs must not hold 'family' or 'task': the inner loop sets both")
    return env_kwargs


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """OmniSafe prints its config and a table per epoch to standard output; an inner loop runs it hundreds of
    times, so that goes nowhere (the run's own progress bar and logs stay)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _bridge(env: Any) -> Any:
    """The bridge under OmniSafe's env wrappers (which forward attribute reads, so the type is what tells)."""
    from cmdp_envs.wrappers.omnisafe_bridge import _bridge_class

    while not isinstance(env, _bridge_class()):
        env = env._env
    return env


def _multiplier(row: dict[str, str]) -> float:
    """The epoch's Lagrange multiplier from its ``progress.csv`` row (0 for algorithms without one, such as CPO)."""
    for key in ("Metrics/LagrangeMultiplier", "Metrics/LagrangeMultiplier/Mean"):
        if key in row:
            return float(row[key])
    return 0.0


class OmniSafeInnerLoop(InnerLoop):
    """The inner loop on an OmniSafe on-policy constrained algorithm (lane B: the ``omnisafe`` extra, Python 3.10).

    :param algo: ``"TRPOLag"`` (the paper's), ``"CPO"``, ``"PPOLag"``, or another of OmniSafe's on-policy
        constrained algorithms.
    :param steps_per_epoch: env steps per update (OmniSafe's epoch).
    :param env_kwargs: further arguments of ``family.make_env`` for every env (e.g. ``max_episode_steps``).
    :param cfgs_overrides: merged into OmniSafe's config by section (e.g. ``algo_cfgs={"update_iters": 5}``,
        ``train_cfgs={"vector_env_nums": 2}``), see :func:`~cmdp_envs.wrappers.omnisafe_bridge.omnisafe_custom_cfgs`.

    Each session's multiplier starts at the given value (``lagrangian_multiplier_init``) and moves with the given
    dual step (``lambda_lr``, with OmniSafe's own optimiser of it, Adam by default), where the algorithm has them:
    PID-Lagrangian algorithms take the start only, and CPO and its kin have no multiplier (their rows read 0).
    OmniSafe's console output is discarded; each update's return and cost are the means of the episodes that ended
    in it (the bridge records them), and its multiplier is read from OmniSafe's log. Sessions run in the meta-test
    protocol's recording envs too (``make_env``, through the bridge), announcing each epoch's rollout.
    """

    def __init__(self, family: TaskFamily, algo: str = "TRPOLag", steps_per_epoch: int = 2000,
                 env_kwargs: dict[str, Any] | None = None, **cfgs_overrides: Any):
        from cmdp_envs.wrappers.omnisafe_bridge import ON_POLICY_ALGORITHMS, import_omnisafe

        import_omnisafe()
        if algo not in ON_POLICY_ALGORITHMS:
            raise ValueError(f"unknown OmniSafe algorithm {algo!r} for an inner loop; it runs OmniSafe's on-policy "
                             f"constrained algorithms: {list(ON_POLICY_ALGORITHMS)}")
        self.env_kwargs: dict[str, Any] = _checked_env_kwargs(env_kwargs)
        env = family.make_env(**self.env_kwargs)
        continuous = env.action_space.__class__.__name__ == "Box"
        env.close()
        if not continuous:
            raise ValueError(f"OmniSafe's actors are Gaussian: {family.env_id} has discrete actions; use "
                             "SB3InnerLoop for it")
        self.family, self.algo = family, algo
        self.steps_per_epoch = check_count("steps_per_epoch", steps_per_epoch, minimum=1)
        self.cfgs_overrides = cfgs_overrides

    def session(self, tasks: Sequence[Task], seed: int, multiplier: float, multiplier_lr: float, updates: int,
                make_env: Callable[[], Any] | None = None) -> _OmniSafeSession:
        import omnisafe

        from cmdp_envs.wrappers.omnisafe_bridge import (
            default_cfgs,
            omnisafe_custom_cfgs,
            register_omnisafe_task,
            unregister_omnisafe_task,
        )

        tasks = list(tasks)
        limit = shared_cost_limit(tasks, "the learner")
        updates = check_count("updates", updates, minimum=1)
        if make_env is not None:
            if len(tasks) != 1:
                raise ValueError("make_env builds envs of one task: pass one task with it")
            omnisafe_id = register_omnisafe_task(self.family, task=tasks[0], make_env=make_env)
        elif len(tasks) == 1:
            omnisafe_id = register_omnisafe_task(self.family, task=tasks[0], **self.env_kwargs)
        else:
            omnisafe_id = register_omnisafe_task(self.family, tasks=tasks, **self.env_kwargs)
        log_dir = tempfile.TemporaryDirectory(prefix="cmdp-envs-cmaml-")
        overrides = {section: dict(values) if isinstance(values, dict) else values
                     for section, values in self.cfgs_overrides.items()}
        # The multiplier's start and step, where the algorithm has them (PID-Lagrangian ones have no step size; CPO
        # and its kin no multiplier).
        lagrange = default_cfgs(self.algo).get("lagrange_cfgs") or {}
        settings = {"lagrangian_multiplier_init": float(multiplier), "lambda_lr": float(multiplier_lr)}
        settings = {key: value for key, value in settings.items() if key in lagrange}
        if settings:
            overrides.setdefault("lagrange_cfgs", {}).update(settings)
        cfgs = omnisafe_custom_cfgs(self.algo, omnisafe_id, total_steps=updates * self.steps_per_epoch,
                                    steps_per_epoch=self.steps_per_epoch, seed=seed, cost_limit=limit,
                                    log_dir=log_dir.name, **overrides)
        try:
            with _quiet():
                agent = omnisafe.Agent(self.algo, omnisafe_id, custom_cfgs=cfgs)
        finally:
            if make_env is not None:  # its envs are built; the id would only keep them alive
                unregister_omnisafe_task(omnisafe_id)
        return _OmniSafeSession(agent, log_dir, self.steps_per_epoch)

    def updates_for(self, total_steps: int) -> int:
        return math.ceil(total_steps / self.steps_per_epoch)
