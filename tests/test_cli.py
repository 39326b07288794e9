"""The cmdp-envs command line."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cmdp_envs.cli import main
from cmdp_envs.tabular import evaluate_policy


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "cmdp_envs/GridWorld-v0" in out and "cmdp_envs/GridWorldVaried-v0" in out


def test_describe(capsys):
    assert main(["describe", "cmdp_envs/GridWorldVaried-v0"]) == 0
    out = capsys.readouterr().out
    assert "Discrete(4)" in out and "max episode steps:  200" in out and "cost_limit: Uniform[1.0, 2.0]" in out


def test_solve_prints_and_writes_a_feasible_optimal_policy(tmp_path, capsys, paper_family):
    assert main(["solve", "cmdp_envs/GridWorld-v0", "--task", "noise=0.1", "--task", "noise=0.3",
                 "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("feasible: yes") == 2 and "y=6" in out and "G" in out
    data = json.loads((tmp_path / "solution.json").read_text())
    assert [s["task"]["noise"] for s in data["solutions"]] == [0.1, 0.3]
    for solution in data["solutions"]:
        cmdp = paper_family.tabular(paper_family.task(noise=solution["task"]["noise"]))
        reward_value, cost_value = evaluate_policy(cmdp, np.array(solution["policy"]))
        assert reward_value == pytest.approx(solution["reward_value"], abs=1e-8)
        assert cost_value <= 1.5 + 1e-8
    png = (tmp_path / "policy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert not list(tmp_path.glob(".*tmp")), "no temporary files are left behind"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["solve", "cmdp_envs/GridWorld-v0", "--task", "noise=0.7"], "outside its range [0.0, 0.5]"),
        (["solve", "cmdp_envs/GridWorld-v0", "--task", "noise=0.45"], "smallest achievable discounted cost value"),
        (["solve", "cmdp_envs/GridWorld-v0", "--task", "noise"], "key=value"),
        (["solve", "cmdp_envs/Nope-v0"], "unknown environment id"),
        (["describe", "CartPole"], "unknown environment id"),
    ],
)
def test_errors_exit_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_console_script_is_installed(tmp_path):
    script = shutil.which("cmdp-envs")
    command = [script] if script else [sys.executable, "-m", "cmdp_envs"]
    result = subprocess.run([*command, "list"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0 and "cmdp_envs/GridWorld-v0" in result.stdout
