"""C-MAML (Daaboul et al., Algorithm 1): constrained first-order meta-learning with a meta safety critic.

The symbols of the paper, in this module's names:

* ``pi_theta``, the **meta policy**: the actor of the inner learner's own network (:class:`Actor`: SB3's
  ``ActorCriticPolicy`` less its value branch, or OmniSafe's actor), held as the flat vector ``theta`` of its
  parameters, so weights pass to and from the learner unchanged;
* ``V_C``, the **meta cost critic** (Eq. 12): the expected cost-to-go of ``pi_theta`` across tasks, a small MLP
  trained on the meta policy's own rollouts in every sampled task;
* ``lambda``, the **meta multiplier** of the adapted policies' cost (Eq. 10-11), and ``eta``, the multiplier of the
  meta policy's own cost (the second constraint of Eq. 9);
* ``d``, the cost limit, read with the family's cost semantics (discounted by default, the episode sum under
  ``cost_semantics="undiscounted"``, as the paper's ``d = 5`` is).

One outer iteration (:meth:`CMAML.iterate`):

1. draw ``B`` tasks from the training tasks (the support of ``P``), without replacement;
2. per task, in parallel through an executor (:class:`InnerLoop`): the policy starts from ``pi_theta`` and the
   task's multiplier from ``lambda``; the meta policy's rollouts give ``V_C``'s training data and the safety term;
   the constrained learner adapts the policy (its reward critic freshly initialised); post-adaptation rollouts give
   the task's return ``R_p``, cost ``C_p`` and the FoMAML gradient of ``R_p - lambda (C_p - d)`` at the adapted
   policy (Eq. 21: identity Jacobian);
3. the meta step (Eq. 14/30): ``theta`` ascends the task-averaged FoMAML gradient minus ``eta`` times the gradient
   of the meta policy's expected cost, with Adam; or, with ``outer_step="reptile"``, moves half-way (SPECS,
   "A C-MAML relative") to the mean adapted parameters, the safety term still applied;
4. the dual steps: ``lambda <- max(0, lambda + lr (mean_p C_p - d))`` (Eq. 22) and
   ``eta <- max(0, eta + lr (E_{s0 ~ pi_theta}[V_C(s0)] - d))`` (Eq. 31), and ``V_C`` is refitted.

Where this module reads the paper, and why:

* Eq. 14 weights ``log pi(a_t|s_t)`` by ``V_C``; a state-only weight has zero expected gradient (it is a baseline),
  so the safety term is read as what it stands for, the policy gradient of the meta policy's expected cost, with
  ``V_C`` as its baseline. The paper's Eq. 21 uses whole-trajectory returns; this module uses discounted
  returns-to-go (the same expectation, less variance).
* Algorithm 1 (line 7) also starts each task's cost critic from ``V_C``. OmniSafe's learners take it
  (:class:`~cmdp_envs.meta.inner_loops.OmniSafeInnerLoop`: their cost critic has ``V_C``'s architecture); SB3's
  Lagrangian learners have one critic (of ``r - lambda c``), so with them ``V_C`` enters the outer loop only.

``eta`` stays 0 with ``use_safety_critic=False``: the ``eta = 0`` ablation of the paper's Figure 3.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cmdp_envs.io import UnreadableFileError, atomic_write, check_json_fields, read_npz, write_csv
from cmdp_envs.meta.estimators import returns_to_go
from cmdp_envs.meta.executors import Executor, SerialExecutor, spawn_seeds
from cmdp_envs.task import Task, TaskFamily, check_count
from cmdp_envs.validation import check_number

__all__ = ["CMAMLConfig", "CMAML", "InnerLoop", "Session", "Actor", "TaskResult", "Episodes", "rollout_envs",
           "collect_episodes", "policy_gradient", "actor_theta", "load_actor", "shared_cost_limit",
           "discounted_weights", "fine_tune", "FineTuning", "pretrain", "maml_config", "penalised_maml_config",
           "OUTER_STEPS"]


#: The outer steps :class:`CMAMLConfig` offers.
OUTER_STEPS = ("fomaml", "reptile", "xu_zhu")


@dataclasses.dataclass(frozen=True)
class CMAMLConfig:
    """C-MAML's settings.

    :param meta_batch: ``B``, tasks per outer iteration.
    :param adaptation_steps: inner learner updates (rollouts of ``learner_kwargs["n_steps"]`` per env) per task.
    :param rollout_episodes: episodes of the meta policy and of the adapted policy per task.
    :param meta_lr: Adam's step on ``theta`` (FoMAML).
    :param reptile_step: the Reptile step ``epsilon`` in ``theta += epsilon (mean theta_p - theta)``.
    :param multiplier_lr: the dual step of ``lambda`` (also the inner learner's dual step).
    :param safety_lr: the dual step of ``eta``.
    :param use_safety_critic: ``False`` keeps ``eta = 0`` (the paper's ablation).
    :param initial_multiplier: ``lambda``'s start (with ``multiplier_lr = 0``, a fixed penalty:
        :func:`penalised_maml_config`).
    :param outer_step: ``"fomaml"`` (the paper), ``"reptile"``, or ``"xu_zhu"``: Xu & Zhu's meta-training read
        first-order (:func:`~cmdp_envs.meta.safe_adaptation.neural_meta_training.xu_zhu_config`): the FoMAML step
        while the meta policy's estimated cost is within ``d`` on every task of the batch, else a step down the
        cost gradient of the task it violates most.
    :param critic_lr, critic_epochs, critic_batch_size: Adam on ``V_C``'s squared error, in shuffled minibatches
        (more steps per pass over the data than full batches, for a fifth of the compute of the 50 full-batch epochs
        this module first used).
    """

    meta_batch: int = 4
    adaptation_steps: int = 2
    rollout_episodes: int = 8
    meta_lr: float = 3e-3
    reptile_step: float = 0.5
    multiplier_lr: float = 0.05
    safety_lr: float = 0.05
    use_safety_critic: bool = True
    initial_multiplier: float = 0.0
    outer_step: str = "fomaml"
    critic_lr: float = 1e-3
    critic_epochs: int = 10
    critic_batch_size: int = 512

    def __post_init__(self) -> None:
        check_count("meta_batch", self.meta_batch, minimum=1)
        check_count("adaptation_steps", self.adaptation_steps, minimum=1)
        check_count("rollout_episodes", self.rollout_episodes, minimum=1)
        check_count("critic_epochs", self.critic_epochs, minimum=1)
        check_count("critic_batch_size", self.critic_batch_size, minimum=1)
        for name in ("meta_lr", "multiplier_lr", "safety_lr", "critic_lr", "initial_multiplier"):
            check_number(name, getattr(self, name), 0.0)
        check_number("reptile_step", self.reptile_step, 0.0, 1.0)
        if self.outer_step not in OUTER_STEPS:
            raise ValueError(f"outer_step must be one of {OUTER_STEPS}, got {self.outer_step!r}")
        if not isinstance(self.use_safety_critic, (bool, np.bool_)):
            raise TypeError(f"use_safety_critic must be True or False, got {self.use_safety_critic!r}")


@dataclasses.dataclass
class Episodes:
    """Rollouts: per episode, arrays over its steps."""

    observations: list[np.ndarray]
    actions: list[np.ndarray]
    rewards: list[np.ndarray]
    costs: list[np.ndarray]

    def returns(self, discount: float, values: str) -> np.ndarray:
        """Each episode's discounted sum of ``values`` (``"rewards"`` or ``"costs"``)."""
        return np.array([np.sum(v * discount ** np.arange(len(v))) for v in getattr(self, values)])


def rollout_envs(family: TaskFamily, task: Task, n_episodes: int, **env_kwargs: Any) -> Any:
    """A vector env of ``n_episodes`` copies of ``task`` for :func:`collect_episodes`: the family's native vector env
    when it has one and ``env_kwargs`` ask for nothing else than a time limit (one numpy step for all), else
    Gymnasium's ``SyncVectorEnv`` over ``family.make_env(**env_kwargs)``."""
    if hasattr(family, "make_vector_env") and set(env_kwargs) <= {"max_episode_steps"}:
        return family.make_vector_env(n_episodes, **env_kwargs)
    import gymnasium as gym

    return gym.vector.SyncVectorEnv([lambda: family.make_env(**env_kwargs, task=task)] * n_episodes)


def collect_episodes(actor: Actor, envs: Any, task: Task, seed: int) -> Episodes:
    """One episode of ``actor`` (actions sampled) in each sub-env of the vector env ``envs``
    (:func:`rollout_envs`), in lockstep, so that one network call serves every episode at a step. ``envs`` resets
    with ``seed`` (sub-env ``e`` with ``seed + e`` under Gymnasium's seeding) on ``task``, and the actions draw from
    torch's generator seeded with ``seed``. Continuous actions are stored as sampled and clipped to the action space
    only for the env (as SB3's own rollouts do), so their log-likelihood is the one the policy gradient needs."""
    import torch

    torch.manual_seed(seed)
    space = envs.single_action_space
    observation, _ = envs.reset(seed=seed, options={"task": task})
    # Torch checks every distribution's arguments by default, which costs more than the network at this batch size.
    validate = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        columns = _lockstep(actor, envs, space, observation)
    finally:
        torch.distributions.Distribution.set_default_validate_args(validate)
    alive = np.array([column[0] for column in columns])  # (steps, episodes): each episode's steps
    stacked = [np.array([column[k] for column in columns]) for k in range(1, 5)]
    return Episodes(*([values[alive[:, e], e] for e in range(envs.num_envs)] for values in stacked))


def _lockstep(actor: Actor, envs: Any, space: Any, observation: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """The steps of :func:`collect_episodes`: per step, which episodes were running and their observations, actions,
    rewards and costs."""
    import gymnasium as gym
    import torch

    running = np.ones(envs.num_envs, dtype=bool)
    columns: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    while running.any():
        with torch.no_grad():
            action = actor.sample(observation)
        env_action = np.clip(action, space.low, space.high) if isinstance(space, gym.spaces.Box) else action
        next_observation, reward, terminated, truncated, info = envs.step(env_action)
        columns.append((running.copy(), observation, action, reward, np.asarray(info["cost"], dtype=np.float64)))
        running &= ~(terminated | truncated)
        observation = next_observation
    return columns


class Actor(Protocol):
    """The meta policy ``pi_theta`` as C-MAML uses it: a learner's own actor network, so ``theta`` passes to and from
    the learner without conversion (:mod:`.inner_loops` has SB3's and OmniSafe's)."""

    #: The torch module that holds the actor (checkpoints save its state dict).
    module: Any

    def parameters(self) -> list[Any]:
        """The parameters that make ``theta``, in ``theta``'s order."""

    def sample(self, observations: np.ndarray) -> np.ndarray:
        """Actions drawn for a batch of observations, as the learner's own rollouts draw them (unclipped)."""

    def log_prob(self, observations: Any, actions: Any) -> Any:
        """``log pi(a|s)`` per row of the tensors ``observations`` and ``actions``, differentiable in the
        parameters."""


def actor_theta(actor: Actor) -> np.ndarray:
    """``actor``'s parameters as one flat vector ``theta`` (a copy)."""
    import torch

    return torch.nn.utils.parameters_to_vector(actor.parameters()).detach().numpy().copy()


def _unflatten(parameters: list[Any], flat: np.ndarray) -> Iterator[tuple[Any, Any]]:
    """Each parameter with its slice of the flat vector ``flat``, as a tensor of the parameter's shape and dtype."""
    import torch

    expected = sum(parameter.numel() for parameter in parameters)
    if np.shape(flat) != (expected,):
        raise ValueError(f"theta must be a flat vector of the actor's {expected} parameters, got shape "
                         f"{np.shape(flat)}")
    offset = 0
    for parameter in parameters:
        size = parameter.numel()
        yield parameter, torch.as_tensor(flat[offset: offset + size], dtype=parameter.dtype).view_as(parameter)
        offset += size


def load_actor(actor: Actor, theta: np.ndarray) -> None:
    """Write the flat ``theta`` into ``actor``'s parameters, in place. (Torch's ``vector_to_parameters`` would make
    the parameters views of ``theta``'s memory, so training would then rewrite ``theta`` itself.)"""
    import torch

    with torch.no_grad():
        for parameter, value in _unflatten(actor.parameters(), theta):
            parameter.copy_(value)


def shared_cost_limit(tasks: Sequence[Task], user: str) -> float:
    """The one cost limit ``d`` of ``tasks``, or ``ValueError`` saying that ``user`` needs one (Eq. 11: one limit
    shared by the tasks, so that one meta cost critic, one ``eta`` and one pre-training limit make sense)."""
    limits = {task.cost_limit for task in tasks}
    if len(limits) != 1:
        raise ValueError(f"{user} needs one cost limit d across the training tasks, got {sorted(limits)}")
    return limits.pop()


def discounted_weights(values: list[np.ndarray], discount: float) -> list[np.ndarray]:
    """Per episode, ``discount^t G_t`` with ``G_t = sum_{k >= t} discount^(k - t) values_k``: the weights of
    ``log pi(a_t|s_t)`` in the policy gradient of ``E[sum_t discount^t values_t]``."""
    return [returns_to_go(episode[None], discount)[0] * discount ** np.arange(len(episode)) for episode in values]


def policy_gradient(actor: Actor, episodes: Episodes, weights: list[np.ndarray]) -> np.ndarray:
    """``(1 / E) sum_e sum_t weights[e][t] grad log pi(a_t|s_t)`` over ``actor``'s parameters (a flat vector in
    ``theta``'s order)."""
    import torch

    observations = torch.as_tensor(np.concatenate(episodes.observations), dtype=torch.float32)
    actions = torch.as_tensor(np.concatenate(episodes.actions))
    weight = torch.as_tensor(np.concatenate(weights), dtype=torch.float32)
    objective = (actor.log_prob(observations, actions) * weight).sum() / len(episodes.observations)
    parameters = actor.parameters()
    gradients = torch.autograd.grad(objective, parameters, allow_unused=True)
    return np.concatenate([
        (g if g is not None else torch.zeros_like(p)).detach().numpy().ravel() for g, p in zip(gradients, parameters)
    ])


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Torch on one thread inside the block: network initialisation (orthogonal, by QR) and training round
    differently with more threads, and the executors' workers run one thread each, so this keeps a serial run equal
    to a parallel one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _critic(observation_size: int) -> Any:
    import torch

    return torch.nn.Sequential(torch.nn.Linear(observation_size, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64),
                               torch.nn.Tanh(), torch.nn.Linear(64, 1))


def _critic_values(critic_state: dict[str, np.ndarray], observations: np.ndarray) -> np.ndarray:
    import torch

    critic = _critic(observations.shape[1])
    critic.load_state_dict({name: torch.as_tensor(value) for name, value in critic_state.items()})
    with torch.no_grad():
        return critic(torch.as_tensor(observations, dtype=torch.float32))[:, 0].numpy().astype(np.float64)


@dataclasses.dataclass
class TaskResult:
    """One task's inner loop: the FoMAML gradient at the adapted policy, the meta policy's cost gradient, the
    adapted parameters, the post-adaptation return and cost, ``V_C``'s training data from the meta policy, the
    env steps taken (the learner's and both rollouts'), and the wall seconds spent in the learner's training, in the
    two rollouts, and in all (``seconds``: ``"learner"``, ``"rollouts"``, ``"total"``)."""

    task: Task
    fomaml_gradient: np.ndarray
    cost_gradient: np.ndarray
    adapted_theta: np.ndarray
    adapted_return: float
    adapted_cost: float
    meta_return: float
    meta_cost: float
    critic_observations: np.ndarray
    critic_targets: np.ndarray
    initial_observations: np.ndarray
    env_steps: int
    seconds: dict[str, float]


class Session(Protocol):
    """One constrained learner made for a number of updates (rollouts-and-updates) on one task, or on tasks drawn
    per episode (pre-training): what an :class:`InnerLoop` builds."""

    #: The learner's actor, which :meth:`learn` trains in place.
    actor: Actor
    #: Per update that ended at least one episode: ``timesteps``, ``episode_return`` (undiscounted),
    #: ``episode_cost`` (the family's semantics), ``multiplier``.
    history: list[dict[str, float]]

    def load_cost_critic(self, state: dict[str, np.ndarray]) -> bool:
        """Start the learner's cost critic from ``V_C``'s weights (Algorithm 1, line 7); ``False`` when the learner
        has no cost critic."""

    def learn(self, on_rollout: Callable[[Actor], None] | None = None) -> None:
        """Run the updates the session was made for; ``on_rollout(actor)`` is called before each rollout, with the
        policy that rollout runs (the meta-test protocol records it)."""

    @property
    def steps(self) -> int:
        """Env steps the learner has taken."""


class InnerLoop:
    """C-MAML's inner loop on one task (Algorithm 1, lines 5-12), on the constrained learner that a subclass builds
    (:meth:`session`): :class:`~cmdp_envs.meta.inner_loops.SB3InnerLoop` (both lanes) or
    :class:`~cmdp_envs.meta.inner_loops.OmniSafeInnerLoop` (lane B). A picklable callable for the executors."""

    family: TaskFamily
    #: What the family's envs are made with for the learner's network (one-hot states on tabular families).
    env_kwargs: dict[str, Any]

    def session(self, tasks: Sequence[Task], seed: int, multiplier: float, multiplier_lr: float, updates: int,
                make_env: Callable[[], Any] | None = None) -> Session:
        """A fresh learner for ``updates`` updates on ``tasks`` (one task, or several drawn per episode) under the
        limit they share, its multiplier starting at ``multiplier``, with dual step ``multiplier_lr``.
        ``make_env`` builds the learner's envs instead of the family (one task only: the meta-test protocol's
        recording envs)."""
        raise NotImplementedError

    def updates_for(self, total_steps: int) -> int:
        """The fewest updates that take at least ``total_steps`` env steps."""
        raise NotImplementedError

    def __call__(self, item: tuple[Task, int, dict[str, Any], CMAMLConfig]) -> TaskResult:
        task, seed, meta, config = item
        with _one_thread():
            return self._adapt(task, seed, meta, config)

    def _adapt(self, task: Task, seed: int, meta: dict[str, Any], config: CMAMLConfig) -> TaskResult:
        started = time.perf_counter()
        session = self.session([task], seed, meta["multiplier"], config.multiplier_lr, config.adaptation_steps)
        actor = session.actor
        load_actor(actor, meta["theta"])
        session.load_cost_critic(meta["critic"])
        envs = rollout_envs(self.family, task, config.rollout_episodes, **self.env_kwargs)
        gamma, cost_discount = self.family.gamma, self.family.cost_discount
        # The meta policy's own rollouts: V_C's data and the safety term, with V_C as the baseline.
        rollout_started = time.perf_counter()
        before = collect_episodes(actor, envs, task, seed)
        rollout_seconds = time.perf_counter() - rollout_started
        cost_to_go = [returns_to_go(costs[None], cost_discount)[0] for costs in before.costs]
        observations = np.concatenate(before.observations).astype(np.float64)
        baseline = _critic_values(meta["critic"], observations)
        split = np.cumsum([len(costs) for costs in before.costs])[:-1]
        cost_weights = [(to_go - base) * cost_discount ** np.arange(len(to_go))
                        for to_go, base in zip(cost_to_go, np.split(baseline, split))]
        cost_gradient = policy_gradient(actor, before, cost_weights)
        # Adaptation by the constrained learner, then the adapted policy's rollouts.
        learner_started = time.perf_counter()
        session.learn()
        learner_seconds = time.perf_counter() - learner_started
        rollout_started = time.perf_counter()
        after = collect_episodes(actor, envs, task, seed + config.rollout_episodes)
        rollout_seconds += time.perf_counter() - rollout_started
        envs.close()
        multiplier = meta["multiplier"]
        reward_weights = discounted_weights(after.rewards, gamma)
        lagrangian_weights = [w_r - multiplier * w_c
                              for w_r, w_c in zip(reward_weights, discounted_weights(after.costs, cost_discount))]
        # A constant baseline (the mean weight) keeps the estimate unbiased and cuts its variance.
        mean_weight = np.concatenate(lagrangian_weights).mean()
        fomaml_gradient = policy_gradient(actor, after, [w - mean_weight for w in lagrangian_weights])
        return TaskResult(
            task=task,
            fomaml_gradient=fomaml_gradient,
            cost_gradient=cost_gradient,
            adapted_theta=actor_theta(actor),
            adapted_return=float(after.returns(gamma, "rewards").mean()),
            adapted_cost=float(after.returns(cost_discount, "costs").mean()),
            meta_return=float(before.returns(gamma, "rewards").mean()),
            meta_cost=float(before.returns(cost_discount, "costs").mean()),
            critic_observations=observations,
            critic_targets=np.concatenate(cost_to_go),
            initial_observations=np.array([episode[0] for episode in before.observations], dtype=np.float64),
            env_steps=int(session.steps + sum(map(len, before.rewards)) + sum(map(len, after.rewards))),
            seconds={"learner": learner_seconds, "rollouts": rollout_seconds,
                     "total": time.perf_counter() - started},
        )


class CMAML:
    """C-MAML on ``train_tasks`` of ``family`` with ``inner`` as the constrained learner (see the module docstring).

    ``theta`` is initialised randomly (the learner's own initialisation under ``seed``), ``V_C`` too, ``lambda``
    and ``eta`` at 0. :meth:`iterate` runs one outer iteration and returns its log row; :attr:`actor` is the meta
    policy holding ``theta`` (the inner learner's own actor).
    """

    def __init__(self, family: TaskFamily, train_tasks: Sequence[Task], inner: InnerLoop,
                 config: CMAMLConfig = CMAMLConfig(), seed: int = 0, executor: Executor | None = None):
        import torch

        train_tasks = list(train_tasks)
        if len(train_tasks) < config.meta_batch:
            raise ValueError(f"meta_batch = {config.meta_batch} needs at least as many training tasks, "
                             f"got {len(train_tasks)}")
        for task in train_tasks:
            family.check_task(task)
        self.cost_limit = shared_cost_limit(train_tasks, "C-MAML")
        self.family, self.train_tasks, self.inner, self.config = family, train_tasks, inner, config
        self.seed = check_count("seed", seed)
        self.executor = executor or SerialExecutor()
        self.iteration = 0
        self.multiplier = config.initial_multiplier
        self.eta = 0.0
        torch.manual_seed(self.seed)
        with _one_thread():
            self.actor = inner.session(train_tasks[:1], self.seed, 0.0, config.multiplier_lr, 1).actor
        self._optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.meta_lr)
        env = family.make_env(**inner.env_kwargs)
        self.critic = _critic(int(np.prod(env.observation_space.shape)))
        env.close()
        self._critic_optimizer = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self.history: list[dict[str, float]] = []
        #: Per outer iteration of this process (not checkpointed): its wall seconds and, summed over its tasks, the
        #: seconds of the learner's training, of the rollouts, and of the whole inner loops. In a serial run the
        #: wall time less the learner's and the rollouts' is the meta loop's own cost (``benchmarks/``).
        self.timings: list[dict[str, float]] = []

    @property
    def theta(self) -> np.ndarray:
        return actor_theta(self.actor)

    def _meta_state(self) -> dict[str, Any]:
        return {"theta": self.theta, "multiplier": self.multiplier,
                "critic": {name: value.detach().numpy().copy() for name, value in self.critic.state_dict().items()}}

    def iterate(self) -> dict[str, float]:
        """One outer iteration (steps 1-4 of the module docstring); returns and records its log row."""
        import torch

        started = time.perf_counter()
        config = self.config
        rng = np.random.default_rng([self.seed, self.iteration])
        picked = rng.choice(len(self.train_tasks), size=config.meta_batch, replace=False)
        seeds = spawn_seeds(int(rng.integers(2**31)), config.meta_batch)
        meta = self._meta_state()
        items = [(self.train_tasks[index], seed, meta, config) for index, seed in zip(picked, seeds)]
        results: list[TaskResult] = self.executor.map(self.inner, items)
        cost_gradient = np.mean([result.cost_gradient for result in results], axis=0)
        step = None
        if config.outer_step == "fomaml":
            ascent = np.mean([result.fomaml_gradient for result in results], axis=0) - self.eta * cost_gradient
        elif config.outer_step == "xu_zhu":
            worst = max(results, key=lambda result: result.meta_cost)
            ascent = (np.mean([result.fomaml_gradient for result in results], axis=0)
                      if worst.meta_cost <= self.cost_limit else -worst.cost_gradient)
        else:
            ascent = -self.eta * cost_gradient
            step = config.reptile_step * (np.mean([result.adapted_theta for result in results], axis=0)
                                          - meta["theta"])
            step = step.astype(meta["theta"].dtype)
        self._optimizer.zero_grad()
        # Adam minimises: the gradient is the negated ascent direction.
        for parameter, gradient in _unflatten(self.actor.parameters(), -ascent):
            parameter.grad = gradient
        self._optimizer.step()
        if step is not None:
            load_actor(self.actor, self.theta + step)
        with _one_thread():  # a small network: one thread is faster, and immune to a busy machine's other threads
            self._fit_critic(results)
        adapted_cost = float(np.mean([result.adapted_cost for result in results]))
        self.multiplier = max(0.0, self.multiplier + config.multiplier_lr * (adapted_cost - self.cost_limit))
        initial = np.concatenate([result.initial_observations for result in results])
        with torch.no_grad():
            critic_value = float(self.critic(torch.as_tensor(initial, dtype=torch.float32)).mean())
        if config.use_safety_critic:
            self.eta = max(0.0, self.eta + config.safety_lr * (critic_value - self.cost_limit))
        self.iteration += 1
        row = {
            "iteration": float(self.iteration),
            "meta_return": float(np.mean([result.meta_return for result in results])),
            "meta_cost": float(np.mean([result.meta_cost for result in results])),
            "adapted_return": float(np.mean([result.adapted_return for result in results])),
            "adapted_cost": adapted_cost,
            "adapted_cost_max": float(max(result.adapted_cost for result in results)),
            "meta_cost_max": float(max(result.meta_cost for result in results)),
            "cost_critic": critic_value,
            "multiplier": self.multiplier,
            "eta": self.eta,
            "cost_limit": self.cost_limit,
            "env_steps": float(sum(result.env_steps for result in results)),
        }
        self.history.append(row)
        self.timings.append({"iteration": float(self.iteration), "wall": time.perf_counter() - started,
                             **{key: sum(result.seconds[key] for result in results)
                                for key in ("learner", "rollouts", "total")}})
        return row

    def _fit_critic(self, results: Sequence[TaskResult]) -> None:
        """``V_C`` regressed on the meta policy's cost-to-go, pooled over the iteration's tasks (Eq. 12)."""
        import torch

        observations = torch.as_tensor(np.concatenate([r.critic_observations for r in results]), dtype=torch.float32)
        targets = torch.as_tensor(np.concatenate([r.critic_targets for r in results]), dtype=torch.float32)
        # The shuffles come from the seed and the iteration, so a resumed run draws the same minibatches.
        generator = torch.Generator().manual_seed(int(np.random.default_rng([self.seed, self.iteration, 1])
                                                      .integers(2**31)))
        batch_size = self.config.critic_batch_size
        for _ in range(self.config.critic_epochs):
            order = torch.randperm(len(targets), generator=generator)
            for start in range(0, len(targets), batch_size):
                batch = order[start: start + batch_size]
                self._critic_optimizer.zero_grad()
                loss = torch.mean((self.critic(observations[batch])[:, 0] - targets[batch]) ** 2)
                loss.backward()
                self._critic_optimizer.step()

    def run(self, outer_iterations: int, checkpoint: str | os.PathLike | None = None,
            log: str | os.PathLike | None = None, tensorboard: str | os.PathLike | None = None,
            progress: bool = True) -> list[dict[str, float]]:
        """Outer iterations up to ``N = outer_iterations`` in all, with a tqdm bar; returns :attr:`history`.

        With ``checkpoint`` (an ``.npz`` path) the state is saved there after every iteration and, when the file
        exists, loaded first: an interrupted run resumes where it stopped and ends exactly as an uninterrupted one.
        With ``log`` (a ``.csv`` path) the history so far is written there after every iteration, and with
        ``tensorboard`` (a directory; needs the ``tensorboard`` package) each row goes to TensorBoard as scalars
        ``cmaml/<column>`` at its iteration.
        """
        from tqdm.auto import tqdm

        outer_iterations = check_count("outer_iterations", outer_iterations)
        if checkpoint is not None and Path(checkpoint).exists():
            self.load(checkpoint)
        writer = None
        if tensorboard is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise ImportError("TensorBoard logs need the tensorboard package: pip install tensorboard") from error
            writer = SummaryWriter(str(tensorboard))
        bar = tqdm(total=outer_iterations, initial=min(self.iteration, outer_iterations), desc="C-MAML",
                   disable=not progress)
        try:
            while self.iteration < outer_iterations:
                row = self.iterate()
                if checkpoint is not None:
                    self.save(checkpoint)
                if log is not None:
                    write_csv(log, self.history)
                if writer is not None:
                    for key, value in row.items():
                        writer.add_scalar(f"cmaml/{key}", value, self.iteration)
                    writer.flush()
                bar.update()
                bar.set_postfix(adapted_cost=f"{row['adapted_cost']:.3g}", eta=f"{row['eta']:.3g}")
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        return self.history

    def _identity(self) -> dict[str, Any]:
        """What a checkpoint must have been written for: the seed, the settings, the training tasks."""
        return {"seed": self.seed, "config": dataclasses.asdict(self.config),
                "train_tasks": [repr(task) for task in self.train_tasks]}

    def save(self, path: str | os.PathLike) -> Path:
        """The whole state (``theta``, ``V_C``, both Adam states, ``lambda``, ``eta``, the history) as one ``.npz``
        with a JSON header, written atomically; no pickles."""
        arrays: dict[str, np.ndarray] = {}
        for prefix, module, optimizer in (("policy", self.actor.module, self._optimizer),
                                          ("critic", self.critic, self._critic_optimizer)):
            for name, value in module.state_dict().items():
                arrays[f"{prefix}/{name}"] = value.detach().numpy()
            for index, state in optimizer.state_dict()["state"].items():
                for key, value in state.items():
                    arrays[f"{prefix}_adam/{index}/{key}"] = np.asarray(value)
        header = {**self._identity(), "iteration": self.iteration, "multiplier": self.multiplier, "eta": self.eta,
                  "history": self.history}
        return atomic_write(path, lambda file: np.savez(file, header=np.array(json.dumps(header)), **arrays))

    def load(self, path: str | os.PathLike) -> None:
        """Restore the state :meth:`save` wrote. Raises :class:`~cmdp_envs.io.UnreadableFileError` naming the file
        when it is not such a checkpoint, and ``ValueError`` when it was written for another seed, other settings
        or other training tasks."""
        import torch

        arrays = read_npz(path, text_keys=("header",))
        if "header" not in arrays:
            raise UnreadableFileError(path, "no 'header' entry: not a C-MAML checkpoint")
        try:
            header = json.loads(str(arrays.pop("header")))
        except json.JSONDecodeError as error:
            raise UnreadableFileError(path, f"the header is not valid JSON: {error}") from error
        check_json_fields(path, "header", header, {"seed": int, "config": dict, "train_tasks": list,
                                                     "iteration": int, "multiplier": float, "eta": float,
                                                     "history": list})
        expected = self._identity()
        differing = [key for key in expected if header[key] != json.loads(json.dumps(expected[key]))]
        if differing:
            raise ValueError(f"{path} was written by a C-MAML run with another {', '.join(differing)}; pass a "
                             "new checkpoint path or the settings it was written with")
        try:
            for prefix, module, optimizer in (("policy", self.actor.module, self._optimizer),
                                              ("critic", self.critic, self._critic_optimizer)):
                module.load_state_dict({name[len(prefix) + 1:]: torch.as_tensor(value)
                                        for name, value in arrays.items() if name.startswith(prefix + "/")})
                state: dict[int, dict[str, Any]] = {}
                for name, value in arrays.items():
                    if name.startswith(prefix + "_adam/"):
                        _, index, key = name.split("/")
                        state.setdefault(int(index), {})[key] = torch.as_tensor(value)
                optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})
        except (RuntimeError, KeyError, ValueError) as error:
            raise UnreadableFileError(path, f"the networks or optimiser states do not fit this run ({error})") from error
        self.iteration, self.multiplier, self.eta = header["iteration"], header["multiplier"], header["eta"]
        self.history = header["history"]


@dataclasses.dataclass(frozen=True)
class FineTuning:
    """The constrained learner's curve on one held-out task from a given start: per update (rollout), the mean
    undiscounted return and the mean constrained cost (the family's semantics) of the episodes that ended in it,
    and the multiplier after it; ``steps`` counts env steps. What the paper's Figures 3-5 plot."""

    task: Task
    steps: np.ndarray
    returns: np.ndarray
    costs: np.ndarray
    multipliers: np.ndarray
    cost_limit: float

    @property
    def always_within_limit(self) -> bool:
        """Whether every update's episodes met the limit on average."""
        return bool(np.all(self.costs <= self.cost_limit))


def fine_tune(inner: InnerLoop, theta: np.ndarray | None, task: Task, updates: int, seed: int,
              multiplier: float = 0.0, multiplier_lr: float = 0.05) -> FineTuning:
    """``updates`` rollouts-and-updates of ``inner``'s learner on ``task``, starting from the actor ``theta`` (``None``:
    the learner's own random initialisation under ``seed``, the paper's "random initialisation" baseline) and from
    ``multiplier``. Every update must end at least one episode in its rollout: each env's share of the rollout
    (SB3's ``n_steps``; OmniSafe's ``steps_per_epoch`` over its envs, which it resets every epoch) at least an
    episode long."""
    updates = check_count("updates", updates, minimum=1)
    with _one_thread():
        session = inner.session([task], seed, multiplier, multiplier_lr, updates)
        if theta is not None:
            load_actor(session.actor, theta)
        session.learn()
    rows = session.history
    if len(rows) < updates:
        raise ValueError(f"only {len(rows)} of {updates} updates ended an episode: make each update's rollout at "
                         "least one episode long")
    return FineTuning(
        task=task,
        steps=np.array([row["timesteps"] for row in rows]),
        returns=np.array([row["episode_return"] for row in rows]),
        costs=np.array([row["episode_cost"] for row in rows]),
        multipliers=np.array([row["multiplier"] for row in rows]),
        cost_limit=task.cost_limit,
    )


def pretrain(inner: InnerLoop, train_tasks: Sequence[Task], total_steps: int, seed: int,
             multiplier_lr: float = 0.05) -> np.ndarray:
    """The paper's "pre-trained" baseline: ``inner``'s constrained learner trained for ``total_steps`` env steps on
    the task distribution itself (a training task drawn afresh at every episode,
    :class:`~cmdp_envs.wrappers.TaskSampling`); returns its actor ``theta``. The tasks must share one cost limit."""
    train_tasks = list(train_tasks)
    shared_cost_limit(train_tasks, "pretraining")
    with _one_thread():
        session = inner.session(train_tasks, seed, 0.0, multiplier_lr, inner.updates_for(
            check_count("total_steps", total_steps, minimum=1)))
        session.learn()
        return actor_theta(session.actor)


def penalised_maml_config(config: CMAMLConfig, penalty: float) -> CMAMLConfig:
    """MAML with a constraint penalty (Ni & Kamgarpour's baseline): ``lambda`` fixed at ``penalty`` (the inner
    learner maximises ``r - penalty c`` and the outer step follows ``R_p - penalty (C_p - d)``), no ``eta``."""
    return dataclasses.replace(config, multiplier_lr=0.0, use_safety_critic=False,
                               initial_multiplier=check_number("penalty", penalty, 0.0))


def maml_config(config: CMAMLConfig) -> CMAMLConfig:
    """The paper's MAML baseline as settings of this loop: no constraint anywhere (``lambda`` held at 0, so the
    inner learner maximises the reward alone and the outer step follows ``R_p``; no ``eta``). With a TRPO
    :class:`InnerLoop` it is first-order MAML with an unconstrained TRPO inner loop."""
    return dataclasses.replace(config, multiplier_lr=0.0, use_safety_critic=False)
