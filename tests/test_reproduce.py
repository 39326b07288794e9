"""`cmdp-envs reproduce gridworld`: the whole pipeline at a small budget, verified exactly."""

import json

import pytest

from cmdp_envs.cli import main
from cmdp_envs.meta.reproduce import gridworld

#: Methods whose every executed policy stays feasible here: pi_s alone, or steps too small to leave its neighbourhood.
STAY_FEASIBLE = ("safe_mixture_paper_constants", "safe_meta_rl_large_cost_kl", "lb_sgd", "safe_mixture_certified")


@pytest.fixture
def quick(monkeypatch):
    monkeypatch.setattr(gridworld.ReproductionConfig, "quick",
                        classmethod(lambda cls, seed=0, setting="authors", executor="local": cls(
                            setting=setting, n_episodes=3000, seed=seed, executor=executor)))


def method_stamps(out):
    return {path.name: path.stat().st_mtime_ns for path in (out / "methods").iterdir()}


@pytest.mark.slow
def test_reproduce_writes_summary_figures_and_resumes(tmp_path, capsys, quick):
    assert main(["reproduce", "gridworld", "--quick", "--out", str(tmp_path), "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["methods"]) == set(gridworld.METHOD_NAMES)
    assert summary["config"]["setting"] == "authors" and summary["training"]["cover_size"] >= 8
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


@pytest.mark.slow
def test_training_is_redone_when_pi_s_settings_change(tmp_path, monkeypatch):
    config = gridworld.ReproductionConfig(setting="ours", n_episodes=10)
    gridworld.run(tmp_path, config, methods=["safe_mixture_paper_constants"])
    stamps = method_stamps(tmp_path)
    monkeypatch.setattr(gridworld, "EXPLORATION", 0.01)
    summary = gridworld.run(tmp_path, config, methods=["safe_mixture_paper_constants"])
    assert len(list((tmp_path / "covering").iterdir())) == 2
    assert summary["config"]["exploration"] == 0.01
    assert method_stamps(tmp_path) != stamps, "results of the old pi_s are not reused"


@pytest.mark.slow
def test_the_two_settings(tmp_path):
    """``authors``: every policy is the regularised optimum, pi_s that of the noise-0.4 task (J_c = 1.5 there), and
    the cover has about ten members, within eps of at least nine of the ten test tasks. ``ours``: LP candidates, an
    exploring pi_s, four members; there the paper's Safe Meta-RL setting (lambda_c = 0.2) breaks the limit."""
    import numpy as np

    from cmdp_envs.families.gridworld import PAPER_TEST_NOISE_LEVELS
    from cmdp_envs.meta.covering import CoveringResult
    from cmdp_envs.tabular import evaluate_policy

    authors = gridworld.run(tmp_path / "authors", gridworld.ReproductionConfig(n_episodes=300), methods=CHEAP)
    training = authors["config"]["training"]
    assert training["learner"] == "entropy_regularised_primal_dual" and authors["config"]["eps"] == 0.005
    cover = np.array(authors["training"]["cover_noise_levels"])
    assert 8 <= len(cover) <= 12
    covered = sum(np.abs(cover - noise).min() <= 0.005 for noise in PAPER_TEST_NOISE_LEVELS)
    assert authors["training"]["test_tasks_covered"] == covered >= 9
    family = gridworld.GridWorldFamily()
    (directory,) = (tmp_path / "authors" / "covering").iterdir()
    pi_s = CoveringResult.load(directory, family).safe_policy.probabilities
    assert evaluate_policy(family.tabular(family.task(noise=0.4)), pi_s)[1] == pytest.approx(1.5, abs=1e-9)
    assert np.all(pi_s > 0)
    # The test tasks ran on two processes; in this process they give the same results.
    serial = gridworld.run(tmp_path / "serial", gridworld.ReproductionConfig(n_episodes=300, executor="serial"),
                           methods=CHEAP)
    assert serial["methods"] == authors["methods"]
    with pytest.raises(ValueError, match="executor must be one of"):
        gridworld.ReproductionConfig(executor="threads")

    ours = gridworld.run(tmp_path / "ours", gridworld.ReproductionConfig(setting="ours", n_episodes=3000),
                         methods=["safe_meta_rl"])
    assert ours["config"]["training"]["learner"] == "exact_lp" and len(ours["training"]["cover_noise_levels"]) == 4
    assert ours["methods"]["safe_meta_rl"]["violating_policies"] > 0, "the paper's lambda_c = 0.2 is not safe here"
    with pytest.raises(ValueError, match="setting must be one of"):
        gridworld.ReproductionConfig(setting="theirs")


def test_unknown_method_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown methods"):
        gridworld.run(tmp_path, gridworld.ReproductionConfig(n_episodes=10), methods=["nope"])


#: Two cheap methods, one of them in Figure 2.
CHEAP = ["safe_mixture", "safe_mixture_paper_constants"]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """An uninterrupted run at a tiny budget: its summary's bytes are what every resumed run must reproduce."""
    out = tmp_path_factory.mktemp("clean")
    gridworld.run(out, gridworld.ReproductionConfig(n_episodes=300), methods=CHEAP)
    return out


def copy_run(source, target):
    import shutil

    shutil.copytree(source, target, dirs_exist_ok=True)
    return target


def rewrite_result(path, **changes):
    """Edit a result file's values and re-sign it, as a careless script would: the value checks must catch it."""
    saved = json.loads(path.read_text())
    saved["result"].update(changes)
    saved["sha256"] = gridworld._digest(saved["result"])
    path.write_text(json.dumps(saved))


@pytest.mark.parametrize("damage, reason", [
    (lambda path: path.write_bytes(path.read_bytes()[:40]), "not valid JSON"),
    (lambda path: path.write_bytes(b""), "empty"),
    (lambda path: path.write_bytes(b"\xff\xfe\x00garbage"), "UTF-8"),
    (lambda path: path.write_text("[1, 2, 3]"), "expected a JSON object"),
    (lambda path: path.write_text('{"result": {}}'), "missing"),
    (lambda path: path.write_text(path.read_text().replace('"format": 3', '"format": 1')), "another version"),
    (lambda path: path.write_text(path.read_text().replace('"final_regret_mean": ', '"final_regret_mean": 1')),
     "checksum"),
    (lambda path: rewrite_result(path, final_regret_mean=float("nan")), "not a finite number"),
    (lambda path: rewrite_result(path, final_regret_per_task=["a"] * 10), "finite numbers"),
    (lambda path: rewrite_result(path, violating_policies=-1), "not a count"),
    (lambda path: rewrite_result(path, description=None), "description"),
])
def test_a_damaged_method_file_is_named_and_recomputed(clean_run, tmp_path, capsys, damage, reason):
    out = copy_run(clean_run, tmp_path / "out")
    path = out / "methods" / "safe_mixture.json"
    damage(path)
    capsys.readouterr()
    gridworld.run(out, gridworld.ReproductionConfig(n_episodes=300), methods=CHEAP)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and str(path) in warnings[0] and reason in warnings[0], warnings
    assert (out / "summary.json").read_bytes() == (clean_run / "summary.json").read_bytes()
    assert path.read_bytes() == (clean_run / "methods" / "safe_mixture.json").read_bytes(), "recomputed, same result"


@pytest.mark.parametrize("name, damage", [
    *[(name, lambda data: data[:30]) for name in ("covering.json", "pi_s.npz", "pi_0.npz", "settings.json")],
    # Values that still parse: a NaN coverage error, a duplicated cover entry. The checksum catches them.
    ("covering.json", lambda data: data.replace(b'"coverage_error": ', b'"coverage_error": NaN, "x": ')),
    ("covering.json", lambda data: data.replace(b'"policy_values": [', b'"policy_values": [' + data[
        data.index(b'"policy_values": [') + 18:data.index(b"}", data.index(b'"policy_values": [')) + 1] + b",")),
])
def test_a_damaged_covering_file_is_named_and_training_redone(clean_run, tmp_path, capsys, name, damage):
    out = copy_run(clean_run, tmp_path / "out")
    (directory,) = (out / "covering").iterdir()
    (directory / name).write_bytes(damage((directory / name).read_bytes()))
    capsys.readouterr()
    gridworld.run(out, gridworld.ReproductionConfig(n_episodes=300), methods=CHEAP)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and name in warnings[0], warnings
    assert (out / "summary.json").read_bytes() == (clean_run / "summary.json").read_bytes()


def test_figures_are_never_left_stale(clean_run, tmp_path):
    out = copy_run(clean_run, tmp_path / "out")
    assert (out / "figure2.png").exists()
    before = (out / "all_methods.png").stat().st_mtime_ns
    # A run of a method outside Figure 2 draws no Figure 2: the old one must not stay beside the new summary.
    gridworld.run(out, gridworld.ReproductionConfig(n_episodes=300), methods=["safe_mixture_paper_constants"])
    assert not (out / "figure2.png").exists()
    assert (out / "all_methods.png").stat().st_mtime_ns > before
    assert list(json.loads((out / "summary.json").read_text())["methods"]) == ["safe_mixture_paper_constants"]


INTERRUPTIBLE = """
import sys
from cmdp_envs.meta.reproduce import gridworld
gridworld.run(sys.argv[1], gridworld.ReproductionConfig(n_episodes=2000), methods={methods!r})
"""


@pytest.mark.slow
def test_runs_interrupted_anywhere_resume_to_identical_bytes(tmp_path):
    """SIGINT at spread-out moments (training, each method, the final writes), each time resuming in the same
    directory, then a run to the end: summary.json is byte-identical to an uninterrupted run's, and an interrupted
    run never leaves a broken summary."""
    import signal
    import subprocess
    import sys
    import time

    methods = ["safe_mixture", "safe_meta_rl_large_cost_kl", "lb_sgd"]
    script = INTERRUPTIBLE.format(methods=methods)
    reference = tmp_path / "reference"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script, str(reference)], check=True, capture_output=True)
    duration = time.perf_counter() - started
    resumed = tmp_path / "resumed"
    interrupted = 0
    for fraction in (0.15, 0.3, 0.45, 0.6, 0.75, 0.9, 0.97):
        process = subprocess.Popen([sys.executable, "-c", script, str(resumed)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        time.sleep(fraction * duration)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=300)
        interrupted += process.returncode != 0
        summary = resumed / "summary.json"
        if summary.exists():
            json.loads(summary.read_text())  # whole, whenever it exists
        # An interruption leaves no damaged file behind: the resumed run names none. (The prefix, not the bare word:
        # the interrupt's traceback may pass through numpy's _no_nep50_warning.)
        assert b"reproduce: warning:" not in stderr, stderr.decode()
    assert interrupted >= 3, "the interruptions must hit running work"
    subprocess.run([sys.executable, "-c", script, str(resumed)], check=True, capture_output=True)
    assert (resumed / "summary.json").read_bytes() == (reference / "summary.json").read_bytes()
