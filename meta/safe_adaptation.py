"""Safe closed-form policy adaptation (Xu & Zhu, *Efficient Safe Meta-RL: Provable Near-Optimality and Anytime
Safety*, NeurIPS 2025), tabular form.

One adaptation step from a policy ``pi_phi`` on a task solves

    max_pi  E_{s~nu, a~pi}[A_r(s, a)] - lambda E_{s~nu}[KL(pi(.|s) || pi_phi(.|s))]
    s.t.    J_c(pi_phi) + E_{s~nu, a~pi}[A_c(s, a)] / (1 - gamma) + lambda_c E_{s~nu}[KL(pi || pi_phi)] <= d + delta_c

with ``A_r``, ``A_c`` the advantages of ``pi_phi`` and ``nu`` its normalised discounted state visitation. For a
multiplier ``u >= 0`` the maximiser of the Lagrangian is the closed form

    pi_u(a|s) ∝ pi_phi(a|s) exp((A_r(s, a) - u A_c(s, a)) / eta),   eta = lambda + (1 - gamma) u lambda_c,

and ``u`` comes from the dual method: projected dual descent ``u <- max(0, u + dual_step * g(u))`` where ``g(u)`` is
the constraint's left side at ``pi_u`` minus ``d + delta_c`` (the negative gradient of the dual function).
Advantages are exact (linear solves, for analysis) or Monte Carlo from sampled trajectories of ``pi_phi`` (the
setting of the gridworld baseline: ``lambda = lambda_c = 0.2``, dual step 1.0, 30 dual iterations).

Iterating the step gives the adaptation sequence ``pi_1, pi_2, ...``; the method is *anytime safe* on a task when
every policy of the sequence is feasible there. :func:`adapt` evaluates every policy exactly.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from typing import Literal

import numpy as np

from cmdp_envs.meta.evaluation import TestRun, run_iterates
from cmdp_envs.meta.policies import sample_action, softmax
from cmdp_envs.tabular import (
    EpisodeSampler,
    TabularCMDP,
    Trajectories,
    check_policy,
    evaluate_policy,
    value_functions,
)
from cmdp_envs.task import check_count

__all__ = [
    "SafeAdaptationConfig",
    "AdvantageEstimate",
    "exact_advantages",
    "sampled_advantages",
    "trajectory_advantages",
    "closed_form_policy",
    "linearised_cost",
    "dual_multiplier",
    "adaptation_step",
    "AdaptationStep",
    "AdaptationRun",
    "adapt",
    "anytime_safety_evaluation",
    "run_on_tabular",
    "plot_anytime_safety",
    "MetaTrainingResult",
    "meta_objective",
    "meta_train",
    "NeuralAdaptationConfig",
    "NeuralAdaptationStep",
    "make_policy_network",
    "network_to_mlp_policy",
    "neural_adaptation_step",
]


@dataclasses.dataclass(frozen=True)
class SafeAdaptationConfig:
    """Hyper-parameters of one adaptation step (defaults: the gridworld baseline of Ni & Kamgarpour's comparison).

    :param reward_kl: ``lambda``, the weight of the KL term in the objective.
    :param cost_kl: ``lambda_c``, the weight of the KL term in the constraint.
    :param cost_slack: ``delta_c``, the slack of the linearised constraint. With ``delta_c = 0`` Xu & Zhu's safety
        guarantee needs ``lambda_c >= 2 gamma alpha A_c_max / (1 - gamma)^2``; the default ``lambda_c = 0.2`` is far
        below that on the gridworld, and its adapted policies can break the limit (README, safe adaptation).
    :param dual_method: ``"descent"`` (default, the baseline setting): ``dual_iterations`` projected dual-descent steps
        of size ``dual_step`` from ``u = 0``, returning the last iterate, which can oscillate around the multiplier;
        ``"bisection"``: the root of the (decreasing) linearised-constraint violation ``g(u)`` to machine precision,
        on its feasible side.
    :param dual_step: step size of the projected dual descent on ``u``.
    :param dual_iterations: number of dual steps (from ``u = 0``).
    :param advantages: ``"exact"`` or ``"sampled"`` (Monte Carlo).
    :param n_episodes: episodes sampled from ``pi_phi`` per step (sampled advantages).
    :param horizon: steps per sampled episode.
    """

    reward_kl: float = 0.2
    cost_kl: float = 0.2
    cost_slack: float = 0.0
    dual_method: Literal["descent", "bisection"] = "descent"
    dual_step: float = 1.0
    dual_iterations: int = 30
    advantages: Literal["exact", "sampled"] = "sampled"
    n_episodes: int = 1000
    horizon: int = 100

    def __post_init__(self) -> None:
        if not (self.reward_kl > 0 and self.cost_kl >= 0 and self.cost_slack >= 0 and self.dual_step > 0):
            raise ValueError(f"need reward_kl > 0, cost_kl >= 0, cost_slack >= 0, dual_step > 0; got {self}")
        if self.dual_method not in ("descent", "bisection"):
            raise ValueError(f"dual_method must be 'descent' or 'bisection', got {self.dual_method!r}")
        if self.advantages not in ("exact", "sampled"):
            raise ValueError(f"advantages must be 'exact' or 'sampled', got {self.advantages!r}")
        check_count("dual_iterations", self.dual_iterations)
        check_count("n_episodes", self.n_episodes, minimum=1)
        check_count("horizon", self.horizon, minimum=1)


@dataclasses.dataclass(frozen=True)
class AdvantageEstimate:
    """What one step needs to know about ``pi_phi`` on the task: advantages ``(S, A)``, the normalised discounted
    state visitation ``nu (S,)`` and the cost value ``J_c(pi_phi)``."""

    reward_advantage: np.ndarray
    cost_advantage: np.ndarray
    visitation: np.ndarray
    cost_value: float


def exact_advantages(cmdp: TabularCMDP, policy: np.ndarray) -> AdvantageEstimate:
    """Exact advantages and visitation of ``policy`` (linear solves)."""
    V, Q = value_functions(cmdp, policy)
    P_pi = np.einsum("sa,sat->st", policy, cmdp.P)
    occupancy = np.linalg.solve((np.eye(cmdp.n_states) - cmdp.gamma * P_pi).T, cmdp.mu)
    return AdvantageEstimate(
        reward_advantage=Q[0] - V[0][:, None],
        cost_advantage=Q[1] - V[1][:, None],
        visitation=(1 - cmdp.gamma) * occupancy,
        cost_value=float(cmdp.mu @ V[1]),
    )


def _returns_to_go(values: np.ndarray, gamma: float) -> np.ndarray:
    """``G[e, t] = sum_{k >= t} gamma^(k - t) values[e, k]`` over the sampled horizon."""
    returns = np.empty_like(values)
    running = np.zeros(values.shape[0])
    for t in reversed(range(values.shape[1])):
        running = values[:, t] + gamma * running
        returns[:, t] = running
    return returns


def sampled_advantages(cmdp: TabularCMDP, policy: np.ndarray, n_episodes: int, horizon: int,
                       seed: int) -> AdvantageEstimate:
    """Monte Carlo estimates from ``n_episodes`` trajectories of ``policy``: ``Q(s, a)`` and ``V(s)`` are mean
    discounted returns-to-go after visits of ``(s, a)`` and of ``s``; advantages of pairs never visited are 0 (the
    closed form then leaves those action probabilities at ``pi_phi``'s relative weights); ``nu`` is the discounted
    visit frequency; ``J_c`` the mean discounted episode cost."""
    return trajectory_advantages(cmdp, EpisodeSampler(cmdp, policy, horizon).sample_trajectories(n_episodes, seed=seed))


def trajectory_advantages(cmdp: TabularCMDP, trajectories: Trajectories) -> AdvantageEstimate:
    """The estimates of :func:`sampled_advantages` from trajectories already sampled."""
    n_episodes, horizon = trajectories.states.shape
    S, A = cmdp.n_states, cmdp.n_actions
    states, actions = trajectories.states.ravel(), trajectories.actions.ravel()
    pairs = states * A + actions
    advantages = []
    for values in (trajectories.rewards, trajectories.costs):
        returns = _returns_to_go(values, cmdp.gamma).ravel()
        pair_count = np.bincount(pairs, minlength=S * A).reshape(S, A)
        pair_mean = np.bincount(pairs, returns, S * A).reshape(S, A) / np.maximum(pair_count, 1)
        state_count = np.bincount(states, minlength=S)
        state_mean = np.bincount(states, returns, S) / np.maximum(state_count, 1)
        advantages.append(np.where(pair_count > 0, pair_mean - state_mean[:, None], 0.0))
    discounts = cmdp.gamma ** np.arange(horizon)
    visitation = np.bincount(states, np.tile(discounts, n_episodes), S) * (1 - cmdp.gamma) / n_episodes
    cost_value = float((trajectories.costs @ discounts).mean())
    return AdvantageEstimate(advantages[0], advantages[1], visitation, cost_value)


def closed_form_policy(policy: np.ndarray, estimate: AdvantageEstimate, u: float, gamma: float,
                       config: SafeAdaptationConfig) -> np.ndarray:
    """``pi_u(a|s) ∝ pi_phi(a|s) exp((A_r - u A_c) / eta)`` with ``eta = lambda + (1 - gamma) u lambda_c``.
    Actions ``pi_phi`` never takes keep probability zero."""
    eta = config.reward_kl + (1 - gamma) * u * config.cost_kl
    logits = np.log(np.maximum(policy, 1e-300)) + (estimate.reward_advantage - u * estimate.cost_advantage) / eta
    return softmax(np.where(policy > 0, logits, -np.inf))


def linearised_cost(new_policy: np.ndarray, policy: np.ndarray, estimate: AdvantageEstimate, gamma: float,
                    cost_kl: float) -> float:
    """``J_c(pi_phi) + E_{s~nu, a~pi}[A_c] / (1 - gamma) + lambda_c E_{s~nu}[KL(pi || pi_phi)]``."""
    kl = np.where(new_policy > 0, new_policy * (np.log(np.maximum(new_policy, 1e-300))
                                                - np.log(np.maximum(policy, 1e-300))), 0.0).sum(axis=1)
    expected_advantage = (estimate.visitation * (new_policy * estimate.cost_advantage).sum(axis=1)).sum()
    return estimate.cost_value + expected_advantage / (1 - gamma) + cost_kl * float(estimate.visitation @ kl)


def dual_multiplier(policy: np.ndarray, estimate: AdvantageEstimate, cost_limit: float, gamma: float,
                    config: SafeAdaptationConfig) -> tuple[float, list[float]]:
    """The multiplier ``u`` by ``config.dual_method``, and the path of ``u`` values tried."""

    def violation(u: float) -> float:
        new_policy = closed_form_policy(policy, estimate, u, gamma, config)
        return linearised_cost(new_policy, policy, estimate, gamma, config.cost_kl) - cost_limit - config.cost_slack

    if config.dual_method == "bisection":
        return _bisect(violation)
    u, path = 0.0, [0.0]
    for _ in range(config.dual_iterations):
        u = max(0.0, u + config.dual_step * violation(u))
        path.append(u)
    return u, path


def _bisect(violation, largest: float = 1e8) -> tuple[float, list[float]]:
    """The smallest ``u >= 0`` with ``violation(u) <= 0`` (``violation`` decreases in ``u``), to relative precision
    ``1e-12``; ``largest`` if even that violates (the linearised constraint cannot be met)."""
    if violation(0.0) <= 0:
        return 0.0, [0.0]
    low, high, path = 0.0, 1.0, [0.0]
    while violation(high) > 0:
        path.append(high)
        if high >= largest:
            return high, path
        low, high = high, 2 * high
    while high - low > 1e-12 * high:
        middle = (low + high) / 2
        path.append(middle)
        if violation(middle) > 0:
            low = middle
        else:
            high = middle
    return high, path


@dataclasses.dataclass(frozen=True)
class AdaptationStep:
    """One step: the adapted policy, the multiplier ``u`` (with its dual path) and the estimate it used."""

    policy: np.ndarray
    multiplier: float
    multiplier_path: list[float]
    estimate: AdvantageEstimate


def adaptation_step(cmdp: TabularCMDP, policy: np.ndarray, config: SafeAdaptationConfig,
                    seed: int = 0) -> AdaptationStep:
    """One safe adaptation step from ``policy`` on ``cmdp`` (advantages exact or sampled, per ``config``)."""
    policy = check_policy(cmdp, policy)
    if config.advantages == "exact":
        estimate = exact_advantages(cmdp, policy)
    else:
        estimate = sampled_advantages(cmdp, policy, config.n_episodes, config.horizon, seed)
    u, path = dual_multiplier(policy, estimate, cmdp.cost_limit, cmdp.gamma, config)
    return AdaptationStep(closed_form_policy(policy, estimate, u, cmdp.gamma, config), u, path, estimate)


@dataclasses.dataclass(frozen=True)
class AdaptationRun:
    """An adaptation sequence on one task. Index 0 is the initial policy; every policy is evaluated exactly."""

    policies: np.ndarray  # (n_steps + 1, S, A)
    reward_values: np.ndarray  # (n_steps + 1,)
    cost_values: np.ndarray  # (n_steps + 1,)
    multipliers: np.ndarray  # (n_steps,)
    cost_limit: float

    @property
    def feasible(self) -> np.ndarray:
        return self.cost_values <= self.cost_limit

    @property
    def anytime_safe(self) -> bool:
        """Every policy of the sequence (the initial one included) meets the limit exactly."""
        return bool(self.feasible.all())


def adapt(cmdp: TabularCMDP, initial_policy: np.ndarray, n_steps: int, config: SafeAdaptationConfig,
          seed: int = 0) -> AdaptationRun:
    """``n_steps`` adaptation steps from ``initial_policy``; step ``k`` samples with seed ``seed + k``."""
    check_count("n_steps", n_steps)
    policies = [check_policy(cmdp, initial_policy)]
    multipliers = []
    for k in range(n_steps):
        step = adaptation_step(cmdp, policies[-1], config, seed=seed + k)
        policies.append(step.policy)
        multipliers.append(step.multiplier)
    stacked = np.stack(policies)
    reward_values, cost_values = evaluate_policy(cmdp, stacked)
    return AdaptationRun(stacked, reward_values, cost_values, np.array(multipliers), cmdp.cost_limit)


def anytime_safety_evaluation(cmdps: list[TabularCMDP], initial_policy: np.ndarray, n_steps: int,
                              config: SafeAdaptationConfig, seed: int = 0,
                              labels: list[str] | None = None) -> dict:
    """Adapt from ``initial_policy`` on every CMDP and report, per step, the exact reward and cost values.

    Returns a JSON-ready dict: ``config``, one entry per task (``label``, ``reward_values``, ``cost_values``,
    ``multipliers``, ``cost_limit``, ``anytime_safe``, ``violating_steps``) and ``anytime_safe`` over all tasks. A run
    that is not anytime safe is reported as such, with the steps and costs that broke the limit.
    """
    labels = labels or [f"task {i}" for i in range(len(cmdps))]
    tasks = []
    for index, (cmdp, label) in enumerate(zip(cmdps, labels)):
        run = adapt(cmdp, initial_policy, n_steps, config, seed=seed + 1000 * index)
        tasks.append({
            "label": label,
            "reward_values": run.reward_values.tolist(),
            "cost_values": run.cost_values.tolist(),
            "multipliers": run.multipliers.tolist(),
            "cost_limit": run.cost_limit,
            "anytime_safe": run.anytime_safe,
            "violating_steps": [int(k) for k in np.flatnonzero(~run.feasible)],
        })
    return {"config": dataclasses.asdict(config), "n_steps": n_steps, "seed": seed, "tasks": tasks,
            "anytime_safe": all(task["anytime_safe"] for task in tasks)}


def plot_anytime_safety(result: dict, path: str) -> None:
    """Reward and cost value per adaptation step, one thin line per task and their mean, the cost limit dashed and
    every violating policy marked in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cmdp_envs.io import save_figure

    figure, (ax_reward, ax_cost) = plt.subplots(1, 2, figsize=(10, 4))
    steps = np.arange(result["n_steps"] + 1)
    rewards = np.array([task["reward_values"] for task in result["tasks"]])
    costs = np.array([task["cost_values"] for task in result["tasks"]])
    limits = np.array([task["cost_limit"] for task in result["tasks"]])
    for ax, values, name in ((ax_reward, rewards, "reward value J_r"), (ax_cost, costs, "cost value J_c")):
        ax.plot(steps, values.T, color="0.7", lw=0.8)
        ax.plot(steps, values.mean(axis=0), color="C0", lw=2, label="mean over tasks")
        ax.set_xlabel("adaptation step")
        ax.set_ylabel(name)
    for limit in np.unique(limits):
        ax_cost.axhline(limit, color="black", linestyle="--", label=f"cost limit {limit:g}")
    violating = costs > limits[:, None]
    ax_cost.scatter(np.broadcast_to(steps, costs.shape)[violating], costs[violating], color="red", zorder=3,
                    label="violating policy")
    verdict = "anytime safe" if result["anytime_safe"] else "NOT anytime safe"
    config = result["config"]
    figure.suptitle(f"safe adaptation ({config['advantages']} advantages, lambda = {config['reward_kl']}, "
                    f"lambda_c = {config['cost_kl']}): {verdict}")
    ax_reward.legend()
    ax_cost.legend()
    save_figure(figure, path)
    plt.close(figure)


@dataclasses.dataclass(frozen=True)
class MetaTrainingResult:
    """The meta-policy ``pi_phi`` and, per iteration, the mean post-adaptation reward over the training tasks and the
    largest constraint violation ``max_tau (J_c(pi_phi) - d - delta_c)`` of the meta-policy itself."""

    policy: np.ndarray
    objective: float
    history: list[dict[str, float]]


def meta_objective(theta: object, cmdps: list[TabularCMDP], config: SafeAdaptationConfig) -> tuple[object, object]:
    """Xu & Zhu's meta-objective at ``pi_phi = softmax(theta)`` as differentiable torch scalars: the mean reward value
    after one exact adaptation step over ``cmdps``, and the largest violation ``J_c(pi_phi) - d - delta_c``.

    Each task's multiplier ``u*`` is the root of the linearised constraint (bisection); where it binds, ``u*`` moves
    with ``theta``, and its gradient enters by implicit differentiation, ``du*/dtheta = -(dg/dtheta) / (dg/du)``, so
    the gradient of the objective is exact.
    """
    import torch

    policy = torch.softmax(theta, dim=1)
    log_policy = torch.log_softmax(theta, dim=1)
    objective_terms, violations = [], []
    for cmdp in cmdps:
        P, r, c, mu = (torch.tensor(getattr(cmdp, name), dtype=torch.float64) for name in ("P", "r", "c", "mu"))
        system = torch.eye(cmdp.n_states, dtype=torch.float64) - cmdp.gamma * torch.einsum("sa,sat->st", policy, P)
        V_r = torch.linalg.solve(system, (policy * r).sum(dim=1))
        V_c = torch.linalg.solve(system, (policy * c).sum(dim=1))
        occupancy = torch.linalg.solve(system.T, mu)
        A_r = r + cmdp.gamma * P @ V_r - V_r[:, None]
        A_c = c + cmdp.gamma * P @ V_c - V_c[:, None]
        cost_value = mu @ V_c
        tensors = (log_policy, A_r, A_c, occupancy, cost_value)
        detached = tuple(t.detach() for t in tensors)

        def adapted_and_violation(u, log_pi, adv_r, adv_c, occ, j_c):
            eta = config.reward_kl + (1 - cmdp.gamma) * u * config.cost_kl
            log_adapted = torch.log_softmax(log_pi + (adv_r - u * adv_c) / eta, dim=1)
            adapted = log_adapted.exp()
            kl = (adapted * (log_adapted - log_pi)).sum(dim=1)
            linearised = j_c + (occ * (adapted * adv_c).sum(dim=1)).sum() \
                + config.cost_kl * (1 - cmdp.gamma) * (occ * kl).sum()
            return adapted, linearised - cmdp.cost_limit - config.cost_slack

        with torch.no_grad():
            u_star, _ = _bisect(lambda u: float(adapted_and_violation(u, *detached)[1]))
        if u_star > 0:
            with torch.enable_grad():  # dg/du is needed even when the caller evaluates without gradients
                u_variable = torch.tensor(u_star, dtype=torch.float64, requires_grad=True)
                (dg_du,) = torch.autograd.grad(adapted_and_violation(u_variable, *detached)[1], u_variable)
            _, g_theta = adapted_and_violation(u_star, *tensors)
            # Value u*, gradient -(dg/dtheta) / (dg/du): the implicit function theorem at g(theta, u*) = 0.
            u = u_star - (g_theta - g_theta.detach()) / dg_du
        else:
            u = torch.tensor(0.0, dtype=torch.float64)
        adapted, _ = adapted_and_violation(u, *tensors)
        adapted_system = torch.eye(cmdp.n_states, dtype=torch.float64) - cmdp.gamma * torch.einsum(
            "sa,sat->st", adapted, P)
        objective_terms.append(mu @ torch.linalg.solve(adapted_system, (adapted * r).sum(dim=1)))
        violations.append(cost_value - cmdp.cost_limit - config.cost_slack)
    return torch.stack(objective_terms).mean(), torch.stack(violations).max()


def meta_train(cmdps: list[TabularCMDP], config: SafeAdaptationConfig, initial_policy: np.ndarray | None = None,
               iterations: int = 200, learning_rate: float = 0.05) -> MetaTrainingResult:
    """Xu & Zhu's meta-training on a tabular family, with exact gradients (:func:`meta_objective`):

        max_phi  mean_tau J_r,tau(A(pi_phi, tau))   s.t.  J_c,tau(pi_phi) <= d_tau + delta_c  for every training tau,

    where ``A`` is one adaptation step with exact advantages and the exact multiplier. ``pi_phi = softmax(theta)``.
    Each iteration takes an Adam step on the objective when ``pi_phi`` meets every constraint, and otherwise a step
    that lowers the cost of the most violated task; the best feasible iterate is returned. Needs torch (it comes with
    the ``sb3`` extra).

    :param initial_policy: where to start (e.g. the ``pi_s`` every method shares); default uniform.
    """
    try:
        import torch
    except ImportError as error:
        raise ImportError('meta_train needs torch: pip install "cmdp-envs[sb3]"') from error
    check_count("iterations", iterations, minimum=1)
    if not cmdps:
        raise ValueError("meta_train needs at least one training task")
    S, A = cmdps[0].n_states, cmdps[0].n_actions
    start = np.full((S, A), 1.0 / A) if initial_policy is None else check_policy(cmdps[0], initial_policy)
    theta = torch.tensor(np.log(np.maximum(start, 1e-8)), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([theta], lr=learning_rate)
    best: tuple[float, np.ndarray] | None = None
    history = []
    for _ in range(iterations):
        objective, worst = meta_objective(theta, cmdps, config)
        objective_value, worst_value = float(objective.detach()), float(worst.detach())
        history.append({"objective": objective_value, "max_violation": worst_value})
        if worst_value <= 0 and (best is None or objective_value > best[0]):
            best = (objective_value, torch.softmax(theta, dim=1).detach().numpy().copy())
        optimizer.zero_grad()
        (-objective if worst_value <= 0 else worst).backward()
        optimizer.step()
    if best is None:
        raise RuntimeError(f"no meta-policy met every training constraint in {iterations} iterations; the smallest "
                           f"largest violation was {min(h['max_violation'] for h in history):.6g}")
    return MetaTrainingResult(policy=best[1], objective=best[0], history=history)


# Neural form ---------------------------------------------------------------------------------------------------------


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
    from cmdp_envs.meta.policies import MLPPolicy, _torch_layers

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
                           gamma: float | None = None, cost_limit: float | None = None) -> NeuralAdaptationStep:
    """One safe adaptation step for a neural policy, from ``config.n_episodes`` rollouts of ``config.horizon`` steps
    in ``env`` (a Gymnasium env reporting ``info["cost"]``; for a ``cmdp_envs`` env its current task is the one
    adapted to, and ``gamma`` and ``cost_limit`` default to its family's and task's).

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
    reward_to_go = _returns_to_go(np.array(rewards).reshape(shape), gamma)
    cost_to_go = _returns_to_go(np.array(costs).reshape(shape), gamma)
    mask = torch.as_tensor(np.array(valid))
    targets = torch.as_tensor(np.stack([reward_to_go.ravel(), cost_to_go.ravel()], axis=1))
    baseline = _fit_value_baseline(obs, targets, mask, config, seed)
    reward_advantage, cost_advantage = (targets - baseline).T
    weights = mask * torch.as_tensor(np.tile((1 - gamma) * gamma ** np.arange(config.horizon), config.n_episodes)
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
        eta = config.reward_kl + (1 - gamma) * u * config.cost_kl
        for _ in range(config.inner_steps):
            ratio, _, kl = surrogate()
            loss = -(weights * ratio * (reward_advantage - u * cost_advantage)).sum() / eta + kl
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            ratio, _, kl = surrogate()
            linearised = cost_value + float((weights * ratio * cost_advantage).sum()) / (1 - gamma) \
                + config.cost_kl * float(kl)
        if iteration < config.dual_iterations - 1:  # the returned u is the one the returned network was fitted under
            u = max(0.0, u + config.dual_step * (linearised - cost_limit - config.cost_slack))
    return NeuralAdaptationStep(new_network, u, cost_value, linearised, float(kl))


def run_on_tabular(cmdp: TabularCMDP, initial_policy: np.ndarray, n_episodes: int, config: SafeAdaptationConfig,
                   seed: int = 0) -> TestRun:
    """Safe Meta-RL under the meta-test protocol: ``K = n_episodes`` episodes on ``cmdp``, adapting every
    ``config.n_episodes`` episodes. The episodes of a step are the trajectories its advantages are sampled from,
    so they execute the policy being adapted; every executed policy is evaluated exactly."""
    if config.advantages != "sampled":
        raise ValueError("the test-time protocol counts sampled episodes; use advantages='sampled'")

    def adapted_policies(policy: np.ndarray) -> Iterator[np.ndarray]:
        for step in itertools.count():
            yield policy
            policy = adaptation_step(cmdp, policy, config, seed=seed + step).policy

    return run_iterates(cmdp, adapted_policies(check_policy(cmdp, initial_policy)), n_episodes, config.n_episodes)
