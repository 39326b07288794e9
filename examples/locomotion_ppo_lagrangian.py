"""PPO-Lagrangian (SB3's PPO with dual ascent on the multiplier) on Ni & Kamgarpour's Hopper: run at a target
velocity, with the control effort as the constrained cost. The learned policy is then evaluated by Monte Carlo on its
task. Needs the 'sb3' extra and MuJoCo: pip install "cmdp-envs[sb3,mujoco]".

Usage: python examples/locomotion_ppo_lagrangian.py [steps]
"""

import sys

import gymnasium as gym
import torch

import cmdp_envs  # noqa: F401  (registers the ids)
from cmdp_envs.meta.oracles.protocol import evaluate
from cmdp_envs.meta.policies import MLPPolicy
from cmdp_envs.meta.sb3_lagrangian import lagrangian_learner

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
torch.set_num_threads(1)
family = gym.make("cmdp_envs/HopperNiKamgarpour-v0").unwrapped.family
task = family.task(target_velocity=0.6)
print(f"task: target velocity {task.target_velocity}, control effort limit {task.cost_limit:g} (discounted, "
      f"gamma {family.gamma})")
model, callback = lagrangian_learner("PPO", family.env_id, cost_limit=task.cost_limit, gamma=family.gamma, seed=0,
                                     n_envs=4, env_kwargs={"family": family, "task": task}, n_steps=512,
                                     batch_size=256, multiplier_lr=0.01)
model.learn(steps, callback=callback)
reward, cost = evaluate(family, task, MLPPolicy.from_sb3(model, seed=0), n_episodes=20, horizon=1000)
print(f"after {steps} steps: lambda = {callback.multiplier:.3f}, J_r = {reward}, J_c = {cost} "
      f"(limit {task.cost_limit:g})")
