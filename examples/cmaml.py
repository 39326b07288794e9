"""C-MAML (Daaboul et al.) on the gridworld with SB3 PPO-Lagrangian as the inner loop, a few outer iterations.

Each iteration draws two training tasks, adapts the meta policy to each with PPO-Lagrangian, and takes the
first-order meta step with the safety critic's term. The meta policy is the PPO network's actor, so it loads into
any SB3 PPO model of the same env.

Usage: python examples/cmaml.py [outer_iterations]
"""

import sys

import gymnasium as gym

import cmdp_envs  # noqa: F401
from cmdp_envs.meta.cmaml import CMAML, CMAMLConfig
from cmdp_envs.meta.inner_loops import SB3InnerLoop

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 10
family = gym.make("cmdp_envs/GridWorld-v0").unwrapped.family
train_tasks = family.sample(8, seed=0)
inner = SB3InnerLoop(family, algo="PPO", n_envs=2, n_steps=128, batch_size=64, n_epochs=4)
cmaml = CMAML(family, train_tasks, inner, CMAMLConfig(meta_batch=2, adaptation_steps=2, rollout_episodes=8), seed=0)
for _ in range(iterations):
    row = cmaml.iterate()
    print(f"iteration {row['iteration']:.0f}: meta policy J_c = {row['meta_cost']:.2f}, adapted J_r = "
          f"{row['adapted_return']:.2f}, adapted J_c = {row['adapted_cost']:.2f} (limit {row['cost_limit']:g}), "
          f"lambda = {row['multiplier']:.3f}, eta = {row['eta']:.3f}, V_C(s0) = {row['cost_critic']:.2f}")
