"""PPO-Lagrangian with Stable-Baselines3: SB3's own PPO on the Lagrangian reward r - lambda c, with lambda learned by
dual ascent in a callback; the learned policy is then evaluated exactly on the gridworld's tabular model.
Needs the 'sb3' extra: pip install "cmdp-envs[sb3]"."""

import sys

import torch

from cmdp_envs.families.gridworld import GridWorldFamily
from cmdp_envs.meta.policies import tabular_policy_from_sb3
from cmdp_envs.meta.sb3_lagrangian import lagrangian_learner
from cmdp_envs.tabular import evaluate_policy, solve_cmdp

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 60_000
torch.set_num_threads(1)
# One family for training and evaluation: its task, limit and discount are read from it, never restated.
family = GridWorldFamily()
task = family.default_task
model, callback = lagrangian_learner(
    "PPO", family.env_id, cost_limit=task.cost_limit, gamma=family.gamma, seed=0, multiplier_lr=0.05,
    env_kwargs={"family": family, "task": task, "observation_type": "onehot", "max_episode_steps": 50},
    n_steps=256, batch_size=256, learning_rate=1e-3,
)
model.learn(steps, callback=callback)

cmdp = family.tabular(task)
policy = tabular_policy_from_sb3(model, cmdp.n_states)
reward_value, cost_value = evaluate_policy(cmdp, policy.probabilities)
print(f"after {steps} steps: lambda = {callback.multiplier:.3f}, exact J_r = {reward_value:.2f}, "
      f"J_c = {cost_value:.3f} (limit {task.cost_limit:g}); constrained optimum J_r = {solve_cmdp(cmdp).reward_value:.2f}")
