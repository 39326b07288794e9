"""OmniSafe's PPOLag on PointGoal1 through the bridge, with several envs (OmniSafe's own custom-env path fails there,
its issue #380): the bridge steps the family's native vector env in one call. The family reads its limit as OmniSafe
does, on the episode sum (25 per episode). Needs Python 3.10 and the 'omnisafe' extra."""

import sys

import omnisafe
import torch

from cmdp_envs import Fixed
from cmdp_envs.families.navigation import GoalFamily
from cmdp_envs.wrappers.omnisafe_bridge import omnisafe_custom_cfgs, register_omnisafe_task

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
torch.set_num_threads(1)
family = GoalFamily(cost_semantics="undiscounted", cost_limit=Fixed(25.0))
env_id = register_omnisafe_task(family, task=family.default_task)
cfgs = omnisafe_custom_cfgs("PPOLag", env_id, total_steps=steps, steps_per_epoch=4000, seed=0,
                            log_dir="omnisafe_runs", train_cfgs={"vector_env_nums": 4})
episode_return, episode_cost, episode_length = omnisafe.Agent("PPOLag", env_id, custom_cfgs=cfgs).learn()
print(f"PPOLag after {steps} steps on 4 envs: last epoch's episode return {episode_return:.2f}, episode cost "
      f"{episode_cost:.1f} (limit 25), episode length {episode_length:.0f}")
