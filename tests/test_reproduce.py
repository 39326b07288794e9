"""`cmdp-envs reproduce gridworld`: the whole pipeline at a small budget, verified exactly."""

import json

import pytest

from cmdp_envs.cli import main
from cmdp_envs.meta.reproduce import gridworld

SAFE_BY_CONSTRUCTION = ("safe_mixture_paper_constants", "safe_meta_rl_large_cost_kl", "lb_sgd", "lb_sgd_tuned")


def test_reproduce_writes_summary_figures_and_resumes(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(gridworld.ReproductionConfig, "quick",
                        classmethod(lambda cls, seed=0: cls(n_episodes=3000, seed=seed)))
    assert main(["reproduce", "gridworld", "--quick", "--out", str(tmp_path), "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["methods"]) == set(gridworld.METHODS)
    assert summary["config"]["n_episodes"] == 3000 and summary["config"]["seed"] == 1
    for name, result in summary["methods"].items():
        assert name in printed
        assert {"final_regret_mean", "violating_policies", "max_cost_value", "curve"} <= set(result)
        assert (result["violating_policies"] > 0) == (result["max_cost_value"] > 1.5)
        assert len(result["curve"]["regret"]["mean"]) == len(result["curve"]["episode"])
    for name in SAFE_BY_CONSTRUCTION:
        assert summary["methods"][name]["violating_policies"] == 0, name
    assert summary["methods"]["unsafe_pce"]["violating_policies"] > 0, "PCE runs infeasible candidates"
    assert summary["methods"]["safe_meta_rl"]["violating_policies"] > 0, "the paper's lambda_c = 0.2 is not safe here"
    for png in ("figure2.png", "all_methods.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    # A rerun with the same settings reuses every finished method.
    stamps = {path: path.stat().st_mtime_ns for path in (tmp_path / "methods").iterdir()}
    assert main(["reproduce", "gridworld", "--quick", "--out", str(tmp_path), "--seed", "1"]) == 0
    assert {path: path.stat().st_mtime_ns for path in (tmp_path / "methods").iterdir()} == stamps
    assert json.loads((tmp_path / "summary.json").read_text())["methods"] == summary["methods"]


def test_unknown_method_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown methods"):
        gridworld.run(tmp_path, gridworld.ReproductionConfig(n_episodes=10), methods=["nope"])
