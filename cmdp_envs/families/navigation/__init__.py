"""Safety-Gymnasium-style navigation task families for the point robot, in numpy: Goal (levels 1 and 2, C-MAML's goal
arc), Button (levels 1 and 2) and Circle (levels 1 and 2, Meta-CPO's distribution), as single and native vector
Gymnasium envs.

Modules: :mod:`.robot` (dynamics and sensors), :mod:`.lidar`, :mod:`.layout` (Safety-Gymnasium's placement),
:mod:`.tasks` (tasks and families), :mod:`.world` (``n`` worlds stepped together), :mod:`.env` (the envs),
:mod:`.render`, :mod:`.safety_gymnasium` (reading a live Safety-Gymnasium env, lane B).
"""

from cmdp_envs.families.navigation.env import NavigationEnv, NavigationVectorEnv, RobotState
from cmdp_envs.families.navigation.tasks import (
    ButtonFamily,
    ButtonTask,
    CircleFamily,
    CircleTask,
    GoalFamily,
    GoalTask,
    PointFamily,
    PointTask,
)

__all__ = [
    "NavigationEnv",
    "NavigationVectorEnv",
    "RobotState",
    "GoalFamily",
    "GoalTask",
    "ButtonFamily",
    "ButtonTask",
    "CircleFamily",
    "CircleTask",
    "PointFamily",
    "PointTask",
    "from_safety_gymnasium",
]


def from_safety_gymnasium(env):  # noqa: ANN001, ANN201 - lazy: safety_gymnasium exists in lane B only
    """See :func:`cmdp_envs.families.navigation.safety_gymnasium.from_safety_gymnasium`."""
    from cmdp_envs.families.navigation.safety_gymnasium import from_safety_gymnasium as read

    return read(env)
