"""A new task at every reset, with per-episode cost statistics: the loop of a meta-RL learner."""

import gymnasium as gym

import cmdp_envs  # noqa: F401
from cmdp_envs.wrappers import RecordEpisodeCost, TaskSampling

# Tasks differ in goal cell (reward), unsafe layout and cost limit (constraint) and noise (dynamics).
env = gym.make("cmdp_envs/GridWorldVaried-v0", max_episode_steps=50)
env = TaskSampling(env, seed=0)  # or TaskSampling(env, tasks=[...]) to cycle through a fixed set
env = RecordEpisodeCost(env, gamma=0.9)
env.action_space.seed(0)

for episode in range(5):
    observation, info = env.reset()
    task = info["task"]
    done = False
    while not done:
        observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
        done = terminated or truncated
    stats = info["episode"]
    print(f"goal {task.goal}  noise {task.noise:.3f}  cost limit {task.cost_limit:.2f}  "
          f"return {stats['r']:6.1f}  cost {stats['c']:5.1f}  discounted cost {stats['c_discounted']:.2f}")
