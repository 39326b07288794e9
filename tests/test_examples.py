"""Every script in examples/ runs as a user would run it, and the benchmark script runs at a tiny size."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
NEEDS = {"ppo_lagrangian.py": ("stable_baselines3", "sb3"), "omnisafe_gridworld.py": ("omnisafe", "omnisafe"),
         "safe_mixture_learned.py": ("stable_baselines3", "sb3"),
         "navigation_ppo_lagrangian.py": ("stable_baselines3", "sb3"), "navigation_omnisafe.py": ("omnisafe", "omnisafe"),
         "cmaml.py": ("stable_baselines3", "sb3"), "meta_test_protocol.py": ("stable_baselines3", "sb3"),
         "safe_meta_rl.py": ("stable_baselines3", "sb3"),
         # Lane A gets MuJoCo from the 'mujoco' extra, lane B through OmniSafe's safety-gymnasium; both have SB3.
         "locomotion_ppo_lagrangian.py": ("mujoco", "mujoco"), "locomotion_omnisafe.py": ("omnisafe", "omnisafe")}
ARGS = {"ppo_lagrangian.py": ["2048"], "omnisafe_gridworld.py": ["2000"], "safe_adaptation.py": ["5"],
        "safe_mixture.py": ["600"], "safe_mixture_learned.py": ["20000", "300"], "navigation.py": ["images"],
        "navigation_ppo_lagrangian.py": ["65536"], "navigation_omnisafe.py": ["8000"], "cmaml.py": ["3"],
        "meta_test_protocol.py": ["1"], "safe_meta_rl.py": ["2"], "locomotion_ppo_lagrangian.py": ["4096"],
        "locomotion_omnisafe.py": ["4000"]}
#: What each script must print (regular expressions, each found in its output): the numbers it exists to show.
EXPECT = {
    "quickstart.py": [r"sampled J_c = \d\.\d{3} ± \d\.\d{3} \(95% CI\); exact 1\.500",
                      r"mixture: sampled J_r = [\d.]+, exact [\d.]+", r"one step: \d+ [\d.]+ \{'cost': [\d.]+\}"],
    "task_sampling.py": [r"(goal \(\d, \d\)  noise 0\.\d{3}  cost limit [\d.]+  return .* discounted cost [\d.]+\n?){5}"],
    "cost_function_cartpole.py": [r"episode 0: length \d+, return \d+, cost \d+, discounted cost [\d.]+"],
    "safety_gymnasium_api.py": [r"Safety-Gymnasium API: \d+ [\d.]+ [\d.]+ False False",
                                r"Gymnasium API: \d+ [\d.]+ False False \{'cost': [\d.]+\}"],
    "oracles.py": [r"J_c = 1\.5000 \(exact\)", r"O_s: one policy with margins .* \(>= xi = 0\.1\) on all 8 tasks",
                   r"O_c\(task 0, task 1, eps=0\.05\): True"],
    "safe_adaptation.py": [r"conservative_exact .*largest J_c = 1\.\d+ \(limit 1\.5\): anytime safe",
                           r"baseline_sampled .*NOT anytime safe"],
    "safe_mixture.py": [r"N = \d+, \|U\| = \d+, doublings = \d+", r"episode   599: candidate \d, alpha = 0\.\d{3}"],
    "ppo_lagrangian.py": [r"after 2048 steps: lambda = [\d.]+, exact J_r = [\d.]+, J_c = [\d.]+ \(limit 1\.5\)"],
    "omnisafe_gridworld.py": [r"PPOLag after 2000 steps: exact J_r = [\d.-]+, J_c = [\d.]+ \(limit 1\.5\)"],
    "navigation.py": [r"layout seeds \[\d+, \d+, \d+\]; first task's goal [\d.-]+, [\d.-]+ and 8 hazards",
                      r"one step: observation \(60,\), reward [\d.-]+, info \{'cost_hazards': 0\.0, 'cost': 0\.0",
                      r"vector env: 256 sub-envs, mean cost over 100 forward-biased random steps [\d.]+",
                      r"wrote images/pointbutton1\.png"],
    "navigation_ppo_lagrangian.py": [r"65536 steps: lambda = [\d.]+, episode return [\d.-]+, episode cost [\d.]+ "
                                     r"\(limit 25\)",
                                     r"after 65536 steps: episode cost [\d.]+ ± [\d.]+ \(95% CI, 64 episodes\) "
                                     r"against the limit 25"],
    "navigation_omnisafe.py": [r"PPOLag after 8000 steps on 4 envs: last epoch's episode return [\d.-]+, episode cost "
                               r"[\d.]+ \(limit 25\), episode length 1000"],
    "cmaml.py": [r"(iteration \d: meta policy J_c = [\d.]+, adapted J_r = [\d.-]+, adapted J_c = [\d.]+ \(limit 1\.5\), "
                 r"lambda = [\d.]+, eta = [\d.]+, V_C\(s0\) = [\d.-]+\n?){3}"],
    "meta_test_protocol.py": [r"(fine-tuning: 6 episodes by 3 policies; last policy's J_c = [\d.]+ ± [\d.]+ \(limit "
                              r"1\.5, 95% for all together\); every executed policy verified: (True|False)\n?){2}",
                              r"(xu_zhu: 6 episodes by 3 policies; last policy's J_c = [\d.]+ ± [\d.]+ .*\n?){2}"],
    "dope.py": [r"DOPE's own warm-up here: K0 = [\d.]+e\+09 episodes",
                r"DOPE, 25000 episodes, warm-up 1000: \d+ plans, regret (\d+) \(pi_s alone: \1\), largest J_c "
                r"0\.\d+ \(limit 1\.5\)",
                r"DOPE\+ \(authors\), 25000 episodes, warm-up 18000: [1-9]\d* plans, regret \d+ \(pi_s alone: \d+\), "
                r"largest J_c [01]\.\d+ \(limit 1\.5\)"],
    "safe_mixture_certified.py": [r"cover: 9 members, value errors calibrated on up to 129 tasks each",
                                  r"certified: regret (\d+), 0 violating mixtures, largest J_c 1\.[0-4]\d* "
                                  r"\(limit 1\.5\), largest alpha 0\.[3-9]\d*",
                                  r"practical: regret \d+, \d+ violating mixtures"],
    "locomotion_ppo_lagrangian.py": [r"task: target velocity 0\.6, control effort limit 50 \(discounted, gamma 0\.99\)",
                                     r"after 4096 steps: lambda = [\d.]+, J_r = [\d.-]+ ± [\d.]+ \(95% CI\), J_c = "
                                     r"[\d.]+ ± [\d.]+ \(95% CI\) \(limit 50\)"],
    "locomotion_omnisafe.py": [r"CPO after 4000 steps: last epoch's episode return [\d.-]+ \(0 is the target velocity "
                               r"held throughout\), episode cost [\d.]+ \(limit 25\), episode length \d+"],
    "safe_meta_rl.py": [r"(iteration \d: meta-policy J_c = [\d.]+ \(largest over the batch [\d.]+, limit 5\), "
                         r"adapted J_r = [\d.-]+\n?){2}",
                         r"(held-out task: J_c of the meta-policy and two adapted policies [\d.]+, [\d.]+, [\d.]+ "
                         r"\(limit 5\); anytime safe \(95%, simultaneous\): (True|False)\n?){2}"],
    # The learned-oracle run must end with every executed mixture verified safe by Monte Carlo.
    "safe_mixture_learned.py": [r"every executed mixture verified feasible \(95%, simultaneous\): True"],
}
#: What each script must write into its working directory.
WRITES = {"safe_adaptation.py": ["safe_adaptation_conservative_exact.json", "safe_adaptation_baseline_sampled.png"],
          "navigation.py": [f"images/point{name}.png" for name in ("goal1", "goal2", "goalarc1", "goalarc2", "button1",
                                                                   "button2", "circle1", "circle2")]}


def run(script: Path, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


#: Examples that train learners for more than a few seconds.
SLOW = {"ppo_lagrangian.py", "omnisafe_gridworld.py", "safe_mixture_learned.py", "safe_adaptation.py",
        "navigation_ppo_lagrangian.py", "navigation_omnisafe.py", "meta_test_protocol.py", "safe_meta_rl.py",
        "locomotion_ppo_lagrangian.py",
        "locomotion_omnisafe.py"}


@pytest.mark.parametrize("script", [pytest.param(p, marks=pytest.mark.slow) if p.name in SLOW else p
                                    for p in EXAMPLES], ids=[p.name for p in EXAMPLES])
def test_example_runs_and_prints_what_it_shows(script, tmp_path):
    if script.name in NEEDS:
        module, extra = NEEDS[script.name]
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{script.name} needs {module}, in the '{extra}' extra")
    result = run(script, ARGS.get(script.name, []), tmp_path)
    assert result.returncode == 0, result.stderr
    for pattern in EXPECT[script.name]:
        assert re.search(pattern, result.stdout), f"{script.name} did not print {pattern!r}:\n{result.stdout}"
    for name in WRITES.get(script.name, []):
        assert (tmp_path / name).stat().st_size > 0, f"{script.name} did not write {name}"


def test_every_example_has_expectations():
    assert {p.name for p in EXAMPLES} == set(EXPECT)


def test_examples_exist_for_every_capability():
    names = {p.name for p in EXAMPLES}
    assert {"quickstart.py", "task_sampling.py", "cost_function_cartpole.py", "safety_gymnasium_api.py",
            "ppo_lagrangian.py", "oracles.py", "omnisafe_gridworld.py", "safe_adaptation.py", "safe_mixture.py",
            "safe_mixture_learned.py", "navigation.py", "navigation_ppo_lagrangian.py",
            "navigation_omnisafe.py", "cmaml.py", "meta_test_protocol.py"} <= names


@pytest.mark.skipif(importlib.util.find_spec("omnisafe") is None,
                    reason="OmniSafe is in the 'omnisafe' extra (Python 3.10, lane B)")
def test_bridge_overhead_benchmark_runs(tmp_path):
    result = run(ROOT / "benchmarks" / "omnisafe_bridge_overhead.py", ["--steps", "2000", "--repeats", "1"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ratio" in result.stdout


def test_throughput_benchmark_runs(tmp_path):
    result = run(ROOT / "benchmarks" / "env_throughput.py",
                 ["--repeats", "1", "--env-steps", "2000", "--ppo-frames", "512"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "FrozenLake-v1" in result.stdout and "ratio" in result.stdout
    assert "PointGoal1-v0 env steps/s" in result.stdout and "1024-env vector steps/s" in result.stdout
    if importlib.util.find_spec("mujoco") is not None:
        assert re.search(r"HumanoidLocomotion steps/s +[\d,]+ +Humanoid-v[45] steps/s +[\d,]+ +[\d.]+", result.stdout)


def test_safe_mixture_benchmark_runs(tmp_path):
    result = run(ROOT / "benchmarks" / "safe_mixture_throughput.py", ["--episodes", "3000", "--loop-episodes", "20"],
                 tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ratio" in result.stdout


@pytest.mark.skipif(importlib.util.find_spec("stable_baselines3") is None, reason="needs the 'sb3' extra")
def test_cmaml_overhead_benchmark_runs(tmp_path):
    result = run(ROOT / "benchmarks" / "cmaml_overhead.py",
                 ["--env", "cmdp_envs/GridWorld-v0", "--iterations", "1", "--repeats", "1", "--n-steps", "200"],
                 tmp_path)
    assert result.returncode == 0, result.stderr
    assert "C-MAML meta-training, all frames" in result.stdout
    assert re.search(r"learner \d+%, rollouts \d+%, the meta loop's own work -?\d+%", result.stdout), result.stdout
