"""Xu & Zhu's safe adaptation step for a neural policy on any Gymnasium env that reports ``info["cost"]``: sampled
advantages against a fitted value baseline, the closed form's Lagrangian minimised by gradient steps (its exact
minimiser is the closed form), dual descent on the multiplier. Needs torch (the ``sb3`` extra)."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from cmdp_envs.meta.estimators import returns_to_go
from cmdp_envs.meta.policies import MLPPolicy, _torch_layers, sample_action
from cmdp_envs.meta.safe_adaptation.closed_form import SafeAdaptationConfig
from cmdp_envs.task import check_count

__all__ = ["NeuralAdaptationConfig", "NeuralAdaptationStep", "make_policy_network", "network_to_mlp_policy",
           "neural_adaptation_step"]


@dataclasses.dataclass(frozen=True)
class NeuralAdaptationConfig(SafeAdaptationConfig):
    """:class:`SafeAdaptationConfig` plus the policy-update settings of the neural step.

    :param inner_steps: gradient steps on the policy per dual iteration (warm-started from the previous iteration).
    :param learning_rate: Adam step size of those gradient steps.
    :param baseline_steps: Adam steps fitting the state-value baseline of the advantages.
    """

    advantages: Literal["exact", "sampled"] = "sampled"
    inner_steps: int = 10
    learning_rate: float = 0.01
    baseline_steps: int = 300

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.advantages != "sampled":
            raise ValueError("the neural step estimates advantages from samples: advantages must be 'sampled'")
        check_count("inner_steps", self.inner_steps, minimum=1)
        check_count("baseline_steps", self.baseline_steps)


def make_policy_network(observation_size: int, action_space: object, hidden: tuple[int, ...] = (64, 64),
                        seed: int = 0) -> object:
    """A torch MLP policy: categorical logits for a ``Discrete`` action space, a Gaussian mean with a
    state-independent log standard deviation for a ``Box`` one. ``policy.distribution(observations)`` gives the
    torch distribution over a batch of flat observations."""
    import gymnasium as gym
    import torch

    discrete = isinstance(action_space, gym.spaces.Discrete)
    out = int(action_space.n) if discrete else int(np.prod(action_space.shape))
    sizes = (observation_size, *hidden)

    class PolicyNetwork(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[torch.nn.Module] = []
            for a, b in zip(sizes[:-1], sizes[1:]):
                layers += [torch.nn.Linear(a, b), torch.nn.Tanh()]
            self.body = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], out))
            self.discrete = discrete
            self.log_std = None if discrete else torch.nn.Parameter(torch.full((out,), -0.5))

        def distribution(self, observations: torch.Tensor) -> torch.distributions.Distribution:
            output = self.body(observations)
            if self.discrete:
                return torch.distributions.Categorical(logits=output)
            return torch.distributions.Independent(torch.distributions.Normal(output, self.log_std.exp()), 1)

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return PolicyNetwork().double()


def network_to_mlp_policy(network: object, observation_size: int, discrete_observation: bool,
                          seed: int = 0) -> object:
    """The network as a pickle-free :class:`~cmdp_envs.meta.policies.MLPPolicy` (save, load, act without torch)."""
    weights, biases, activations = _torch_layers([network.body])
    log_std = None if network.discrete else network.log_std.detach().numpy()
    return MLPPolicy(weights, biases, activations, "categorical" if network.discrete else "gaussian",
                     observation_size, discrete_observation, log_std=log_std, seed=seed)


@dataclasses.dataclass(frozen=True)
class NeuralAdaptationStep:
    """The adapted network, the multiplier ``u`` and the sample estimates of the step."""

    network: object
    multiplier: float
    cost_value_estimate: float
    linearised_cost_estimate: float
    kl_estimate: float


def _fit_value_baseline(observations: object, targets: object, mask: object, config: NeuralAdaptationConfig,
                        seed: int) -> object:
    """Reward and cost state values regressed on the sampled returns-to-go (an MLP, full-batch Adam): the baseline
    that turns returns into advantages. Returns the fitted values at the sampled observations."""
    import torch

    hidden = 64
    with torch.random.fork_rng():  # a seeded initialisation that leaves the caller's torch generator alone
        torch.manual_seed(seed)
        value = torch.nn.Sequential(torch.nn.Linear(observations.shape[1], hidden), torch.nn.Tanh(),
                                    torch.nn.Linear(hidden, 2)).double()
    scale = targets.abs().max().clamp(min=1.0)  # regress on a unit scale; costs and rewards can be ~100
    optimizer = torch.optim.Adam(value.parameters(), lr=0.01)
    for _ in range(config.baseline_steps):
        loss = (mask[:, None] * (value(observations) - targets / scale) ** 2).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return value(observations) * scale


def neural_adaptation_step(network: object, env: object, config: NeuralAdaptationConfig, seed: int = 0,
                           gamma: float | None = None, cost_limit: float | None = None,
                           cost_gamma: float | None = None) -> NeuralAdaptationStep:
    """One safe adaptation step for a neural policy, from ``config.n_episodes`` rollouts of ``config.horizon`` steps
    in ``env`` (a Gymnasium env reporting ``info["cost"]``; for a ``cmdp_envs`` env its current task is the one
    adapted to, and ``gamma``, ``cost_limit`` and ``cost_gamma`` default to its family's discount, its task's limit
    and its family's cost discount: ``gamma``, or 1 for a limit on the plain episode cost).

    The cost side is discounted by ``cost_gamma``: the cost value, its returns-to-go, and the linearised constraint
    ``J_c + sum_t cost_gamma^t E[ratio A_c(s_t, a_t)]`` (with ``cost_gamma = gamma`` this is the paper's
    ``J_c + E_{d}[ratio A_c] / (1 - gamma)``).

    Advantages are discounted returns-to-go (to the end of the sampled horizon or episode) minus a fitted
    state-value baseline; the visitation weights are ``(1 - gamma) gamma^t``; padding after an episode's end is masked
    out. The env's task is pinned for the rollouts (``reset(options={"task": ...})``). For the current ``u`` the policy takes ``inner_steps`` Adam steps on
    ``-E[ratio (A_r - u A_c)] / eta + KL(pi || pi_phi)`` (``ratio = pi / pi_phi``), whose exact minimiser is the
    closed form; then ``u <- max(0, u + dual_step * g)`` with ``g`` the importance-sampled linearised constraint
    minus ``d + delta_c``. The returned network is a new object; ``network`` is left unchanged.
    """
    import copy

    import gymnasium as gym
    import torch
    from gymnasium.spaces.utils import flatten

    base = env.unwrapped
    gamma = base.family.gamma if gamma is None else float(gamma)
    cost_limit = base.task.cost_limit if cost_limit is None else float(cost_limit)
    if cost_gamma is None:
        cost_gamma = base.family.cost_discount if hasattr(base, "family") else gamma
    cost_gamma = float(cost_gamma)
    rng = np.random.default_rng(seed)  # action draws: reproducible without touching torch's global generator
    # Pin the task in force, so that a TaskSampling wrapper cannot swap it between episodes.
    reset_options = {"task": base.task} if hasattr(base, "set_task") else None
    observations, actions, rewards, costs, valid = [], [], [], [], []
    for episode in range(config.n_episodes):
        observation, _ = env.reset(seed=seed + episode, options=reset_options)
        for _ in range(config.horizon):
            flat = np.asarray(flatten(env.observation_space, observation), dtype=np.float64)
            with torch.no_grad():
                distribution = network.distribution(torch.as_tensor(flat)[None])
            if network.discrete:
                action = np.int64(sample_action(distribution.probs[0].numpy(), rng))
            else:
                normal = distribution.base_dist
                action = (normal.loc[0] + normal.scale[0] * torch.as_tensor(rng.standard_normal(normal.loc.shape[1]))
                          ).numpy()
            observation, reward, terminated, truncated, info = env.step(
                int(action) if isinstance(env.action_space, gym.spaces.Discrete) else action)
            observations.append(flat)
            actions.append(action)
            rewards.append(float(reward))
            costs.append(float(info["cost"]))
            valid.append(1.0)
            if terminated or truncated:
                break
        # Pad short episodes to the horizon so arrays are rectangular; the padding is masked out of every estimate.
        missing = config.horizon - (len(rewards) - episode * config.horizon)
        observations += [observations[-1]] * missing
        actions += [actions[-1]] * missing
        rewards += [0.0] * missing
        costs += [0.0] * missing
        valid += [0.0] * missing
    shape = (config.n_episodes, config.horizon)
    obs = torch.as_tensor(np.array(observations))
    acts = torch.as_tensor(np.array(actions))
    reward_to_go = returns_to_go(np.array(rewards).reshape(shape), gamma)
    cost_to_go = returns_to_go(np.array(costs).reshape(shape), cost_gamma)
    mask = torch.as_tensor(np.array(valid))
    targets = torch.as_tensor(np.stack([reward_to_go.ravel(), cost_to_go.ravel()], axis=1))
    baseline = _fit_value_baseline(obs, targets, mask, config, seed)
    reward_advantage, cost_advantage = (targets - baseline).T
    weights = mask * torch.as_tensor(np.tile((1 - gamma) * gamma ** np.arange(config.horizon), config.n_episodes)
                                     / config.n_episodes)
    # The linearised cost sums the cost advantages over time, discounted as the cost is.
    cost_weights = mask * torch.as_tensor(np.tile(cost_gamma ** np.arange(config.horizon), config.n_episodes)
                                          / config.n_episodes)
    cost_value = float(cost_to_go[:, 0].mean())
    with torch.no_grad():
        old = network.distribution(obs)
        old_log_prob = old.log_prob(acts)

    new_network = copy.deepcopy(network)
    optimizer = torch.optim.Adam(new_network.parameters(), lr=config.learning_rate)

    def surrogate() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        distribution = new_network.distribution(obs)
        ratio = torch.exp(distribution.log_prob(acts) - old_log_prob)
        kl = torch.distributions.kl_divergence(distribution, old)
        return ratio, kl, (weights * kl).sum()

    u = 0.0
    for iteration in range(max(config.dual_iterations, 1)):
        eta = config.temperature(u, gamma)
        for _ in range(config.inner_steps):
            ratio, _, kl = surrogate()
            loss = -(weights * ratio * (reward_advantage - u * cost_advantage)).sum() / eta + kl
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            ratio, _, kl = surrogate()
            linearised = cost_value + float((cost_weights * ratio * cost_advantage).sum()) \
                + config.cost_kl * float(kl)
        if iteration < config.dual_iterations - 1:  # the returned u is the one the returned network was fitted under
            u = max(0.0, u + config.dual_step * (linearised - cost_limit - config.cost_slack))
    return NeuralAdaptationStep(new_network, u, cost_value, linearised, float(kl))
