"""Train OmniSafe's PPOLag on a cmdp_envs task through the bridge and evaluate the result exactly.
Needs Python 3.10 and the 'omnisafe' extra: pip install "cmdp-envs[omnisafe]"."""

import sys

import gymnasium as gym
import omnisafe
import torch

import cmdp_envs  # noqa: F401
from cmdp_envs.meta.policies import tabular_policy_from_omnisafe
from cmdp_envs.tabular import evaluate_policy
from cmdp_envs.wrappers.omnisafe_bridge import omnisafe_custom_cfgs, register_omnisafe_task

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
torch.set_num_threads(1)
family = gym.make("cmdp_envs/GridWorld-v0").unwrapped.family
task = family.task(noise=0.25)
# A fixed-task OmniSafe id works for every algorithm (env_cfgs only exist for PPOLag); costs are reported as
# gamma^t c_t so OmniSafe's episode-cost constraint is our discounted one, with the task's limit. Passing the family
# (not its id) makes OmniSafe train on exactly the family evaluated below.
env_id = register_omnisafe_task(family, task=task)
cfgs = omnisafe_custom_cfgs("PPOLag", env_id, total_steps=steps, steps_per_epoch=2000, seed=0, log_dir="omnisafe_runs")
agent = omnisafe.Agent("PPOLag", env_id, custom_cfgs=cfgs)
agent.learn()

policy = tabular_policy_from_omnisafe(agent.agent._actor_critic.actor, n_states=49)
reward_value, cost_value = evaluate_policy(family.tabular(task), policy.probabilities)
print(f"PPOLag after {steps} steps: exact J_r = {reward_value:.2f}, J_c = {cost_value:.3f} (limit {task.cost_limit})")
