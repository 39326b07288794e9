"""OmniSafe's CPO on Ni & Kamgarpour's Half-Cheetah through the bridge: run at a target velocity without rearing up
(a step costs 1 when the head is above 0.9 m). The family reads its limit as OmniSafe does, on the episode sum.
Needs Python 3.10 and the 'omnisafe' extra (which brings MuJoCo).

Usage: python examples/locomotion_omnisafe.py [steps]
"""

import sys

import omnisafe
import torch

from cmdp_envs import Fixed
from cmdp_envs.families.locomotion import LocomotionFamily
from cmdp_envs.wrappers.omnisafe_bridge import omnisafe_custom_cfgs, register_omnisafe_task

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
torch.set_num_threads(1)
family = LocomotionFamily(robot="HalfCheetah", cost="head_height", cost_semantics="undiscounted",
                          cost_limit=Fixed(25.0))
task = family.task(target_velocity=1.0)
env_id = register_omnisafe_task(family, task=task)
cfgs = omnisafe_custom_cfgs("CPO", env_id, total_steps=steps, steps_per_epoch=2000, seed=0, log_dir="omnisafe_runs")
episode_return, episode_cost, episode_length = omnisafe.Agent("CPO", env_id, custom_cfgs=cfgs).learn()
print(f"CPO after {steps} steps: last epoch's episode return {episode_return:.2f} (0 is the target velocity held "
      f"throughout), episode cost {episode_cost:.1f} (limit 25), episode length {episode_length:.0f}")
