"""Xu & Zhu's meta-training on a tabular family, with exact gradients: the meta-policy ``pi_phi`` maximises the mean
reward value after one exact adaptation step over the training tasks, subject to its own feasibility on each. The
adaptation step is :func:`~cmdp_envs.meta.safe_adaptation.closed_form.closed_form_update` on torch tensors, the same
code as the tabular step. Needs torch (it comes with the ``sb3`` extra)."""

from __future__ import annotations

import dataclasses

import numpy as np

from cmdp_envs.meta.safe_adaptation.closed_form import (
    SafeAdaptationConfig,
    bisect_multiplier,
    closed_form_update,
    linearised_constraint,
)
from cmdp_envs.tabular import TabularCMDP, check_policy
from cmdp_envs.task import check_count

__all__ = ["MetaTrainingResult", "meta_objective", "meta_train"]


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

    def logsumexp(x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(x, dim=-1, keepdim=True)

    policy = torch.softmax(theta, dim=1)
    log_policy = torch.log_softmax(theta, dim=1)
    objective_terms, violations = [], []
    for cmdp in cmdps:
        P, r, c, mu = (torch.tensor(getattr(cmdp, name), dtype=torch.float64) for name in ("P", "r", "c", "mu"))
        system = torch.eye(cmdp.n_states, dtype=torch.float64) - cmdp.gamma * torch.einsum("sa,sat->st", policy, P)
        V_r = torch.linalg.solve(system, (policy * r).sum(dim=1))
        V_c = torch.linalg.solve(system, (policy * c).sum(dim=1))
        visitation = (1 - cmdp.gamma) * torch.linalg.solve(system.T, mu)
        A_r = r + cmdp.gamma * P @ V_r - V_r[:, None]
        A_c = c + cmdp.gamma * P @ V_c - V_c[:, None]
        cost_value = mu @ V_c
        tensors = (log_policy, A_r, A_c, visitation, cost_value)
        detached = tuple(t.detach() for t in tensors)

        def adapted_and_violation(u, log_pi, adv_r, adv_c, nu, j_c, gamma=cmdp.gamma, limit=cmdp.cost_limit):
            adapted, kl = closed_form_update(log_pi, adv_r, adv_c, u, config.temperature(u, gamma), logsumexp,
                                             torch.exp)
            linearised = linearised_constraint(adapted, kl, adv_c, nu, j_c, gamma, config.cost_kl)
            return adapted, linearised - limit - config.cost_slack

        with torch.no_grad():
            u_star, _ = bisect_multiplier(lambda u: float(adapted_and_violation(u, *detached)[1]))
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
