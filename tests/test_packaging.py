"""The installed layout: cmdp_envs.wrappers and cmdp_envs.meta import, bare ``wrappers``/``meta`` never do."""

import subprocess
import sys

import gymnasium as gym

import cmdp_envs


def test_subpackages_import_from_outside_the_repository(tmp_path):
    code = (
        "import importlib.util, cmdp_envs, cmdp_envs.wrappers, cmdp_envs.meta, cmdp_envs.tabular\n"
        "assert importlib.util.find_spec('wrappers') is None, importlib.util.find_spec('wrappers')\n"
        "assert importlib.util.find_spec('meta') is None, importlib.util.find_spec('meta')\n"
        "print(cmdp_envs.wrappers.__name__, cmdp_envs.meta.__name__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["cmdp_envs.wrappers", "cmdp_envs.meta"]


LOCOMOTION_ROBOTS = ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid", "Swimmer")


def test_every_id_is_registered_in_the_namespace():
    ids = cmdp_envs.registered_ids()
    assert ids == ["cmdp_envs/GridWorld-v0", "cmdp_envs/GridWorldVaried-v0", "cmdp_envs/PointNavigation-v0",
                   "cmdp_envs/PointGoal1-v0", "cmdp_envs/PointGoal2-v0", "cmdp_envs/PointGoalArc1-v0",
                   "cmdp_envs/PointGoalArc2-v0", "cmdp_envs/PointButton1-v0", "cmdp_envs/PointButton2-v0",
                   "cmdp_envs/PointCircle1-v0", "cmdp_envs/PointCircle2-v0", "cmdp_envs/PointCircleMetaCPO-v0",
                   *(f"cmdp_envs/{robot}Locomotion-v0" for robot in LOCOMOTION_ROBOTS),
                   "cmdp_envs/HopperNiKamgarpour-v0", "cmdp_envs/HalfCheetahNiKamgarpour-v0",
                   *(f"cmdp_envs/{robot}Velocity-v0" for robot in LOCOMOTION_ROBOTS)]
    for env_id in ids:
        assert env_id in gym.registry
        assert gym.spec(env_id).namespace == "cmdp_envs"


def test_registration_is_idempotent():
    from cmdp_envs.registration import register_all

    register_all()
    register_all()
    assert gym.make("cmdp_envs/GridWorld-v0").unwrapped.family is not None


def test_version_matches_metadata():
    from importlib.metadata import version

    assert version("cmdp-envs") == cmdp_envs.__version__
