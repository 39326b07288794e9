"""Use our envs where Safety-Gymnasium's 6-tuple API is expected, and Safety-Gymnasium envs where Gymnasium's is."""

import gymnasium as gym

import cmdp_envs  # noqa: F401
from cmdp_envs.wrappers import GymnasiumToSafetyGymnasium, SafetyGymnasiumToGymnasium

safe_env = GymnasiumToSafetyGymnasium(gym.make("cmdp_envs/GridWorld-v0"))
safe_env.reset(seed=0)
observation, reward, cost, terminated, truncated, info = safe_env.step(0)
print("Safety-Gymnasium API:", observation, reward, cost, terminated, truncated)

# With safety-gymnasium installed, `SafetyGymnasiumToGymnasium(safety_gymnasium.make("SafetyPointGoal1-v0"))` gives a
# Gymnasium 5-tuple env with info["cost"]; here we convert our own 6-tuple env back.
env = SafetyGymnasiumToGymnasium(safe_env)
observation, reward, terminated, truncated, info = env.step(1)
print("Gymnasium API:", observation, reward, terminated, truncated, info)
