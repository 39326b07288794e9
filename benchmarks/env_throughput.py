"""Throughput of the gridworld and the navigation families, measured against references in the same run.

1. Single-env steps per second of ``cmdp_envs/GridWorld-v0`` against Gymnasium's ``FrozenLake-v1`` (both made with
   ``gym.make``, so both carry the same checker and order-enforcing wrappers). Target: ratio >= 1.
2. The batched episode sampler against a per-step Python loop over the same policy and model (one ``rng.choice`` for
   the action and one for the next state per step, the pattern of the paper authors' rollout code). Target: >= 50.
3. Single-env steps per second of ``cmdp_envs/PointGoal1-v0`` against ``SafetyPointGoal1-v0`` (lane B, where
   Safety-Gymnasium is installed), uniformly random actions, resets included (an episode is 1,000 steps).
   Target: >= 30.
4. The native vector env, 1,024 sub-envs of ``PointGoal1-v0`` (each its own sampled task) in one process, on one
   core: total steps per second over a whole episode and the resets that follow it. Target: 1,000,000.
5. SB3 PPO training frames per second on ``SB3VecEnv`` over the native vector env (16 sub-envs) against the same PPO
   on Safety-Gymnasium's env (lane B; one ``DummyVecEnv`` sub-env, as its one-process reference). Reported.
6. Single-env steps per second of each locomotion family (``cmdp_envs/<Robot>Locomotion-v0``, a sampled task)
   against Gymnasium's own robot (both made with ``gym.make``), random actions, resets included. Target: ratio
   >= 0.9 (at most 10% overhead). Needs MuJoCo (the ``mujoco`` extra, or lane B).

Usage: python benchmarks/env_throughput.py [--repeats 3] [--env-steps N] [--ppo-frames N] [--navigation-only]
       [--locomotion-only]
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np

import cmdp_envs  # noqa: F401
from cmdp_envs.tabular import EpisodeSampler, solve_cmdp


def env_steps_per_second(env: gym.Env, n_steps: int, repeats: int) -> float:
    """The best of ``repeats`` runs of ``n_steps`` random actions, resets included. Safety-Gymnasium's step returns
    six values (a cost before the two flags): the flags are the last two but one either way."""
    if isinstance(env.action_space, gym.spaces.Discrete):
        actions = list(np.random.default_rng(0).integers(env.action_space.n, size=n_steps).tolist())
    else:
        low, high = env.action_space.low, env.action_space.high
        actions = list(np.random.default_rng(0).uniform(low, high, size=(n_steps, *env.action_space.shape)))
    best = 0.0
    for _ in range(repeats):
        env.reset(seed=0)
        start = time.perf_counter()
        for action in actions:
            *_, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        best = max(best, n_steps / (time.perf_counter() - start))
    return best


def vector_steps_per_second(num_envs: int, repeats: int) -> float:
    from cmdp_envs.families.navigation import NavigationVectorEnv

    env = NavigationVectorEnv(num_envs, kind="goal")
    env.reset(seed=0, options={"tasks": env.family.sample(num_envs, seed=0)})
    # One episode and a little more, so every sub-env also resets once (next-step autoreset) within the timing.
    n_steps = env.max_episode_steps + 50
    actions = np.random.default_rng(0).uniform(-1, 1, size=(n_steps, num_envs, 2))
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for action in actions:
            env.step(action)
        best = max(best, n_steps * num_envs / (time.perf_counter() - start))
    return best


def ppo_frames_per_second(vec_env, n_steps: int) -> float:
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", vec_env, n_steps=max(64, 2048 // vec_env.num_envs), batch_size=256, seed=0, device="cpu")
    start = time.perf_counter()
    model.learn(n_steps)
    return model.num_timesteps / (time.perf_counter() - start)


def navigation_rows(repeats: int, env_steps: int, ppo_frames: int) -> list[tuple[str, float, str, float | None, float]]:
    """Rows 3-5; the Safety-Gymnasium references are ``None`` where it is not installed (lane A)."""
    import importlib.util

    from cmdp_envs.families.navigation import NavigationVectorEnv

    try:
        from cmdp_envs.wrappers import SB3VecEnv
    except ImportError:
        SB3VecEnv = None  # noqa: N806 - SB3 missing: row 5 is skipped
    has_safety_gymnasium = importlib.util.find_spec("safety_gymnasium") is not None
    ours = env_steps_per_second(gym.make("cmdp_envs/PointGoal1-v0"), min(env_steps, 20_000), repeats)
    reference = None
    if has_safety_gymnasium:
        import safety_gymnasium

        # Whole episodes (three at the default size): each reset rebuilds and recompiles the MuJoCo model, as users
        # pay for it.
        reference = env_steps_per_second(safety_gymnasium.make("SafetyPointGoal1-v0"), min(env_steps, 3_000), 1)
    rows = [("PointGoal1-v0 env steps/s", ours, "SafetyPointGoal1-v0 steps/s", reference, 30.0)]
    vector = vector_steps_per_second(1024, repeats)
    rows.append(("1024-env vector steps/s", vector, "target 1,000,000 steps/s", 1_000_000.0, 1.0))
    if SB3VecEnv is not None:
        native = SB3VecEnv(NavigationVectorEnv(16, kind="goal", autoreset_mode="same_step"))
        ours_ppo = ppo_frames_per_second(native, ppo_frames)
        reference_ppo = None
        if has_safety_gymnasium:
            import safety_gymnasium
            from stable_baselines3.common.vec_env import DummyVecEnv

            from cmdp_envs.wrappers import SafetyGymnasiumToGymnasium

            make = lambda: SafetyGymnasiumToGymnasium(safety_gymnasium.make("SafetyPointGoal1-v0"))  # noqa: E731
            reference_ppo = ppo_frames_per_second(DummyVecEnv([make]), max(ppo_frames // 2, 64))
        rows.append(("PPO frames/s, native vector", ours_ppo, "PPO frames/s, SafetyPointGoal1", reference_ppo, 1.0))
    return rows


def locomotion_rows(repeats: int, env_steps: int) -> list[tuple[str, float, str, float | None, float]]:
    """Row 6, one line per robot; none without MuJoCo."""
    import importlib.util

    if importlib.util.find_spec("mujoco") is None:
        print('locomotion rows skipped: MuJoCo is not installed (pip install "cmdp-envs[mujoco]")')
        return []
    from cmdp_envs.families.locomotion import ROBOTS

    rows = []
    for name, robot in ROBOTS.items():
        ours_env = gym.make(f"cmdp_envs/{name}Locomotion-v0")
        ours_env.unwrapped.set_task(ours_env.unwrapped.family.sample(1, seed=0)[0])
        n_steps = min(env_steps, 20_000)
        # Interleaved, best of each, so that drifting machine load falls on both alike.
        ours = reference = 0.0
        for _ in range(repeats):
            ours = max(ours, env_steps_per_second(ours_env, n_steps, 1))
            reference = max(reference, env_steps_per_second(gym.make(robot.gymnasium_id), n_steps, 1))
        rows.append((f"{name}Locomotion steps/s", ours, f"{robot.gymnasium_id} steps/s", reference, 0.9))
    return rows


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
    parser.add_argument("--ppo-frames", type=int, default=8_192)
    parser.add_argument("--navigation-only", action="store_true", help="only rows 3-5")
    parser.add_argument("--locomotion-only", action="store_true", help="only row 6")
    args = parser.parse_args()
    rows = []
    if not (args.navigation_only or args.locomotion_only):
        rows += gridworld_rows(args)
    if not args.locomotion_only:
        rows += navigation_rows(args.repeats, args.env_steps, args.ppo_frames)
    if not args.navigation_only:
        rows += locomotion_rows(args.repeats, args.env_steps)
    print(f"{'measure':<28} {'value':>12}   {'reference':<31} {'value':>12} {'ratio':>8} {'target':>7}")
    for name, value, reference, reference_value, target in rows:
        if reference_value is None:
            print(f"{name:<28} {value:12,.0f}   {reference:<31} {'(lane B only)':>12}")
            continue
        ratio = value / reference_value
        verdict = "ok" if ratio >= target else "BELOW TARGET"
        print(f"{name:<28} {value:12,.0f}   {reference:<31} {reference_value:12,.0f} {ratio:8.2f} {target:>6g}x  "
              f"{verdict}")


def gridworld_rows(args: argparse.Namespace) -> list[tuple[str, float, str, float | None, float]]:
    ours = env_steps_per_second(gym.make("cmdp_envs/GridWorld-v0"), args.env_steps, args.repeats)
    frozen_lake = env_steps_per_second(gym.make("FrozenLake-v1"), args.env_steps, args.repeats)

    family = gym.make("cmdp_envs/GridWorld-v0").unwrapped.family
    cmdp = family.tabular(family.default_task)
    policy = solve_cmdp(cmdp).policy
    horizon = 100
    loop = python_loop_steps_per_second(cmdp, policy, n_episodes=300, horizon=horizon)
    batched = sampler_steps_per_second(cmdp, policy, n_episodes=20_000, horizon=horizon, repeats=args.repeats)

    return [
        ("GridWorld-v0 env steps/s", ours, "FrozenLake-v1 env steps/s", frozen_lake, 1.0),
        ("batched sampler steps/s", batched, "per-step Python loop steps/s", loop, 50.0),
    ]


if __name__ == "__main__":
    main()
