"""Train SB3's PPO on a Lagrangian reward r - lambda * c with a fixed multiplier, then evaluate the learned policy
exactly on the tabular model. (A learned multiplier, by dual ascent, is the SB3 Lagrangian learner of cmdp_envs.meta.)
Needs the 'sb3' extra: pip install "cmdp-envs[sb3]"."""

import sys

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO

import cmdp_envs  # noqa: F401
from cmdp_envs.tabular import evaluate_policy, solve_cmdp
from cmdp_envs.wrappers import LagrangianReward

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
env = LagrangianReward(gym.make("cmdp_envs/GridWorld-v0", observation_type="onehot", max_episode_steps=50),
                       multiplier=3.0)
model = PPO("MlpPolicy", env, n_steps=512, batch_size=128, gamma=0.9, seed=0, device="cpu", verbose=0)
model.learn(total_timesteps=steps)

# The policy's action probabilities in every state, read from the network, give its exact values.
cmdp = env.unwrapped.tabular()
with torch.no_grad():
    states = torch.eye(cmdp.n_states)
    policy = model.policy.get_distribution(states).distribution.probs.numpy().astype(np.float64)
policy /= policy.sum(axis=1, keepdims=True)
reward_value, cost_value = evaluate_policy(cmdp, policy)
optimum = solve_cmdp(cmdp)
print(f"PPO with lambda = {env.multiplier} after {steps} steps: J_r = {reward_value:.2f}, J_c = {cost_value:.2f} "
      f"(limit {cmdp.cost_limit}); constrained optimum J_r = {optimum.reward_value:.2f}")
