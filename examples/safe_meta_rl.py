"""Xu & Zhu's safe meta-RL on a neural policy: meta-train the meta-policy by C-MAML's outer loop with their safe
adaptation step as the inner loop (first-order, the meta-policy kept feasible on every task of each batch), then
adapt it to held-out tasks step by step under the meta-test protocol, every adapted policy checked by Monte Carlo.

Usage: python examples/safe_meta_rl.py [outer_iterations]
"""

import sys

import gymnasium as gym

import cmdp_envs  # noqa: F401
from cmdp_envs.meta.cmaml import CMAML, CMAMLConfig
from cmdp_envs.meta.inner_loops import SB3InnerLoop
from cmdp_envs.meta.safe_adaptation import NeuralAdaptationConfig, SafeAdaptationInnerLoop, xu_zhu_config
from cmdp_envs.meta.test_time import NeuralSafeAdaptation, meta_test

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 10
family = gym.make("cmdp_envs/PointCircleMetaCPO-v0").unwrapped.family  # circle radius and walls vary
tasks = family.sample(8, seed=0)
train_tasks, held_out = tasks[:6], tasks[6:]
short = {"max_episode_steps": 100}  # short episodes keep the example fast
learner = SB3InnerLoop(family, "PPO", n_envs=2, env_kwargs=short, n_steps=100, batch_size=100)  # its actor is pi_phi
step = NeuralAdaptationConfig(n_episodes=2, dual_step=0.1)
meta = CMAML(family, train_tasks, SafeAdaptationInnerLoop(learner, step),
             xu_zhu_config(CMAMLConfig(meta_batch=2, rollout_episodes=4)), seed=0)
for row in meta.run(iterations, progress=False)[-2:]:
    print(f"iteration {row['iteration']:.0f}: meta-policy J_c = {row['meta_cost']:.2f} (largest over the batch "
          f"{row['meta_cost_max']:.2f}, limit {row['cost_limit']:g}), adapted J_r = {row['adapted_return']:.2f}")

for result in meta_test(NeuralSafeAdaptation("xu_zhu", learner, meta.theta, steps=3, config=step), family, held_out,
                        budget=6, seed=0, n_check_episodes=20):
    costs = ", ".join(f"{policy.cost.value:.2f}" for policy in result.executed)
    print(f"held-out task: J_c of the meta-policy and two adapted policies {costs} (limit {result.cost_limit:g}); "
          f"anytime safe (95%, simultaneous): {result.all_verified}")
