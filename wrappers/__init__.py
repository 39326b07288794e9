"""Wrappers for any Gymnasium env: cost signals, task sampling, episode cost statistics, Lagrangian rewards and
Safety-Gymnasium API adapters."""

from cmdp_envs.wrappers.cost_function import CostFunction
from cmdp_envs.wrappers.episode_cost import RecordEpisodeCost
from cmdp_envs.wrappers.lagrangian import LagrangianReward
from cmdp_envs.wrappers.safety_gymnasium_api import GymnasiumToSafetyGymnasium, SafetyGymnasiumToGymnasium
from cmdp_envs.wrappers.task_sampling import TaskSampling

__all__ = [
    "CostFunction",
    "GymnasiumToSafetyGymnasium",
    "LagrangianReward",
    "RecordEpisodeCost",
    "SafetyGymnasiumToGymnasium",
    "TaskSampling",
]
