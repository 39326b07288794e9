"""Covering + safe mixture with learned oracles on a non-tabular family, with Monte Carlo safety verification.

Training (Algorithm 1): SB3 PPO-Lagrangian is ``O_l`` on every task of the cover (in parallel processes) and, trained
against the cover's worst task with the limit tightened by ``xi``, ``O_s``. Testing (Algorithm 2): the safe mixture
runs on a fresh task under the meta-test protocol, the one every meta method is tested with, which records every
episode and checks every mixture it executed by Monte Carlo, with intervals that hold together at 95%.

The family is PointNavigation-v0 with only the goal's x varying, so that a small budget suffices.

Usage: python examples/safe_mixture_learned.py [timesteps per oracle call] [test episodes]
"""

import sys

import torch

import cmdp_envs  # noqa: F401
from cmdp_envs.families.point_navigation import PointNavigationFamily
from cmdp_envs.meta.covering import train
from cmdp_envs.meta.executors import LocalExecutor
from cmdp_envs.meta.oracles import DistanceCheck, LearnedSimultaneouslyFeasibleOracle
from cmdp_envs.meta.oracles.sb3_learners import SB3LagrangianOracle
from cmdp_envs.meta.safe_mixture import LearnedSafeMixture, PracticalConstants
from cmdp_envs.meta.test_time import meta_test
from cmdp_envs.task import Fixed, Uniform


def main() -> None:
    # The executor starts worker processes by "spawn", which re-imports this file: hence the main guard.
    timesteps = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    n_test_episodes = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    torch.set_num_threads(1)

    family = PointNavigationFamily(cost_limit=Fixed(1.0), noise=Fixed(0.02), goal_x=Uniform(-0.4, 0.4),
                                   goal_y=Fixed(0.6), hazard_x=Fixed(0.0), hazard_y=Fixed(-0.1),
                                   hazard_radius=Fixed(0.2))
    # One family everywhere: the oracles train on it and evaluate under it, the cover samples it, the test runs in it.
    learner = SB3LagrangianOracle(family, total_timesteps=timesteps, multiplier_lr=0.2, n_steps=128, learning_rate=1e-3,
                                  n_eval_episodes=300, eval_horizon=50)
    feasible_oracle = LearnedSimultaneouslyFeasibleOracle(learner, max_rounds=3, n_episodes=300, horizon=50)
    covering = train(family, learner, DistanceCheck(family), feasible_oracle, delta=0.1, eps=0.2, xi=0.1, seed=0,
                     executor=LocalExecutor(max_workers=2))
    print(f"Algorithm 1: N = {covering.n_samples}, |U| = {covering.cover_size}, doublings = {covering.doublings}, "
          f"coverage error {covering.coverage_error:.3f}")
    for entry in covering.policy_values:
        print(f"  goal_x = {entry.task.goal_x:+.3f}: u = {entry.reward_value:.2f}, v = {entry.margin:+.3f}; "
              f"pi_s: u_s = {entry.safe_reward_value:.2f}, v_s = {entry.safe_margin:+.3f}")

    task = family.sample(1, seed=123)[0]
    constants = PracticalConstants(min_episodes=50, raise_min=50, raise_max=100, reward_scale=40.0, cost_scale=3.0,
                                   pooled_cost_scale=1.5, raise_scale=1.0)  # the authors' radii, rescaled to range 1
    method = LearnedSafeMixture("safe_mixture", covering, constants)
    (result,) = meta_test(method, family, [task], budget=n_test_episodes, seed=1, n_check_episodes=500)
    print(f"Algorithm 2 on goal_x = {task.goal_x:+.3f}: {len(result.returns)} episodes, mean cost "
          f"{result.costs.mean():.3f} (limit {task.cost_limit:g})")
    for check in result.executed:
        print(f"  candidate {check.label['candidate']}, alpha {check.label['alpha']:.3f}, {check.episodes:4d} "
              f"episodes: return {check.return_}, cost {check.cost}  "
              f"{'safe' if check.verified else 'NOT VERIFIED'}")
    print(f"every executed mixture verified feasible (95%, simultaneous): {result.all_verified}")


if __name__ == "__main__":
    main()
