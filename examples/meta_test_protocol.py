"""The meta-test protocol: C-MAML's meta policy tested on held-out tasks two ways, by fine-tuning with its learner
and by Xu & Zhu's safe adaptation step, under one episode budget, with every executed policy checked by Monte Carlo.

Usage: python examples/meta_test_protocol.py [outer_iterations]
"""

import sys

import gymnasium as gym

import cmdp_envs  # noqa: F401
from cmdp_envs.meta.cmaml import CMAML, CMAMLConfig
from cmdp_envs.meta.inner_loops import SB3InnerLoop
from cmdp_envs.meta.safe_adaptation.neural_step import NeuralAdaptationConfig
from cmdp_envs.meta.test_time import LearnerFineTuning, NeuralSafeAdaptation, meta_test

iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 10
family = gym.make("cmdp_envs/GridWorld-v0").unwrapped.family
tasks = family.sample(10, seed=0)
train_tasks, held_out = tasks[:8], tasks[8:]
inner = SB3InnerLoop(family, algo="PPO", n_envs=2, n_steps=200, batch_size=100, n_epochs=4)  # an update: 2 episodes
cmaml = CMAML(family, train_tasks, inner, CMAMLConfig(meta_batch=2, rollout_episodes=8), seed=0)
cmaml.run(iterations, progress=False)

budget = 6  # episodes per held-out task, for every method
methods = [LearnerFineTuning("fine-tuning", inner, cmaml.theta, updates=3),
           NeuralSafeAdaptation("xu_zhu", inner, cmaml.theta, steps=3, config=NeuralAdaptationConfig(n_episodes=2))]
for method in methods:
    for result in meta_test(method, family, held_out, budget, seed=0):
        last = result.executed[-1]
        print(f"{method.name}: {len(result.returns)} episodes by {len(result.executed)} policies; last policy's J_c = "
              f"{last.cost.value:.2f} ± {last.cost.half_width:.2f} (limit {result.cost_limit:g}, "
              f"{result.confidence:.0%} for all together); every executed policy verified: {result.all_verified}")
