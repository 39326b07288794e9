"""The navigation families: Safety-Gymnasium's point-robot tasks as task families, in numpy.

Makes each registered navigation env, draws tasks (layouts by Safety-Gymnasium's own placement procedure, so a
layout seed gives its exact layout), steps a native vector env where every sub-env has its own task, and saves a
top-view picture of each family (pass a folder to choose where; README's pictures come from this script).
"""

import sys
from pathlib import Path

import gymnasium as gym
import matplotlib.image
import numpy as np

import cmdp_envs
from cmdp_envs.families.navigation import NavigationVectorEnv

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
out.mkdir(parents=True, exist_ok=True)

env = gym.make("cmdp_envs/PointGoal1-v0")
family = env.unwrapped.family
tasks = family.sample(3, seed=0)                         # frozen values: layout, dynamics scales, cost limit
print(f"layout seeds {family.layout_seeds(3, seed=0)}; first task's goal {tasks[0].goal[0]:.3f}, "
      f"{tasks[0].goal[1]:.3f} and {len(tasks[0].hazards)} hazards")
same = family.task(layout_seed=7)                        # Safety-Gymnasium's layout of reset(seed=7)
obs, info = env.reset(seed=0, options={"task": same})
obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0]))
print(f"one step: observation {obs.shape}, reward {reward:.4f}, info {info}")

# Every sub-env its own task (a list is cycled over the sub-envs); autoreset on the next step, as Gymnasium 1.x does.
vector = NavigationVectorEnv(256, kind="goal", family=family)
obs, _ = vector.reset(seed=0, options={"tasks": family.sample(16, seed=1)})
rng = np.random.default_rng(0)
costs = np.zeros(256)
for _ in range(100):
    obs, rewards, terminated, truncated, infos = vector.step(rng.uniform([0, -1], [1, 1], (256, 2)))
    costs += infos["cost"]
print(f"vector env: {obs.shape[0]} sub-envs, mean cost over 100 forward-biased random steps {costs.mean():.2f}")

for env_id in cmdp_envs.registered_ids():
    name = env_id.split("/")[1]
    if not name.startswith(("PointGoal", "PointButton", "PointCircle")):
        continue
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    path = out / f"{name.removesuffix('-v0').lower()}.png"
    matplotlib.image.imsave(path, env.render())
    print(f"wrote {path}")
