"""`reproduce locomotion` (Ni & Kamgarpour H.2) and `reproduce safe-meta-rl` (Xu & Zhu) at the smallest sizes: every
method trains and is tested through the meta-test protocol, the summaries hold what README reports, figures are
written, and a rerun resumes to the same summary."""

import json

import pytest

from cmdp_envs.meta.reproduce import locomotion, safe_meta_rl
from cmdp_envs.meta.safe_mixture import PracticalConstants

pytest.importorskip("mujoco")


def test_the_authors_constants_carry_over_by_value_range_and_budget():
    assert PracticalConstants.rescaled(100.0, 100.0, 40_000) == PracticalConstants()
    constants = PracticalConstants.rescaled(300.0, 50.0, 400)
    authors = PracticalConstants()
    # Radii scale with the value ranges at the same counts: sqrt(scale / n) + eps L.
    reward, cost = constants.radii(10, 10, 0.99, pooled=False, counted=10)
    authors_reward, authors_cost = authors.radii(10, 10, 0.9, pooled=False, counted=10_000)
    assert reward == pytest.approx(3.0 * ((4000 / 10) ** 0.5 + 0.08))
    assert cost == pytest.approx(0.5 * ((300 / 10) ** 0.5 + 0.01))
    assert authors_reward < reward
    assert (constants.min_episodes, constants.raise_min, constants.raise_max) == (10, 10, 52)
    # The weights are the authors' for margins and offset scaled alike.
    assert constants.weights(0.5 * 0.8, 0.99)[0] == pytest.approx(authors.weights(0.8, 0.9)[0])
    with pytest.raises(ValueError, match="reward_value_range"):
        PracticalConstants.rescaled(0.0, 1.0, 10)


@pytest.mark.slow
def test_reproduce_locomotion_runs_every_method_and_resumes(tmp_path):
    config = locomotion.ReproductionConfig.quick(
        episode_steps=50, n_train_tasks=2, n_test_tasks=2, test_iterations=2, oracle_steps=2000,
        oracle_eval_episodes=10, outer_iterations=1, meta_batch=1, rollout_episodes=2, n_check_episodes=5,
        executor="serial")
    summary = locomotion.run(tmp_path, config)
    assert list(summary["methods"]) == list(locomotion.method_names())
    for name, result in summary["methods"].items():
        assert len(result["per_task"]) == 2, name
        assert result["update"] == [1, 2], name
        for task in result["per_task"]:
            assert task["budget"] >= 4 and len(task["episode_returns"]) >= 4, name
            # Every executed policy was checked: a cost estimate with its interval (zero wide when every checking
            # episode cost the same, as with no cost at all).
            assert all(policy["cost"] >= 0 and policy["cost_half_width"] >= 0 for policy in task["executed"]), name
    mixture = summary["methods"]["safe_mixture"]
    assert mixture["iteration"] == "2 episodes" and mixture["training"]["cover_size"] >= 1
    assert [len(task["episode_returns"]) for task in mixture["per_task"]] == [4, 4]
    for name in ("maml_penalty", "safe_meta"):
        assert len(summary["methods"][name]["meta_training"]) == 1
    assert (tmp_path / "figure4.png").stat().st_size > 0
    assert "safe_mixture" in locomotion.format_table(summary)
    first = (tmp_path / "summary.json").read_bytes()
    (tmp_path / "summary.json").unlink()
    locomotion.run(tmp_path, config)  # every stage is read back
    assert (tmp_path / "summary.json").read_bytes() == first


@pytest.mark.slow
def test_reproduce_safe_meta_rl_reports_rewards_costs_safety_and_times(tmp_path):
    config = safe_meta_rl.ReproductionConfig.quick(
        env="point-circle", episode_steps=50, n_train_tasks=2, n_test_tasks=2, outer_iterations=1, meta_batch=1,
        rollout_episodes=2, adaptation_steps=2, n_check_episodes=5, executor="serial")
    summary = safe_meta_rl.run(tmp_path, config)
    assert list(summary["methods"]) == list(safe_meta_rl.METHODS)
    timings = json.loads((tmp_path / "timings.json").read_text())
    for name, result in summary["methods"].items():
        (row,) = result["meta_training"]
        assert row["adapted_cost_max"] >= row["adapted_cost"] and row["meta_cost_max"] >= row["meta_cost"]
        assert result["update"] == [1, 2] and len(result["checked"]["cost"]["max"]) == 2
        assert 0 <= result["anytime_safe_tasks"] <= 2
        assert timings[f"{name}_seconds_per_meta_iteration"] > 0 and timings[f"{name}_meta_test"] > 0
    for figure in ("figure.png", "meta_test.png", "computation_time.png"):
        assert (tmp_path / figure).stat().st_size > 0
    table = safe_meta_rl.format_table(summary, timings)
    assert all(name in table for name in safe_meta_rl.METHODS)
    first = (tmp_path / "summary.json").read_bytes()
    safe_meta_rl.run(tmp_path, config)
    assert (tmp_path / "summary.json").read_bytes() == first


@pytest.mark.slow
def test_reproduce_locomotion_with_omnisafe_oracles_and_cpo(tmp_path):
    """Lane B: ``--oracle CPO`` trains the cover and ``O_s`` with OmniSafe, and CPO from scratch is OmniSafe's."""
    pytest.importorskip("omnisafe", reason="OmniSafe comes with the 'omnisafe' extra (Python 3.10, lane B)")
    config = locomotion.ReproductionConfig.quick(
        oracle="CPO", episode_steps=50, n_train_tasks=2, n_test_tasks=1, test_iterations=2, oracle_steps=10_000,
        oracle_eval_episodes=4, outer_iterations=1, meta_batch=1, rollout_episodes=2, n_check_episodes=4,
        executor="serial")
    summary = locomotion.run(tmp_path, config)
    assert list(summary["methods"]) == ["safe_mixture", "maml_penalty", "safe_meta", "cpo"]
    (saved,) = [path for path in (tmp_path / "covering").iterdir() if path.is_dir()]
    cover = json.loads((saved / "covering.json").read_text())
    assert cover["config"]["learner"] == cover["config"]["feasible_oracle"] == "omnisafe_CPO"
    assert summary["methods"]["safe_mixture"]["training"]["cover_size"] == cover["cover_size"] >= 1
    assert summary["methods"]["cpo"]["update"] == [1, 2]
