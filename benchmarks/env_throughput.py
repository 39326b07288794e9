"""Throughput of the gridworld, measured against references in the same run.

1. Single-env steps per second of ``cmdp_envs/GridWorld-v0`` against Gymnasium's ``FrozenLake-v1`` (both made with
   ``gym.make``, so both carry the same checker and order-enforcing wrappers). Target: ratio >= 1.
2. The batched episode sampler against a per-step Python loop over the same policy and model (one ``rng.choice`` for
   the action and one for the next state per step, the pattern of the paper authors' rollout code). Target: >= 50.

Usage: python benchmarks/env_throughput.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import cmdp_envs  # noqa: F401
from cmdp_envs.tabular import EpisodeSampler, solve_cmdp


def env_steps_per_second(env_id: str, n_steps: int, repeats: int) -> float:
    env = gym.make(env_id)
    actions = np.random.default_rng(0).integers(env.action_space.n, size=n_steps).tolist()
    best = 0.0
    for _ in range(repeats):
        env.reset(seed=0)
        start = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        best = max(best, n_steps / (time.perf_counter() - start))
    return best


def python_loop_episode(cmdp, policy, horizon: int, rng: np.random.Generator) -> tuple[float, float]:
    """One episode by a per-step Python loop: the discounted return and cost."""
    S, A = cmdp.n_states, cmdp.n_actions
    state = rng.choice(S, p=cmdp.mu)
    reward_return = cost_return = 0.0
    for t in range(horizon):
        action = rng.choice(A, p=policy[state])
        reward_return += cmdp.gamma**t * cmdp.r[state, action]
        cost_return += cmdp.gamma**t * cmdp.c[state, action]
        state = rng.choice(S, p=cmdp.P[state, action])
    return reward_return, cost_return


def python_loop_steps_per_second(cmdp, policy, n_episodes: int, horizon: int) -> float:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(n_episodes):
        python_loop_episode(cmdp, policy, horizon, rng)
    return n_episodes * horizon / (time.perf_counter() - start)


def sampler_steps_per_second(cmdp, policy, n_episodes: int, horizon: int, repeats: int) -> float:
    sampler = EpisodeSampler(cmdp, policy, horizon)
    best = 0.0
    for seed in range(repeats):
        start = time.perf_counter()
        sampler.sample(n_episodes, seed=seed)
        best = max(best, n_episodes * horizon / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--env-steps", type=int, default=200_000)
    args = parser.parse_args()

    ours = env_steps_per_second("cmdp_envs/GridWorld-v0", args.env_steps, args.repeats)
    frozen_lake = env_steps_per_second("FrozenLake-v1", args.env_steps, args.repeats)

    family = gym.make("cmdp_envs/GridWorld-v0").unwrapped.family
    cmdp = family.tabular(family.default_task)
    policy = solve_cmdp(cmdp).policy
    horizon = 100
    loop = python_loop_steps_per_second(cmdp, policy, n_episodes=300, horizon=horizon)
    batched = sampler_steps_per_second(cmdp, policy, n_episodes=20_000, horizon=horizon, repeats=args.repeats)

    rows = [
        ("GridWorld-v0 env steps/s", ours, "FrozenLake-v1 env steps/s", frozen_lake, 1.0),
        ("batched sampler steps/s", batched, "per-step Python loop steps/s", loop, 50.0),
    ]
    print(f"{'measure':<28} {'value':>12}   {'reference':<30} {'value':>12} {'ratio':>8} {'target':>7}")
    for name, value, reference, reference_value, target in rows:
        ratio = value / reference_value
        verdict = "ok" if ratio >= target else "BELOW TARGET"
        print(f"{name:<28} {value:12,.0f}   {reference:<30} {reference_value:12,.0f} {ratio:8.1f} {target:>6.0f}x  {verdict}")


if __name__ == "__main__":
    main()
