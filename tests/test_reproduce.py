"""`cmdp-envs reproduce gridworld`: the whole pipeline at a small budget, verified exactly."""

import json

import pytest

from cmdp_envs.cli import main
from cmdp_envs.meta.reproduce import gridworld

#: Methods whose every executed policy stays feasible here: pi_s alone, or steps too small to leave its neighbourhood.
STAY_FEASIBLE = ("safe_mixture_paper_constants", "safe_meta_rl_large_cost_kl", "lb_sgd")


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(gridworld.ReproductionConfig, "quick",
                        classmethod(lambda cls, seed=0: cls(n_episodes=3000, seed=seed)))


def method_stamps(out):
    return {path.name: path.stat().st_mtime_ns for path in (out / "methods").iterdir()}


def test_reproduce_writes_summary_figures_and_resumes(tmp_path, capsys, quick):
    assert main(["reproduce", "gridworld", "--quick", "--out", str(tmp_path), "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["methods"]) == set(gridworld.METHODS)
    assert summary["config"]["n_episodes"] == 3000 and summary["config"]["seed"] == 1
    methods = summary["methods"]
    for name, result in methods.items():
        assert name in printed
        assert {"final_regret_mean", "violating_policies", "max_cost_value", "curve", "settings"} <= set(result)
        assert len(result["curve"]["regret"]["mean"]) == len(result["curve"]["episode"]) <= 200
        band = result["curve"]["regret"]
        assert band["p10"][-1] - 1e-9 <= result["final_regret_mean"] <= band["p90"][-1] + 1e-9
    for name in STAY_FEASIBLE:
        assert methods[name]["violating_policies"] == 0 and methods[name]["max_cost_value"] <= 1.5, name
    assert methods["unsafe_pce"]["violating_policies"] > 0, "PCE runs infeasible candidates"
    assert methods["safe_meta_rl"]["violating_policies"] > 0, "the paper's lambda_c = 0.2 is not safe here"
    # The mixture moves away from pi_s and so beats running pi_s alone (the paper constants' run).
    assert methods["safe_mixture"]["final_regret_mean"] < methods["safe_mixture_paper_constants"]["final_regret_mean"]
    for png in ("figure2.png", "all_methods.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"

    # A rerun with the same settings reuses every finished method and the covering.
    stamps = method_stamps(tmp_path)
    assert main(["reproduce", "gridworld", "--quick", "--out", str(tmp_path), "--seed", "1"]) == 0
    assert method_stamps(tmp_path) == stamps
    assert json.loads((tmp_path / "summary.json").read_text())["methods"] == methods
    # A method whose settings changed is run again; so is training when pi_s's settings change.
    saved = json.loads((tmp_path / "methods" / "lb_sgd.json").read_text())
    (tmp_path / "methods" / "lb_sgd.json").write_text(json.dumps({**saved, "settings": "other"}))
    main(["reproduce", "gridworld", "--quick", "--out", str(tmp_path), "--seed", "1"])
    changed = {name for name, stamp in method_stamps(tmp_path).items() if stamp != stamps[name]}
    assert changed == {"lb_sgd.json"}


def test_training_is_redone_when_pi_s_settings_change(tmp_path, monkeypatch):
    config = gridworld.ReproductionConfig(n_episodes=10)
    gridworld.run(tmp_path, config, methods=["safe_mixture_paper_constants"])
    stamps = method_stamps(tmp_path)
    monkeypatch.setattr(gridworld, "EXPLORATION", 0.01)
    summary = gridworld.run(tmp_path, config, methods=["safe_mixture_paper_constants"])
    assert len(list((tmp_path / "covering").iterdir())) == 2
    assert summary["config"]["exploration"] == 0.01
    assert method_stamps(tmp_path) != stamps, "results of the old pi_s are not reused"


def test_unknown_method_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown methods"):
        gridworld.run(tmp_path, gridworld.ReproductionConfig(n_episodes=10), methods=["nope"])
