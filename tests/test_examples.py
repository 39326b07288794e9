"""Every script in examples/ runs as a user would run it, and the benchmark script runs at a tiny size."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
NEEDS = {"ppo_lagrangian.py": ("stable_baselines3", "sb3"), "omnisafe_gridworld.py": ("omnisafe", "omnisafe"),
         "safe_mixture_learned.py": ("stable_baselines3", "sb3")}
ARGS = {"ppo_lagrangian.py": ["2048"], "omnisafe_gridworld.py": ["2000"], "safe_adaptation.py": ["5"],
        "safe_mixture.py": ["600"], "safe_mixture_learned.py": ["20000", "300"]}
#: What a script must print: the learned-oracle run must end with every executed mixture verified safe by Monte Carlo.
EXPECT = {"safe_mixture_learned.py": "every executed mixture verified feasible (95%, simultaneous): True"}


def run(script: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(script, tmp_path):
    if script.name in NEEDS:
        module, extra = NEEDS[script.name]
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{script.name} needs {module}, in the '{extra}' extra")
    result = run(script, ARGS.get(script.name, []), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip(), "an example prints what it shows"
    assert EXPECT.get(script.name, "") in result.stdout


def test_examples_exist_for_every_capability():
    names = {p.name for p in EXAMPLES}
    assert {"quickstart.py", "task_sampling.py", "cost_function_cartpole.py", "safety_gymnasium_api.py",
            "ppo_lagrangian.py", "oracles.py", "omnisafe_gridworld.py", "safe_adaptation.py", "safe_mixture.py",
            "safe_mixture_learned.py"} <= names


@pytest.mark.skipif(importlib.util.find_spec("omnisafe") is None,
                    reason="OmniSafe is in the 'omnisafe' extra (Python 3.10, lane B)")
def test_bridge_overhead_benchmark_runs(tmp_path):
    result = run(ROOT / "benchmarks" / "omnisafe_bridge_overhead.py", ["--steps", "2000", "--repeats", "1"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ratio" in result.stdout


def test_throughput_benchmark_runs(tmp_path):
    result = run(ROOT / "benchmarks" / "env_throughput.py", ["--repeats", "1", "--env-steps", "2000"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "FrozenLake-v1" in result.stdout and "ratio" in result.stdout


def test_safe_mixture_benchmark_runs(tmp_path):
    result = run(ROOT / "benchmarks" / "safe_mixture_throughput.py", ["--episodes", "3000", "--loop-episodes", "20"],
                 tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ratio" in result.stdout
