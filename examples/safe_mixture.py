"""Covering + safe mixture (Ni & Kamgarpour 2026) on the gridworld, step by step.

Training (Algorithm 1) with exact oracles gives the policy-value set U and a simultaneously feasible pi_s; testing
(Algorithm 2) proposes the policy of each episode and learns from its discounted return and cost. Here the episodes
come from the Gymnasium env itself; `run_on_tabular` does the same through the batched sampler, much faster.

Usage: python examples/safe_mixture.py [episodes]
"""

import sys

import gymnasium as gym
import numpy as np

import cmdp_envs  # noqa: F401
from cmdp_envs.meta.covering import train
from cmdp_envs.meta.oracles import DistanceCheck, ExactLPOracle, ExactSimultaneouslyFeasibleOracle
from cmdp_envs.meta.safe_mixture import PracticalConstants, SafeMixture

n_episodes = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
env = gym.make("cmdp_envs/GridWorld-v0")
family = env.unwrapped.family

# Algorithm 1: O_l is the LP, O_c compares noise levels, O_s must also be safe on the noisy task i = 0.4.
feasible_oracle = ExactSimultaneouslyFeasibleOracle(family, reference_tasks=[family.task(noise=0.4)],
                                                    exploration=0.02)
covering = train(family, ExactLPOracle(family), DistanceCheck(family, parameter="noise"), feasible_oracle,
                 delta=0.1, eps=0.01, xi=0.05, seed=0)
print(f"N = {covering.n_samples}, |U| = {covering.cover_size}, doublings = {covering.doublings}")

# Algorithm 2 against the env: one mixture draw per episode, then observe(R_k, C_k).
task = family.task(noise=0.31)
constants = PracticalConstants(min_episodes=200, raise_min=200, raise_max=400)  # a shorter schedule for a demo
algorithm = SafeMixture(covering.policy_values, task.cost_limit, family.gamma, n_episodes, constants)
policies = [entry.policy for entry in covering.policy_values]
rng = np.random.default_rng(0)
for episode in range(n_episodes):
    proposal = algorithm.propose()
    use_candidate = proposal.candidate is not None and rng.random() < proposal.alpha
    policy = policies[proposal.candidate] if use_candidate else covering.safe_policy
    observation, _ = env.reset(seed=episode, options={"task": task})
    reward_return = cost_return = 0.0
    for t in range(100):
        observation, reward, terminated, truncated, info = env.step(policy.act(observation))
        reward_return += family.gamma**t * reward
        cost_return += family.gamma**t * info["cost"]
    algorithm.observe(reward_return, cost_return)
    if episode % 500 == 0 or episode == n_episodes - 1:
        print(f"episode {episode:5d}: candidate {proposal.candidate}, alpha = {proposal.alpha:.3f}, "
              f"predicted margin {proposal.predicted_margin:.3f}")
print(f"eliminated candidates: {algorithm.eliminated}")
