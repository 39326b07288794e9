"""cmdp-envs: task families of constrained MDPs as Gymnasium environments.

Importing the package registers every environment id in the ``cmdp_envs`` namespace::

    import gymnasium as gym
    import cmdp_envs

    env = gym.make("cmdp_envs/GridWorld-v0")
    tasks = env.unwrapped.family.sample(3, seed=0)
"""

from cmdp_envs.registration import registered_ids, register_all
from cmdp_envs.task import Choice, ClippedNormal, Fixed, ParameterDistribution, Task, TaskFamily, Uniform

__version__ = "0.1.0"

__all__ = [
    "Task",
    "TaskFamily",
    "ParameterDistribution",
    "ClippedNormal",
    "Uniform",
    "Choice",
    "Fixed",
    "registered_ids",
    "__version__",
]

register_all()
