"""Make the paper's gridworld, sample tasks, solve one exactly and check the solution by sampling episodes."""

import gymnasium as gym
import numpy as np

import cmdp_envs  # noqa: F401  (registers the cmdp_envs/... ids)
from cmdp_envs.tabular import EpisodeSampler, evaluate_policy, solve_cmdp

env = gym.make("cmdp_envs/GridWorld-v0")
family = env.unwrapped.family
print(family.describe())

tasks = family.sample(3, seed=0)
print("sampled noise levels:", [round(t.noise, 4) for t in tasks])

task = tasks[0]
cmdp = family.tabular(task)  # P (49, 4, 49), r, c (49, 4), mu (49,), gamma, cost_limit
solution = solve_cmdp(cmdp)
print(f"optimal constrained policy: J_r = {solution.reward_value:.3f}, J_c = {solution.cost_value:.3f} "
      f"(limit {task.cost_limit})")
print(family.policy_text(task, solution.policy))

# Monte Carlo check: 20,000 episodes of 100 steps in one vectorised call.
batch = EpisodeSampler(cmdp, solution.policy, horizon=100).sample(20_000, seed=0)
half_width = 1.96 * batch.cost_return.std(ddof=1) / np.sqrt(len(batch.cost_return))
print(f"sampled J_c = {batch.cost_return.mean():.3f} ± {half_width:.3f} (95% CI); exact {solution.cost_value:.3f}")

# Episode-level mixtures: each episode runs one member, drawn once at its start.
uniform = np.full_like(solution.policy, 0.25)
mixture = EpisodeSampler(cmdp, np.stack([solution.policy, uniform]), horizon=100)
batch = mixture.sample(20_000, seed=1, weights=[0.8, 0.2])
exact = 0.8 * np.array(evaluate_policy(cmdp, solution.policy)) + 0.2 * np.array(evaluate_policy(cmdp, uniform))
print(f"mixture: sampled J_r = {batch.reward_return.mean():.2f}, exact {exact[0]:.2f}")

# The same task through the Gymnasium API.
observation, info = env.reset(seed=0, options={"task": task})
observation, reward, terminated, truncated, info = env.step(0)
print("one step:", observation, reward, info)
