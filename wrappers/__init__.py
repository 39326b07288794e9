"""Wrappers for any Gymnasium env: cost signals, task sampling, episode cost statistics, Lagrangian rewards and
Safety-Gymnasium API adapters."""

from cmdp_envs.wrappers.cost_function import CostFunction
from cmdp_envs.wrappers.episode_cost import RecordEpisodeCost
from cmdp_envs.wrappers.lagrangian import LagrangianReward
from cmdp_envs.wrappers.safety_gymnasium_api import GymnasiumToSafetyGymnasium, SafetyGymnasiumToGymnasium
from cmdp_envs.wrappers.task_sampling import TaskSampling


def __getattr__(name: str):  # SB3VecEnv needs stable-baselines3 (the 'sb3' extra): imported on first use
    if name == "SB3VecEnv":
        from cmdp_envs.wrappers.sb3_vec_env import SB3VecEnv

        return SB3VecEnv
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "CostFunction",
    "GymnasiumToSafetyGymnasium",
    "LagrangianReward",
    "RecordEpisodeCost",
    "SB3VecEnv",
    "SafetyGymnasiumToGymnasium",
    "TaskSampling",
]
