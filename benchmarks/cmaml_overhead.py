"""C-MAML's meta-training frames per second against its inner learner's own training frames per second, on the same
env and in one process, measured in one run: the meta loop's overhead. Target: at most 20% (ratio >= 0.80).

Frames are env steps. The reference is SB3 PPO-Lagrangian training on one task (the model built once). C-MAML's
outer iterations adapt a fresh copy of the same learner to each task and add the meta policy's and the adapted
policy's rollouts, the gradients and the critic. The ratio counts only the learner's frames in C-MAML's wall time,
so everything the meta loop adds is overhead; the rollout frames (cheap: one network call serves every episode at a
step) are printed beside it. Both run in this process (C-MAML through the serial executor).

Usage: python benchmarks/cmaml_overhead.py [--env cmdp_envs/PointGoalArc1-v0] [--iterations 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym

import cmdp_envs  # noqa: F401
from cmdp_envs.meta.cmaml import CMAML, CMAMLConfig, InnerLoop, fine_tune


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="cmdp_envs/PointGoalArc1-v0")
    parser.add_argument("--iterations", type=int, default=2, help="C-MAML outer iterations per repeat")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n-steps", type=int, default=1000, help="learner rollout length per env")
    args = parser.parse_args()
    family = gym.make(args.env).unwrapped.family
    inner = InnerLoop(family, n_envs=2, n_steps=args.n_steps, batch_size=250 if args.n_steps % 250 == 0 else 64)
    config = CMAMLConfig(meta_batch=2, adaptation_steps=2, rollout_episodes=4)
    tasks = family.sample(4, seed=0)
    learner_rate = meta_learner_rate = meta_rate = 0.0
    updates = args.iterations * config.meta_batch * config.adaptation_steps
    for repeat in range(args.repeats):
        started = time.perf_counter()
        curve = fine_tune(inner, None, tasks[0], updates, seed=repeat)
        learner_rate = max(learner_rate, curve.steps[-1] / (time.perf_counter() - started))
        cmaml = CMAML(family, tasks, inner, config, seed=repeat)
        started = time.perf_counter()
        history = cmaml.run(args.iterations, progress=False)
        seconds = time.perf_counter() - started
        meta_learner_rate = max(meta_learner_rate, updates * args.n_steps * inner.n_envs / seconds)
        meta_rate = max(meta_rate, sum(row["env_steps"] for row in history) / seconds)
    print(f"{'measure':<52}{'frames/s':>10}")
    print(f"{'SB3 PPO-Lagrangian training, one task':<52}{learner_rate:>10,.0f}")
    print(f"{'C-MAML meta-training, learner frames':<52}{meta_learner_rate:>10,.0f}")
    print(f"{'C-MAML meta-training, all frames (with rollouts)':<52}{meta_rate:>10,.0f}")
    ratio = meta_learner_rate / learner_rate
    print(f"ratio {ratio:.2f} (overhead {1 - ratio:.0%}; target: ratio >= 0.80)  {'ok' if ratio >= 0.8 else 'BELOW'}")


if __name__ == "__main__":
    main()
