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
from typing import Literal

import numpy as np

from cmdp_envs.tabular import EpisodeSampler, TabularCMDP, check_policy, evaluate_policy, value_functions
from cmdp_envs.task import check_count

__all__ = [
    "SafeAdaptationConfig",
    "AdvantageEstimate",
    "exact_advantages",
    "sampled_advantages",
    "closed_form_policy",
    "linearised_cost",
    "dual_multiplier",
    "adaptation_step",
    "AdaptationStep",
    "AdaptationRun",
    "adapt",
    "anytime_safety_evaluation",
    "plot_anytime_safety",
]


@dataclasses.dataclass(frozen=True)
class SafeAdaptationConfig:
    """Hyper-parameters of one adaptation step (defaults: the gridworld baseline of Ni & Kamgarpour's comparison).

    :param reward_kl: ``lambda``, the weight of the KL term in the objective.
    :param cost_kl: ``lambda_c``, the weight of the KL term in the constraint.
    :param cost_slack: ``delta_c``, the slack of the linearised constraint (0 keeps the safety guarantee).
    :param dual_step: step size of the projected dual descent on ``u``.
    :param dual_iterations: number of dual steps (from ``u = 0``).
    :param advantages: ``"exact"`` or ``"sampled"`` (Monte Carlo).
    :param n_episodes: episodes sampled from ``pi_phi`` per step (sampled advantages).
    :param horizon: steps per sampled episode.
    """

    reward_kl: float = 0.2
    cost_kl: float = 0.2
    cost_slack: float = 0.0
    dual_step: float = 1.0
    dual_iterations: int = 30
    advantages: Literal["exact", "sampled"] = "sampled"
    n_episodes: int = 1000
    horizon: int = 100

    def __post_init__(self) -> None:
        if not (self.reward_kl > 0 and self.cost_kl >= 0 and self.cost_slack >= 0 and self.dual_step > 0):
            raise ValueError(f"need reward_kl > 0, cost_kl >= 0, cost_slack >= 0, dual_step > 0; got {self}")
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
    trajectories = EpisodeSampler(cmdp, policy, horizon).sample_trajectories(n_episodes, seed=seed)
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
    logits = np.where(policy > 0, logits, -np.inf)
    new_policy = np.exp(logits - logits.max(axis=1, keepdims=True))
    return new_policy / new_policy.sum(axis=1, keepdims=True)


def linearised_cost(new_policy: np.ndarray, policy: np.ndarray, estimate: AdvantageEstimate, gamma: float,
                    cost_kl: float) -> float:
    """``J_c(pi_phi) + E_{s~nu, a~pi}[A_c] / (1 - gamma) + lambda_c E_{s~nu}[KL(pi || pi_phi)]``."""
    kl = np.where(new_policy > 0, new_policy * (np.log(np.maximum(new_policy, 1e-300))
                                                - np.log(np.maximum(policy, 1e-300))), 0.0).sum(axis=1)
    expected_advantage = (estimate.visitation * (new_policy * estimate.cost_advantage).sum(axis=1)).sum()
    return estimate.cost_value + expected_advantage / (1 - gamma) + cost_kl * float(estimate.visitation @ kl)


def dual_multiplier(policy: np.ndarray, estimate: AdvantageEstimate, cost_limit: float, gamma: float,
                    config: SafeAdaptationConfig) -> tuple[float, list[float]]:
    """The multiplier ``u`` after ``dual_iterations`` projected dual-descent steps from ``u = 0``, and the path."""
    u, path = 0.0, [0.0]
    for _ in range(config.dual_iterations):
        new_policy = closed_form_policy(policy, estimate, u, gamma, config)
        violation = linearised_cost(new_policy, policy, estimate, gamma, config.cost_kl) - cost_limit - config.cost_slack
        u = max(0.0, u + config.dual_step * violation)
        path.append(u)
    return u, path



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
