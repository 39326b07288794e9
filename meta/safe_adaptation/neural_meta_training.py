"""Xu & Zhu's safe meta-RL on neural policies and any env: the safe adaptation step as an inner loop, and the
meta-training of the meta-policy as an outer loop over it.

* :class:`SafeAdaptationInnerLoop`: ``updates`` safe adaptation steps
  (:func:`~cmdp_envs.meta.safe_adaptation.neural_step.neural_adaptation_step`) on the actor of a learner's network
  (SB3's or OmniSafe's, from ``base``), each from ``config.n_episodes`` whole episodes of the policy of the moment.
  It is an :class:`~cmdp_envs.meta.cmaml.InnerLoop`, so C-MAML's outer loop, the meta-test protocol's
  :class:`~cmdp_envs.meta.test_time.LearnerFineTuning` and :class:`~cmdp_envs.meta.test_time.NeuralSafeAdaptation`
  run it like any learner.
* :func:`xu_zhu_config`: the meta-training problem

      max_phi  E_tau[J_tau(A(pi_phi, tau))]   s.t.  J_c,tau(pi_phi) <= d  for every training task tau,

  read first-order as C-MAML's loop reads MAML: per outer iteration, a batch of training tasks; on each, rollouts
  of ``pi_phi`` (its cost estimate and cost gradient), one adaptation step ``A``, rollouts of the adapted policy (the
  gradient of its reward, with the identity Jacobian). The meta step ascends the mean adapted-reward gradient while
  ``pi_phi``'s estimated cost is within ``d`` on every task of the batch, and otherwise descends the cost gradient of
  the task it violates most, the switching rule of the exact tabular :func:`~cmdp_envs.meta.safe_adaptation.meta_train`
  (``delta_c = 0``: the constraint is the limit itself). The paper's own meta-gradient differentiates through the
  adaptation step (second order); this one does not, and says so in every result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from cmdp_envs.meta.cmaml import CMAMLConfig, InnerLoop, actor_theta, load_actor
from cmdp_envs.meta.safe_adaptation.neural_step import NeuralAdaptationConfig
from cmdp_envs.task import Task, check_count

__all__ = ["SafeAdaptationInnerLoop", "xu_zhu_config"]


def xu_zhu_config(config: CMAMLConfig) -> CMAMLConfig:
    """Xu & Zhu's meta-training as settings of C-MAML's loop (see the module docstring): the ``"xu_zhu"`` outer step,
    no multiplier on the adapted policies' cost and no ``eta``. Run it with a :class:`SafeAdaptationInnerLoop`."""
    return dataclasses.replace(config, outer_step="xu_zhu", multiplier_lr=0.0, initial_multiplier=0.0,
                               use_safety_critic=False)


class SafeAdaptationInnerLoop(InnerLoop):
    """Xu & Zhu's safe adaptation step as an inner loop: a session adapts the actor of ``base``'s network by ``updates``
    steps, each from ``config.n_episodes`` whole episodes (``config.horizon`` becomes the env's episode length) of
    the policy of the moment, its multiplier solved afresh by the step's dual method. The limit is the task's
    (``multiplier`` and ``multiplier_lr`` of :meth:`session` are not used: the step has its own dual).

    :param base: the learner whose actor network is adapted (:class:`~cmdp_envs.meta.inner_loops.SB3InnerLoop` or
        :class:`~cmdp_envs.meta.inner_loops.OmniSafeInnerLoop`), so ``theta`` is the same vector for both.
    :param config: the step's settings.
    """

    def __init__(self, base: InnerLoop, config: NeuralAdaptationConfig):
        if not isinstance(config, NeuralAdaptationConfig):
            raise TypeError(f"config must be a NeuralAdaptationConfig, got {config!r}")
        self.base, self.config = base, config
        self.family, self.env_kwargs = base.family, base.env_kwargs

    def session(self, tasks: Sequence[Task], seed: int, multiplier: float, multiplier_lr: float, updates: int,
                make_env: Callable[[], Any] | None = None) -> _SafeAdaptationSession:
        tasks = list(tasks)
        if len(tasks) != 1:
            raise ValueError(f"the safe adaptation step adapts to one task, got {len(tasks)}")
        (task,) = tasks
        actor = self.base.session(tasks, seed, 0.0, 0.0, 1).actor  # the learner is built for its actor only
        if make_env is None:
            def make_env() -> Any:
                return self.family.make_env(**self.env_kwargs, task=task)
        return _SafeAdaptationSession(actor, task, make_env, self.config, check_count("seed", seed),
                                      check_count("updates", updates, minimum=1))

    def updates_for(self, total_steps: int) -> int:
        env = self.family.make_env(**self.env_kwargs)
        episode_steps = env.spec.max_episode_steps
        env.close()
        return -(-check_count("total_steps", total_steps, minimum=1) // (self.config.n_episodes * episode_steps))


class _SafeAdaptationSession:
    """``updates`` safe adaptation steps on ``actor``, in place; ``history`` has, per step, the env steps so far, the
    cost estimate of the policy the step started from, and the step's multiplier."""

    def __init__(self, actor: Any, task: Task, make_env: Callable[[], Any], config: NeuralAdaptationConfig,
                 seed: int, updates: int):
        self.actor, self._task, self._make_env = actor, task, make_env
        self._config, self._seed, self._updates = config, seed, updates
        self.history: list[dict[str, float]] = []
        self._steps = 0

    @property
    def steps(self) -> int:
        return self._steps

    def load_cost_critic(self, state: dict[str, np.ndarray]) -> bool:
        return False  # the step fits its own value baseline from its episodes

    def learn(self, on_rollout: Callable[[Any], None] | None = None) -> None:
        import gymnasium as gym

        from cmdp_envs.meta.safe_adaptation.neural_step import neural_adaptation_step

        env = _StepCounter(self._make_env())
        network = ActorNetwork(self.actor, isinstance(env.action_space, gym.spaces.Discrete))
        # Whole episodes, as every method runs under the meta-test protocol.
        config = dataclasses.replace(self._config, horizon=env.spec.max_episode_steps)
        for step in range(self._updates):
            if on_rollout is not None:
                on_rollout(network.actor)
            result = neural_adaptation_step(network, env, config, seed=self._seed + 1000 * step,
                                            cost_limit=self._task.cost_limit)
            network = result.network
            self.history.append({"timesteps": float(env.steps), "episode_cost": result.cost_value_estimate,
                                 "multiplier": result.multiplier})
        env.close()
        self._steps = env.steps
        load_actor(self.actor, actor_theta(network.actor))


class _StepCounter:
    """An env that counts the steps taken through it (everything else is the env's)."""

    def __init__(self, env: Any):
        self._env, self.steps = env, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def step(self, action: Any) -> Any:
        self.steps += 1
        return self._env.step(action)


class ActorNetwork:
    """An actor with ``distribution`` and ``copy`` (:class:`~cmdp_envs.meta.inner_loops.SB3Actor`,
    :class:`~cmdp_envs.meta.inner_loops.OmniSafeActor`) as the torch policy network that
    :func:`~cmdp_envs.meta.safe_adaptation.neural_step.neural_adaptation_step` adapts: ``distribution``,
    ``discrete``, ``parameters``, and a deep copy."""

    def __init__(self, actor: Any, discrete: bool):
        self.actor, self.discrete = actor, discrete

    def distribution(self, observations: Any) -> Any:
        return self.actor.distribution(observations)

    def parameters(self) -> list[Any]:
        return self.actor.parameters()

    def __deepcopy__(self, memo: dict[int, Any]) -> ActorNetwork:
        return ActorNetwork(self.actor.copy(), self.discrete)
