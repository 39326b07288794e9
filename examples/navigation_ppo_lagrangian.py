"""PPO-Lagrangian (Stable-Baselines3 PPO with dual ascent) on PointGoal1, trained on the native vector env.

The family reads its cost limit as Safety-Gymnasium and OmniSafe do, on the episode sum (25 per 1,000-step episode);
the dual update uses the same sum. Prints the Lagrangian's trace and a Monte Carlo estimate of the trained policy's
episode cost against the limit. A few minutes at the default budget. Needs the 'sb3' extra.
"""

import sys

import numpy as np
import torch

from cmdp_envs import Fixed
from cmdp_envs.families.navigation import GoalFamily
from cmdp_envs.meta.policies import MLPPolicy
from cmdp_envs.meta.sb3_lagrangian import lagrangian_learner
from cmdp_envs.wrappers import SB3VecEnv

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
torch.set_num_threads(1)
family = GoalFamily(cost_semantics="undiscounted", cost_limit=Fixed(25.0))
task = family.default_task
vector = family.make_vector_env(32, autoreset_mode="same_step")
vector.set_tasks([task])
model, callback = lagrangian_learner(
    "PPO", SB3VecEnv(vector, lagrangian=True), cost_limit=task.cost_limit, gamma=family.gamma, seed=0,
    discounted=False, multiplier_lr=0.01, n_steps=128, batch_size=1024, learning_rate=3e-4,
)
model.learn(steps, callback=callback)
for row in callback.history[:: max(1, len(callback.history) // 5)] + callback.history[-1:]:
    print(f"{row['timesteps']:>9.0f} steps: lambda = {row['multiplier']:.3f}, "
          f"episode return {row['episode_return']:.2f}, episode cost {row['episode_cost']:.1f} "
          f"(limit {task.cost_limit:g})")

# The trained policy, sampled, on 64 fresh episodes of the task: episode cost with a 95% normal interval.
policy = MLPPolicy.from_sb3(model, seed=0)
evaluation = family.make_vector_env(64)
evaluation.set_tasks([task])
obs, _ = evaluation.reset(seed=1)
episode_costs = np.zeros(64)
for _ in range(family.max_episode_steps):
    obs, _, _, _, infos = evaluation.step(np.stack([policy.act(o) for o in obs]))
    episode_costs += infos["cost"]
half_width = 1.96 * episode_costs.std(ddof=1) / np.sqrt(len(episode_costs))
print(f"after {steps} steps: episode cost {episode_costs.mean():.1f} ± {half_width:.1f} (95% CI, 64 episodes) "
      f"against the limit {task.cost_limit:g}")
