"""Misuse of every env, wrapper and command: each bad input raises a clear exception naming the value and the accepted
range, before any state changes."""

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import cmdp_envs  # noqa: F401  (registers the ids)
from cmdp_envs.cli import main
from cmdp_envs.families.gridworld import GridWorldEnv, GridWorldFamily
from cmdp_envs.families.point_navigation import PointNavigationEnv, PointNavigationFamily
from cmdp_envs.validation import check_cost, check_discrete_action, check_number, check_reset_options
from cmdp_envs.wrappers import CostFunction, LagrangianReward, RecordEpisodeCost, TaskSampling

ENV_CLASSES = [GridWorldEnv, PointNavigationEnv]


def env_state(env: gym.Env) -> tuple:
    """What a refused call must leave untouched: the task, the agent's state and the generator."""
    base = env.unwrapped
    state = base._state if isinstance(base, GridWorldEnv) else tuple(base._position)
    return base.task, state, repr(base.np_random.bit_generator.state)


class ScriptedCostEnv(gym.Env):
    """Reports ``info["cost"] = costs[t]`` at step ``t`` (0-based) of every episode: an inner env that misbehaves on
    cue."""

    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, costs):
        self.costs = list(costs)
        self._t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return 0, {}

    def step(self, action):
        cost = self.costs[self._t]
        self._t += 1
        return 0, 1.0, False, self._t == len(self.costs), {"cost": cost}


# The helpers -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, kwargs, message",
    [
        ("0.9", {"low": 0.0, "high": 1.0}, r"x must be a real number in \[0.0, 1.0\], got '0.9' \(str\)"),
        (True, {}, r"x must be a real number in \(-inf, inf\), got True \(bool\)"),
        (np.bool_(False), {}, r"\(bool_?\)"),
        (None, {"low": 0.0}, r"x must be a real number in \[0.0, inf\), got None \(NoneType\)"),
        (math.nan, {}, "got nan"),
        (math.inf, {"low": 0.0}, r"\[0.0, inf\), got inf"),
        (1.0, {"low": 0.0, "high": 1.0, "high_open": True}, r"\[0.0, 1.0\), got 1.0"),
        (0.0, {"low": 0.0, "low_open": True}, r"\(0.0, inf\), got 0.0"),
        (np.array([0.5]), {}, r"got array\(\[0.5\]\) \(ndarray\)"),
    ],
)
def test_check_number_refuses(value, kwargs, message):
    with pytest.raises(ValueError, match=message):
        check_number("x", value, **kwargs)


def test_check_number_accepts_and_converts():
    assert check_number("x", np.float32(0.5), 0.0, 1.0) == 0.5 and type(check_number("x", 3)) is float
    assert check_number("x", math.inf, 0.0, math.inf) == math.inf, "an infinite bound that is closed admits infinity"


def test_check_discrete_action():
    space = gym.spaces.Discrete(3, start=1)
    assert check_discrete_action(space, np.int64(3)) == 3 and check_discrete_action(space, np.array(1)) == 1
    for bad in (0, 4, 2.0, np.array([2]), True, "1"):
        with pytest.raises(ValueError, match=r"action must be an int in \[1, 3\]"):
            check_discrete_action(space, bad)


def test_check_reset_options():
    assert check_reset_options(None, ("task",)) == {} and check_reset_options({"task": 1}, ("task",)) == {"task": 1}
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['taks'\]; accepted: \['task'\]"):
        check_reset_options({"taks": 1}, ("task",))
    with pytest.raises(TypeError, match="options must be a dict or None, got 'task'"):
        check_reset_options("task", ("task",))


@pytest.mark.parametrize("bad", ["0.5", b"0.5", None, np.array([0.1, 0.2]), np.array([]), -1.0, math.nan, -math.inf,
                                 [0.5], 1j])
def test_check_cost_refuses(bad):
    with pytest.raises(ValueError, match="cost at step 7 of the episode must be a finite real number >= 0"):
        check_cost(bad, "step 7 of the episode")


def test_check_cost_accepts_numbers_size_one_arrays_and_indicators():
    assert check_cost(np.array([0.5]), "x") == 0.5 and check_cost(np.float32(2), "x") == 2.0
    assert check_cost(np.bool_(True), "x") == 1.0 and check_cost(False, "x") == 0.0


# 1. Boolean actions ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_class", ENV_CLASSES)
@pytest.mark.parametrize("action", [True, np.bool_(True), np.bool_(False)])
def test_boolean_actions_are_refused(env_class, action):
    env = env_class()
    env.reset(seed=0)
    before = env_state(env)
    with pytest.raises(ValueError, match=r"action must be an int in \[0, 3\], got .*\(bool_?\)"):
        env.step(action)
    assert env_state(env) == before


# 2. Unknown reset options ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["cmdp_envs/GridWorld-v0", "cmdp_envs/PointNavigation-v0"])
def test_a_misspelt_reset_option_is_refused_and_changes_nothing(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    for _ in range(3):
        env.step(1)
    before = env_state(env)
    other = env.unwrapped.family.sample(1, seed=1)[0]
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['taks'\]; accepted: \['task'\]"):
        env.reset(seed=5, options={"taks": other})
    assert env_state(env) == before, "the env still runs its previous episode on its previous task"
    env.step(1)
    assert env.reset(options={})[1]["task"] == before[0], "an empty options dict (Gymnasium's env checker) is fine"


def test_task_sampling_refuses_a_misspelt_reset_option_before_drawing():
    env = TaskSampling(gym.make("cmdp_envs/GridWorld-v0"), seed=0)
    env.reset(seed=0)
    rng_state = repr(env._task_rng.bit_generator.state)
    before = env_state(env)
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['taks'\]; accepted: \['task'\]"):
        env.reset(seed=3, options={"taks": env.unwrapped.task})
    assert repr(env._task_rng.bit_generator.state) == rng_state and env_state(env) == before


def test_vector_envs_still_reset_with_their_own_options():
    # Gymnasium 1.x's vector envs take `reset_mask` out of the options before the sub-envs see them.
    vector = gym.vector.SyncVectorEnv([lambda: TaskSampling(gym.make("cmdp_envs/GridWorld-v0"), seed=0)] * 2)
    vector.reset(seed=0, options={})
    if hasattr(gym.vector, "AutoresetMode"):
        vector.reset(options={"reset_mask": np.array([True, False])})


# 3. CostFunction ---------------------------------------------------------------------------------------------------


def test_cost_function_refuses_a_string_naming_value_and_type():
    env = CostFunction(gym.make("CartPole-v1"), lambda *args: "0.5")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"cost at step 1 of the episode \(returned by cost_fn\).*got '0.5' \(str\)"):
        env.step(0)


@pytest.mark.parametrize("failure", ["raises", "returns nan"])
def test_a_failed_cost_breaks_the_episode_until_reset(failure):
    seen = []

    def cost_fn(observation, action, next_observation, info):
        seen.append(observation.copy())
        if len(seen) == 2:
            if failure == "raises":
                raise ZeroDivisionError("user bug")
            return math.nan
        return 0.0

    env = CostFunction(gym.make("CartPole-v1"), cost_fn)
    env.reset(seed=0)
    env.step(0)
    with pytest.raises((ZeroDivisionError, ValueError)):
        env.step(0)
    with pytest.raises(RuntimeError, match=r"call reset\(\)"):
        env.step(0)  # the next cost_fn call would see a stale observation
    assert len(seen) == 2
    observation, _ = env.reset(seed=1)
    env.step(0)
    np.testing.assert_array_equal(seen[-1], observation)


# 4. Bad costs from the inner env ---------------------------------------------------------------------------------


@pytest.mark.parametrize("wrapper", [RecordEpisodeCost, LagrangianReward])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.5])
def test_bad_inner_costs_are_refused_naming_the_step(wrapper, bad):
    env = wrapper(ScriptedCostEnv([0.0, 1.0, bad, 0.0]))
    for _ in range(2):  # the step count restarts with every episode
        env.reset(seed=0)
        env.step(0)
        env.step(0)
        with pytest.raises(ValueError, match=rf"cost at step 3 of the episode .*got {bad!r}"):
            env.step(0)
        if wrapper is RecordEpisodeCost:
            with pytest.raises(RuntimeError, match=r"call reset\(\)"):
                env.step(0)  # the episode's sums miss the refused step


@pytest.mark.parametrize("bad", [math.nan, -0.5, "0.5"])
def test_the_safety_gymnasium_adapter_refuses_bad_costs(bad):
    from cmdp_envs.wrappers import GymnasiumToSafetyGymnasium

    env = GymnasiumToSafetyGymnasium(ScriptedCostEnv([0.0, bad]))
    env.reset(seed=0)
    assert env.step(0)[2] == 0.0
    with pytest.raises(ValueError, match="cost at this step"):
        env.step(0)


# 5. TaskSampling's task list -------------------------------------------------------------------------------------


def test_task_sampling_task_list_misuse(paper_family, varied_family):
    task = paper_family.default_task
    with pytest.raises(TypeError, match=r"got a single task .*; pass a list of tasks, e.g. tasks=\[task\]"):
        TaskSampling(gym.make("cmdp_envs/GridWorld-v0"), tasks=task)
    with pytest.raises(ValueError, match="tasks must not be empty"):
        TaskSampling(gym.make("cmdp_envs/GridWorld-v0"), tasks=[])
    with pytest.raises(TypeError, match=r"tasks\[1\] must be a Task, got \{'noise': 0.3\}"):
        TaskSampling(gym.make("cmdp_envs/GridWorld-v0"), tasks=[task, {"noise": 0.3}])
    with pytest.raises(ValueError, match=r"tasks\[2\]: .*fixed at"):
        TaskSampling(gym.make("cmdp_envs/GridWorld-v0"), tasks=[task, task, varied_family.task(goal=(0, 6))])
    with pytest.raises(TypeError, match="tasks must be a list of tasks or None, got 3"):
        TaskSampling(gym.make("cmdp_envs/GridWorld-v0"), tasks=3)


# 6. Non-numeric gamma --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["0.9", None, True, math.nan])
@pytest.mark.parametrize("build", [GridWorldFamily, PointNavigationFamily, GridWorldFamily.varied],
                         ids=["GridWorldFamily", "PointNavigationFamily", "GridWorldFamily.varied"])
def test_family_gamma_must_be_a_number(build, bad):
    with pytest.raises(ValueError, match=r"gamma must be a real number in \[0.0, 1.0\), got"):
        build(gamma=bad)


@pytest.mark.parametrize("bad", ["0.9", True, math.nan, 1.5])
def test_record_episode_cost_gamma_must_be_a_number_or_none(bad):
    with pytest.raises(ValueError, match=r"gamma \(or None\) must be a real number in \[0.0, 1.0\], got"):
        RecordEpisodeCost(gym.make("CartPole-v1"), gamma=bad)


@pytest.mark.parametrize("bad", ["0.9", None, True])
def test_sb3_lagrangian_gamma_must_be_a_number(bad):
    pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in the 'sb3' extra")
    from cmdp_envs.meta.sb3_lagrangian import lagrangian_env, lagrangian_learner

    with pytest.raises(ValueError, match=r"gamma must be a real number in \[0.0, 1.0\], got"):
        lagrangian_env(gym.make("cmdp_envs/GridWorld-v0"), gamma=bad)
    with pytest.raises(ValueError, match=r"gamma must be a real number in \[0.0, 1.0\], got"):
        lagrangian_learner("PPO", "cmdp_envs/GridWorld-v0", cost_limit=1.5, gamma=bad)


# 7. Unknown keyword arguments of gym.make ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env_id, names",
    [
        ("cmdp_envs/GridWorld-v0", ["GridWorldEnv", "cmdp_envs/GridWorld-v0", "cmdp_envs/GridWorldVaried-v0",
                                    "'observation_type'", "'noise_model'", "'gamma'"]),
        ("cmdp_envs/GridWorldVaried-v0", ["GridWorldEnv", "'unsafe_cells'"]),
        ("cmdp_envs/PointNavigation-v0", ["PointNavigationEnv", "cmdp_envs/PointNavigation-v0", "'render_mode'",
                                          "'hazard_radius'", "'gamma'"]),
    ],
)
def test_unknown_make_arguments_name_the_env_and_the_accepted_ones(env_id, names):
    with pytest.raises(TypeError, match=r"got unexpected keyword argument\(s\) \['bad_kwarg'\]") as error:
        gym.make(env_id, bad_kwarg=1)
    for name in names:
        assert name in str(error.value)


# 8. The command line ---------------------------------------------------------------------------------------------


def test_cli_nan_task_parameter_reaches_the_familys_check(capsys):
    assert main(["solve", "cmdp_envs/GridWorld-v0", "--task", "noise=nan"]) == 2
    assert "task parameter 'noise' must be finite, got nan" in capsys.readouterr().err
    assert main(["solve", "cmdp_envs/GridWorldVaried-v0", "--task", "cost_limit=-inf"]) == 2
    assert "'cost_limit' must be finite, got -inf" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["reproduce", "gridworld", "--seed", "-1"], "--seed"),
        (["reproduce", "gridworld", "--seed", "1.5"], "--seed"),
        (["compare", "--algos", "SB3-PPOLag", "--env", "cmdp_envs/GridWorld-v0", "--steps", "0", "--out", "x"],
         "--steps"),
        (["compare", "--algos", "SB3-PPOLag", "--env", "cmdp_envs/GridWorld-v0", "--steps", "10", "--seeds", "0",
          "--out", "x"], "--seeds"),
    ],
)
def test_cli_counts_are_checked_by_argparse(argv, flag, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be an int >= " in err and "Traceback" not in err
    assert not list(tmp_path.iterdir()), "nothing was written"


def test_cli_reproduce_cmaml_refuses_an_unknown_id_or_learner_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "cmaml", "--env", "cmdp_envs/Nope-v0"]) == 2
    assert "unknown environment id 'cmdp_envs/Nope-v0'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "cmaml", "--inner", "SAC"])
    assert exit_.value.code == 2 and "argument --inner: invalid choice: 'SAC'" in capsys.readouterr().err
    assert main(["reproduce", "cmaml", "--setting", "ours"]) == 2
    assert "--setting is an option of reproduce gridworld, not of reproduce cmaml" in capsys.readouterr().err
    assert main(["reproduce", "gridworld", "--robot", "hopper"]) == 2
    assert "--robot is an option of reproduce locomotion, not of reproduce gridworld" in capsys.readouterr().err
    assert main(["reproduce", "locomotion", "--env", "point-circle"]) == 2
    assert "--env is an option of reproduce cmaml and safe-meta-rl" in capsys.readouterr().err
    assert main(["reproduce", "safe-meta-rl", "--env", "point-goal"]) == 2
    assert "env must be one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["reproduce", "gridworld", "--setting", "theirs"])
    assert "invalid choice: 'theirs'" in capsys.readouterr().err
    assert not list(tmp_path.iterdir()), "nothing was written"
    # OmniSafe's learners: outside lane B the missing extra is named; in lane B its Gaussian actors refuse the
    # gridworld's discrete actions. Either way before any training, and without a traceback.
    assert main(["reproduce", "cmaml", "--inner", "TRPOLag", "--env", "cmdp_envs/GridWorld-v0"]) == 2
    err = capsys.readouterr().err
    assert ("omnisafe" in err or "discrete actions" in err) and "Traceback" not in err, err
    assert not list(tmp_path.glob("**/summary.json"))


def test_cli_reproduce_offers_every_inner_loop():
    from cmdp_envs.cli import build_parser
    from cmdp_envs.meta.reproduce.cmaml import INNER_LOOPS

    (reproduce,) = [action for action in build_parser()._subparsers._group_actions[0].choices["reproduce"]._actions
                    if action.dest == "inner"]
    assert list(reproduce.choices) == list(INNER_LOOPS)


def out_commands(out: str) -> list[list[str]]:
    return [
        ["solve", "cmdp_envs/GridWorld-v0", "--out", out],
        ["compare", "--algos", "SB3-PPOLag", "--env", "cmdp_envs/GridWorld-v0", "--steps", "10", "--out", out],
        ["reproduce", "gridworld", "--quick", "--out", out],
    ]


@pytest.mark.parametrize("command", [0, 1, 2], ids=["solve", "compare", "reproduce"])
def test_cli_out_under_a_regular_file_fails_before_any_work(command, tmp_path, capsys):
    regular = tmp_path / "results.txt"
    regular.write_text("not a directory")
    out = str(regular / "run")
    assert main(out_commands(out)[command]) == 2
    captured = capsys.readouterr()
    assert captured.out == "", "no work was done"
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and f"--out {out!r}" in lines[0] and "not a directory" in lines[0].lower()
    assert regular.read_text() == "not a directory"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="as root (CI, this machine) a read-only mode does not stop writes")
@pytest.mark.parametrize("command", [0, 1, 2], ids=["solve", "compare", "reproduce"])
def test_cli_out_in_a_read_only_directory_fails_before_any_work(command, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for out in (locked, locked / "run"):  # an existing directory, and one that cannot be created
            assert main(out_commands(str(out))[command]) == 2
            captured = capsys.readouterr()
            assert captured.out == "" and f"--out {str(out)!r}" in captured.err
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("root", ["/proc", "/sys"])
def test_cli_out_on_a_pseudo_filesystem_fails_before_any_work(root, capsys):
    # Even root cannot create directories at the top of procfs and sysfs.
    if not (sys.platform.startswith("linux") and Path(root).is_dir()):
        pytest.skip(f"{root} is Linux's")
    out = f"{root}/cmdp-envs-out"
    assert main(out_commands(out)[0]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and f"--out {out!r}" in captured.err and not Path(out).exists()


def test_cli_out_probe_leaves_nothing_behind(tmp_path, capsys):
    out = tmp_path / "new" / "run"
    assert main(["solve", "cmdp_envs/GridWorld-v0", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["policy.png", "solution.json"]


def test_installed_script_refuses_a_bad_out(tmp_path):
    script = Path(sys.executable).parent / "cmdp-envs"
    if not script.exists():
        script = shutil.which("cmdp-envs")
    if script is None:
        pytest.skip("the cmdp-envs script is not installed")
    regular = tmp_path / "file"
    regular.write_text("")
    result = subprocess.run([str(script), "reproduce", "gridworld", "--out", str(regular / "run")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "cmdp-envs reproduce: error: --out" in result.stderr
