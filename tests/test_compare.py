"""`cmdp-envs compare`: OmniSafe (lane B) and SB3 Lagrangian learners (both lanes) through one protocol."""

import importlib.util
import json

import pytest

from cmdp_envs.cli import main

HAS_SB3 = importlib.util.find_spec("stable_baselines3") is not None
HAS_OMNISAFE = importlib.util.find_spec("omnisafe") is not None


@pytest.fixture(autouse=True)
def one_torch_thread():
    torch = pytest.importorskip("torch", reason="torch comes with the 'sb3' extra")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def check_summary(out, algos, seeds):
    summary = json.loads((out / "summary.json").read_text())
    assert [(run["algo"], run["seed"]) for run in summary["runs"]] == [(a, s) for a in algos for s in range(seeds)]
    for run in summary["runs"]:
        assert run["cost_limit"] == 1.5 and run["evaluation"] == "exact"
        assert run["feasible"] == (run["final_cost"] <= 1.5)
        assert run["wall_seconds"] > 0 and run["curve"], "every run has a learning curve"
        assert run["cost_semantics"] == "discounted"
        assert {"steps", "return", "cost"} <= set(run["curve"][0])
    for png in ("return.png", "cost.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    return summary


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SB3, reason="stable-baselines3 is in the 'sb3' extra")
def test_compare_sb3_learners(tmp_path, capsys):
    argv = ["compare", "--algos", "SB3-PPOLag,SB3-TRPOLag", "--env", "cmdp_envs/GridWorld-v0", "--steps", "1536",
            "--seeds", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    summary = check_summary(tmp_path, ["SB3-PPOLag", "SB3-TRPOLag"], 2)
    assert "SB3-TRPOLag" in capsys.readouterr().out
    # Same seeds, same results.
    assert main([*argv[:-1], str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert [r["final_cost"] for r in again["runs"]] == [r["final_cost"] for r in summary["runs"]]


@pytest.mark.skipif(not HAS_SB3, reason="stable-baselines3 is in the 'sb3' extra")
def test_compare_resumes_an_interrupted_run(tmp_path):
    argv = ["compare", "--algos", "SB3-PPOLag", "--env", "cmdp_envs/GridWorld-v0", "--steps", "1024",
            "--seeds", "2", "--out", str(tmp_path)]
    assert main(argv) == 0
    full = json.loads((tmp_path / "summary.json").read_text())
    # Pretend the run stopped after seed 0, with a marker that survives only if seed 0 is not retrained.
    partial = dict(full, runs=[dict(full["runs"][0], wall_seconds=-1.0)])
    (tmp_path / "summary.json").write_text(json.dumps(partial))
    assert main(argv) == 0
    resumed = json.loads((tmp_path / "summary.json").read_text())
    assert resumed["runs"][0]["wall_seconds"] == -1.0, "seed 0 was kept, not retrained"
    assert resumed["runs"][1]["final_cost"] == full["runs"][1]["final_cost"], "seed 1 was trained again, identically"
    (tmp_path / "summary.json").write_text("{not json")
    assert main(argv) == 2


@pytest.mark.slow
@pytest.mark.skipif(not HAS_OMNISAFE, reason="OmniSafe is in the 'omnisafe' extra (Python 3.10, lane B)")
def test_compare_omnisafe_and_sb3(tmp_path):
    algos = ["PPOLag", "TRPOLag", "CPO", "SB3-PPOLag"]
    assert main(["compare", "--algos", ",".join(algos), "--env", "cmdp_envs/GridWorld-v0", "--steps", "2000",
                 "--seeds", "1", "--out", str(tmp_path), "--task", "noise=0.2"]) == 0
    summary = check_summary(tmp_path, algos, 1)
    assert summary["task"]["noise"] == 0.2


@pytest.mark.skipif(HAS_OMNISAFE, reason="checks the message shown where OmniSafe is missing (lane A)")
def test_compare_explains_a_missing_omnisafe(tmp_path, capsys):
    assert main(["compare", "--algos", "PPOLag", "--env", "cmdp_envs/GridWorld-v0", "--steps", "100",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "omnisafe" in err and "Python 3.10" in err


def test_compare_bad_input(tmp_path, capsys):
    base = ["compare", "--env", "cmdp_envs/GridWorld-v0", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_status:  # argparse refuses it, naming the flag
        main([*base, "--algos", "SB3-PPOLag", "--steps", "0"])
    assert exit_status.value.code == 2
    assert "argument --steps: must be an int >= 1" in capsys.readouterr().err
    assert main([*base, "--algos", ",", "--steps", "10"]) == 2
    assert "at least one algorithm" in capsys.readouterr().err


def test_compare_names_an_unknown_algorithm_before_any_missing_extra(tmp_path, capsys):
    assert main(["compare", "--algos", "SB3-PPOLag,Foo", "--env", "cmdp_envs/GridWorld-v0", "--steps", "10",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "unknown algorithm(s) ['Foo']" in err and "SB3-TRPOLag" in err and "PPOLag" in err
    assert "not installed" not in err
    assert not (tmp_path / "out").exists(), "nothing is created before the names are checked"


@pytest.mark.skipif(not HAS_OMNISAFE, reason="OmniSafe is in the 'omnisafe' extra (Python 3.10, lane B)")
def test_known_omnisafe_names_are_omnisafe_constrained_on_policy_algorithms():
    from omnisafe.algorithms import ALGORITHM2TYPE

    from cmdp_envs.wrappers.omnisafe_bridge import ON_POLICY_ALGORITHMS, cost_limit_keys

    on_policy = {algo for algo, kind in ALGORITHM2TYPE.items() if kind == "on-policy" and cost_limit_keys(algo)}
    assert set(ON_POLICY_ALGORITHMS) == on_policy


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SB3, reason="stable-baselines3 is in the 'sb3' extra")
def test_compare_on_a_navigation_family(tmp_path):
    """A navigation id goes through the same protocol: Monte Carlo evaluation over whole 500-step episodes."""
    argv = ["compare", "--algos", "SB3-PPOLag", "--env", "cmdp_envs/PointCircle1-v0", "--steps", "2048",
            "--seeds", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    (run,) = summary["runs"]
    assert run["evaluation"] == "monte carlo, 95% CI" and run["cost_semantics"] == "discounted"
    assert run["cost_limit"] == 5.0 and run["final_cost_half_width"] > 0
    assert summary["cost_semantics"] == "discounted"
