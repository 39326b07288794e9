"""Top-view ``rgb_array`` images of a navigation world, drawn with numpy (no display or OpenGL needed)."""

from __future__ import annotations

import math

import numpy as np

from cmdp_envs.families.navigation.lidar import ABSENT, N_BINS
from cmdp_envs.families.navigation.world import N_SENSORS, ButtonWorld, CircleWorld, GoalWorld, PointWorld

__all__ = ["render_world"]

PIXELS = 256
COLOURS = {
    "floor": (245, 245, 240), "hazard": (70, 90, 220), "vase": (0, 170, 170), "goal": (60, 200, 60),
    "robot": (190, 30, 50), "nose": (20, 40, 100), "wall": (230, 150, 40), "button": (240, 170, 30),
    "gremlin": (150, 60, 190),
}


#: Longest lidar ray drawn (a reading of 1), beyond the robot's body, in metres.
LIDAR_RAY = 0.6


def _lidar_groups(world: PointWorld) -> list[str]:
    """The colour of each lidar group of ``world``, in observation order."""
    if isinstance(world, GoalWorld):
        return (["goal"] if not world.family.hidden_goal else []) + ["hazard", "vase"]
    if isinstance(world, ButtonWorld):
        return ["button", "goal", "hazard", "gremlin"]
    return ["goal"]


def render_world(world: PointWorld, index: int, observation: np.ndarray | None = None) -> np.ndarray:
    """A ``PIXELS x PIXELS x 3`` uint8 image of world ``index``, seen from above: hazards blue, vases teal, goal
    green, buttons amber (the goal button inside the green goal disc), gremlins purple, the robot red with its nose
    (heading) dark blue; Circle: the circle green and the walls orange. Given the world's ``observation``, its lidar
    is drawn too: per group and bin a ray from the robot along the bin's middle bearing, as long as the reading
    (:data:`LIDAR_RAY` for 1), in the group's colour (groups side by side within a bin)."""
    family = world.family
    half = family.placement.extents[2] + 0.5 if hasattr(family, "placement") else 2.0
    coordinates = (np.arange(PIXELS) + 0.5) / PIXELS * 2 * half - half
    x, y = np.meshgrid(coordinates, coordinates[::-1])
    image = np.empty((PIXELS, PIXELS, 3), dtype=np.uint8)
    image[:] = COLOURS["floor"]

    def disc(centre, radius: float, colour: str) -> None:
        if centre[0] != ABSENT:
            image[(x - centre[0]) ** 2 + (y - centre[1]) ** 2 <= radius**2] = COLOURS[colour]

    def square(centre, half_size: float, colour: str) -> None:
        if centre[0] != ABSENT:
            image[(np.abs(x - centre[0]) <= half_size) & (np.abs(y - centre[1]) <= half_size)] = COLOURS[colour]

    if isinstance(world, CircleWorld):
        rho = np.hypot(x, y)
        image[np.abs(rho - world.radius[index]) <= 0.02] = COLOURS["goal"]
        wall = world.wall[index]
        image[np.abs(np.abs(x) - wall) <= 0.02] = COLOURS["wall"]
        if family.four_walls:
            image[np.abs(np.abs(y) - wall) <= 0.02] = COLOURS["wall"]
    else:
        for hazard in world.hazards[index]:
            disc(hazard, family.hazard_size, "hazard")
    if isinstance(world, GoalWorld):
        disc(world.goal[index], family.goal_size, "goal")
        for vase in world.vases[index]:
            square(vase, family.vase_size, "vase")
    if isinstance(world, ButtonWorld):
        disc(world.goal[index], 2 * family.button_size, "goal")
        for button in world.buttons[index]:
            disc(button, family.button_size, "button")
        for gremlin in world.gremlins[index]:
            square(gremlin, family.gremlin_size, "gremlin")
    px, py, heading = world.position[:, index]
    if observation is not None:
        readings = np.asarray(observation)[N_SENSORS:].reshape(-1, N_BINS)
        groups = _lidar_groups(world)
        width = 2 * math.pi / N_BINS
        for group, colour in enumerate(groups):
            for bin_, reading in enumerate(readings[group]):
                if reading <= 0:
                    continue
                bearing = heading + width * (bin_ + (group + 1) / (len(groups) + 1))
                end = LIDAR_RAY * reading + 0.1
                dx, dy = math.cos(bearing), math.sin(bearing)
                along = (x - px) * dx + (y - py) * dy
                across = np.abs((y - py) * dx - (x - px) * dy)
                image[(along >= 0.1) & (along <= end) & (across <= 0.012)] = COLOURS[colour]
    disc((px, py), 0.1, "robot")
    disc((px + 0.1 * math.cos(heading), py + 0.1 * math.sin(heading)), 0.05, "nose")
    return image
