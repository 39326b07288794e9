"""C-MAML (meta/cmaml.py) with real SB3 learners at tiny budgets on the gridworld."""

import dataclasses
import importlib.util

import gymnasium as gym
import numpy as np
import pytest
import torch

import cmdp_envs  # noqa: F401

pytest.importorskip("stable_baselines3")

from cmdp_envs.meta.cmaml import (  # noqa: E402
    CMAML,
    CMAMLConfig,
    collect_episodes,
    discounted_weights,
    policy_gradient,
    rollout_envs,
)
from cmdp_envs.meta.executors import LocalExecutor  # noqa: E402
from cmdp_envs.meta.inner_loops import SB3InnerLoop  # noqa: E402
from cmdp_envs.tabular import value_functions  # noqa: E402

FAMILY = gym.make("cmdp_envs/GridWorld-v0").unwrapped.family
TINY = {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 2}


def _run(config: CMAMLConfig, seed: int = 0, iterations: int = 2, executor=None) -> CMAML:
    cmaml = CMAML(FAMILY, FAMILY.sample(4, seed=0), SB3InnerLoop(FAMILY, **TINY), config, seed=seed, executor=executor)
    cmaml.run(iterations, progress=False)
    return cmaml


@pytest.mark.slow
def test_policy_gradient_estimate_agrees_with_the_exact_gradient():
    """The FoMAML and safety terms rest on one estimator; on a tabular task the exact gradient of ``J_r`` follows
    from the policy gradient theorem (occupancy times ``grad pi`` times ``Q``, by autograd through the network)."""
    task = FAMILY.sample(1, seed=0)[0]
    actor = SB3InnerLoop(FAMILY, n_envs=1, n_steps=64).session([task], seed=0, multiplier=0.0, multiplier_lr=0.05,
                                                               updates=1).actor
    cmdp = FAMILY.tabular(task)
    probabilities = actor.module.get_distribution(torch.eye(cmdp.n_states)).distribution.probs
    pi = probabilities.detach().numpy().astype(np.float64)
    _, q = value_functions(cmdp, pi)
    transition = np.einsum("sa,sat->st", pi, cmdp.P)
    occupancy = np.linalg.solve((np.eye(cmdp.n_states) - cmdp.gamma * transition).T, cmdp.mu)
    value = (torch.as_tensor(occupancy[:, None] * q[0], dtype=torch.float32) * probabilities).sum()
    exact = torch.cat([g.ravel() for g in torch.autograd.grad(value, actor.parameters())]).numpy()
    episodes = collect_episodes(actor, rollout_envs(FAMILY, task, 800, observation_type="onehot"), task, seed=1)
    estimate = policy_gradient(actor, episodes, discounted_weights(episodes.rewards, cmdp.gamma))
    cosine = estimate @ exact / np.linalg.norm(estimate) / np.linalg.norm(exact)
    assert cosine > 0.85, cosine
    assert 0.7 < np.linalg.norm(estimate) / np.linalg.norm(exact) < 1.4


def test_iterations_are_deterministic_and_the_multipliers_rise_above_the_limit():
    """A random meta policy costs far more than ``d = 1.5``: ``lambda`` and ``eta`` rise, and the same seed
    repeats the run exactly."""
    first, second = _run(CMAMLConfig(meta_batch=2, rollout_episodes=4)), _run(CMAMLConfig(meta_batch=2,
                                                                                          rollout_episodes=4))
    assert first.history == second.history
    np.testing.assert_array_equal(first.theta, second.theta)
    assert all(row["meta_cost"] > row["cost_limit"] for row in first.history)
    assert first.history[0]["eta"] > 0 and first.history[1]["eta"] > first.history[0]["eta"]
    assert first.multiplier > 0
    other = _run(CMAMLConfig(meta_batch=2, rollout_episodes=4), seed=1)
    assert other.history != first.history


def test_eta_ablation_and_reptile():
    ablation = _run(CMAMLConfig(meta_batch=2, rollout_episodes=4, use_safety_critic=False))
    assert all(row["eta"] == 0.0 for row in ablation.history)
    before = CMAML(FAMILY, FAMILY.sample(4, seed=0), SB3InnerLoop(FAMILY, **TINY), seed=0).theta
    reptile = _run(CMAMLConfig(meta_batch=2, rollout_episodes=4, outer_step="reptile"))
    assert not np.array_equal(reptile.theta, before)


@pytest.mark.slow
def test_local_processes_and_ray_give_the_serial_result():
    config = CMAMLConfig(meta_batch=2, rollout_episodes=4)
    serial = _run(config, iterations=1)
    parallel = _run(config, iterations=1, executor=LocalExecutor(max_workers=2))
    assert parallel.history == serial.history
    np.testing.assert_array_equal(parallel.theta, serial.theta)
    if importlib.util.find_spec("ray") is not None:  # lane A has the 'ray' extra
        from cmdp_envs.meta.executors import RayExecutor

        with RayExecutor(num_cpus=2) as executor:
            on_ray = _run(config, iterations=1, executor=executor)
        assert on_ray.history == serial.history
        np.testing.assert_array_equal(on_ray.theta, serial.theta)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="meta_batch"):
        CMAMLConfig(meta_batch=0)
    with pytest.raises(ValueError, match="outer_step"):
        CMAMLConfig(outer_step="maml")
    with pytest.raises(ValueError, match="at least as many training tasks"):
        CMAML(FAMILY, FAMILY.sample(1, seed=0), SB3InnerLoop(FAMILY, **TINY), CMAMLConfig(meta_batch=2))
    varied = gym.make("cmdp_envs/GridWorldVaried-v0").unwrapped.family  # cost limits drawn from U[1, 2]
    with pytest.raises(ValueError, match="one cost limit"):
        CMAML(varied, varied.sample(2, seed=0), SB3InnerLoop(varied, **TINY), CMAMLConfig(meta_batch=2))
    with pytest.raises(ValueError, match="algo"):
        SB3InnerLoop(FAMILY, algo="SAC")


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    """Checkpoints after every outer iteration: two iterations, a new process-like restart, one more, equals three
    in one go; a checkpoint from other settings or a damaged one is refused with its name."""
    config = CMAMLConfig(meta_batch=2, rollout_episodes=4)
    whole = _run(config, iterations=3)
    path = tmp_path / "cmaml.npz"
    _run(config, iterations=2).save(path)
    resumed = CMAML(FAMILY, FAMILY.sample(4, seed=0), SB3InnerLoop(FAMILY, **TINY), config, seed=0)
    resumed.run(3, checkpoint=path, progress=False)
    assert resumed.history == whole.history
    np.testing.assert_array_equal(resumed.theta, whole.theta)
    assert resumed.eta == whole.eta and resumed.multiplier == whole.multiplier
    with pytest.raises(ValueError, match="another seed"):
        CMAML(FAMILY, FAMILY.sample(4, seed=0), SB3InnerLoop(FAMILY, **TINY), config, seed=1).load(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match="cmaml.npz"):
        resumed.load(path)


def test_fine_tuning_and_the_baselines():
    """Every method ends in a start for the same fine-tuning: C-MAML's theta, random initialisation (None), the
    pre-trained policy and first-order MAML (no constraint: lambda stays 0)."""
    from cmdp_envs.meta.cmaml import fine_tune, maml_config, pretrain

    inner = SB3InnerLoop(FAMILY, n_envs=2, n_steps=256, batch_size=64, n_epochs=2)  # a rollout ends >= 1 episode
    held_out = FAMILY.sample(1, seed=7)[0]
    cmaml = _run(CMAMLConfig(meta_batch=2, rollout_episodes=4), iterations=1)
    maml = _run(maml_config(CMAMLConfig(meta_batch=2, rollout_episodes=4)), iterations=1)
    assert maml.multiplier == 0.0 and maml.eta == 0.0
    pretrained = pretrain(inner, FAMILY.sample(4, seed=0), total_steps=512, seed=0)
    assert pretrained.shape == cmaml.theta.shape
    curves = {name: fine_tune(inner, theta, held_out, updates=2, seed=3)
              for name, theta in (("cmaml", cmaml.theta), ("random", None), ("pretrained", pretrained),
                                  ("maml", maml.theta))}
    for curve in curves.values():
        assert len(curve.returns) == 2 and np.all(curve.costs >= 0) and curve.cost_limit == 1.5
    # SB3 initialises its policies near uniform and these budgets barely move them, so sampled actions under one seed
    # coincide; a start that prefers one action (the last actor parameters are the action logits' biases) does not.
    biased = cmaml.theta.copy()
    biased[-4:] = [5.0, 0.0, 0.0, 0.0]
    assert not np.array_equal(fine_tune(inner, biased, held_out, updates=2, seed=3).returns,
                              curves["random"].returns)
    # A start is read, never written: fine-tuning from the same array twice gives the same curve.
    start = cmaml.theta
    kept = start.copy()
    first, again = (fine_tune(inner, start, held_out, updates=2, seed=3) for _ in range(2))
    np.testing.assert_array_equal(start, kept)
    np.testing.assert_array_equal(again.returns, first.returns)
    np.testing.assert_array_equal(first.returns, curves["cmaml"].returns)
    with pytest.raises(ValueError, match="ended an episode"):
        fine_tune(SB3InnerLoop(FAMILY, n_envs=1, n_steps=32, batch_size=32), None, held_out, updates=1, seed=0)


def test_reproduce_cmaml_writes_every_method_and_resumes(tmp_path):
    """`cmdp-envs reproduce cmaml` at a tiny size on the gridworld, through the meta-test protocol: every method's
    curves per update (observed and checked), its recorded episodes and checks per task, the limit and its
    semantics, the figures; a rerun reuses every stage and writes the same summary."""
    from cmdp_envs.meta.reproduce.cmaml import METHODS, ReproductionConfig, format_table, run

    config = ReproductionConfig(env_id="cmdp_envs/GridWorld-v0", n_train_tasks=2, n_test_tasks=2,
                                outer_iterations=1, meta_batch=2, rollout_episodes=2, fine_tune_updates=2, n_envs=1,
                                n_steps=200, n_check_episodes=20, executor="serial")
    summary = run(tmp_path, config)
    assert list(summary["methods"]) == list(METHODS) and "cmaml_safe_adaptation" in METHODS
    assert summary["cost_limit"] == 1.5 and summary["cost_semantics"] == "discounted"
    assert summary["check_confidence"] == 0.95
    for name, result in summary["methods"].items():
        assert result["update"] == [1, 2] and len(result["per_task"]) == 2, name
        for measure in ("observed", "checked"):
            assert len(result[measure]["cost"]["mean"]) == 2
        for task in result["per_task"]:
            assert [policy["index"] for policy in task["executed"]] == [0, 1]  # one policy per update, all checked
            assert task["episode_costs"] and min(task["episode_costs"]) >= 0
            upper = [policy["cost"] + policy["cost_half_width"] for policy in task["executed"]]
            assert task["all_verified"] == all(bound <= 1.5 for bound in upper)
        assert 0.0 <= result["within_limit_fraction"] <= 1.0 and 0.0 <= result["verified_fraction"] <= 1.0
    # The safe adaptation step runs whole episodes (two per step here), each of the policy of that moment.
    adapted = summary["methods"]["cmaml_safe_adaptation"]["per_task"][0]
    assert adapted["episode_policy"] == [0, 0, 1, 1] and adapted["straddling_episodes"] == 0
    assert len(summary["methods"]["cmaml"]["meta_training"]) == 1
    assert len(list(tmp_path.glob("methods/cmaml-*.csv"))) == 1
    if importlib.util.find_spec("tensorboard") is not None:  # lane B: OmniSafe brings TensorBoard
        assert list((tmp_path / "tensorboard" / "cmaml").glob("events.out.tfevents.*"))
    assert summary["methods"]["maml"]["meta_training"][0]["multiplier"] == 0.0
    for name in ("summary.json", "fine_tuning.png", "meta_training.png"):
        assert (tmp_path / name).stat().st_size > 0
    first = (tmp_path / "summary.json").read_bytes()
    assert run(tmp_path, config) == summary
    assert (tmp_path / "summary.json").read_bytes() == first
    assert "always within" in format_table(summary) and "verified" in format_table(summary)
    assert dataclasses.replace(config, executor="local").digest() == config.digest(), "resumable on any executor"
    with pytest.raises(ValueError, match="inner"):
        ReproductionConfig(inner="SAC")
    with pytest.raises(ValueError, match="meta_batch"):
        ReproductionConfig(n_train_tasks=2, meta_batch=3)


def test_the_inner_loop_leaves_the_meta_parameters_alone():
    """Every task of an outer iteration starts from the same theta: adapting to one must not write into it (torch's
    vector_to_parameters would alias the parameters to it)."""
    cmaml = CMAML(FAMILY, FAMILY.sample(4, seed=0), SB3InnerLoop(FAMILY, **TINY), CMAMLConfig(meta_batch=2), seed=0)
    meta = cmaml._meta_state()
    kept = meta["theta"].copy()
    result = cmaml.inner((FAMILY.sample(1, seed=0)[0], 0, meta, cmaml.config))
    np.testing.assert_array_equal(meta["theta"], kept)
    assert not np.array_equal(result.adapted_theta, kept)


omnisafe_only = pytest.mark.skipif(importlib.util.find_spec("omnisafe") is None,
                                   reason="OmniSafe is in the 'omnisafe' extra (Python 3.10, lane B)")


@omnisafe_only
@pytest.mark.slow
def test_omnisafe_trpolag_inner_loop_meta_trains_fine_tunes_and_pretrains():
    """C-MAML on OmniSafe's TRPOLag, the paper's learner, at a tiny budget on the goal arc: the meta policy is
    OmniSafe's own actor, each task's cost critic starts from V_C, and fine-tuning and pre-training run the same
    learner, with per-update curves and the multiplier starting where asked."""
    from cmdp_envs.meta.cmaml import fine_tune, pretrain
    from cmdp_envs.meta.inner_loops import OmniSafeInnerLoop

    family = gym.make("cmdp_envs/PointGoalArc1-v0").unwrapped.family
    inner = OmniSafeInnerLoop(family, "TRPOLag", steps_per_epoch=1000)
    tasks = family.sample(3, seed=0)
    cmaml = CMAML(family, tasks[:2], inner, CMAMLConfig(meta_batch=2, adaptation_steps=1, rollout_episodes=2), seed=0)
    assert cmaml.theta.shape == (sum(p.numel() for p in cmaml.actor.module.parameters()),)
    before = cmaml.theta
    row = cmaml.iterate()
    assert not np.array_equal(cmaml.theta, before)
    assert row["env_steps"] == 2 * (1000 + 2 * 2 * 1000)  # per task: one epoch, and two rollouts of two episodes
    assert row["eta"] > 0 and np.isfinite(row["cost_critic"])

    session = inner.session(tasks[:1], seed=0, multiplier=0.3, multiplier_lr=0.05, updates=1)
    critic = cmaml._meta_state()["critic"]
    assert session.load_cost_critic(critic)
    (network,) = session._algorithm._actor_critic.cost_critic.net_lst
    for name, value in network.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), critic[name])

    first, again = (fine_tune(inner, cmaml.theta, tasks[2], updates=2, seed=1, multiplier=0.5) for _ in range(2))
    assert first.steps.tolist() == [1000.0, 2000.0] and np.all(first.costs >= 0)
    assert abs(first.multipliers[0] - 0.5) <= 0.05 + 1e-6, first.multipliers  # one Adam step of lambda_lr
    np.testing.assert_array_equal(first.returns, again.returns)
    np.testing.assert_array_equal(first.costs, again.costs)
    assert pretrain(inner, tasks[:2], total_steps=1500, seed=0).shape == cmaml.theta.shape


@omnisafe_only
@pytest.mark.slow
def test_omnisafe_cpo_inner_loop_and_the_unconstrained_maml_setting():
    """CPO has no multiplier (its rows read 0); TRPOLag with a zero dual step keeps its multiplier at 0, which is
    how MAML's unconstrained TRPO inner loop runs on OmniSafe."""
    from cmdp_envs.meta.cmaml import fine_tune
    from cmdp_envs.meta.inner_loops import OmniSafeInnerLoop

    family = gym.make("cmdp_envs/PointGoalArc1-v0").unwrapped.family
    task = family.sample(1, seed=0)[0]
    cpo = fine_tune(OmniSafeInnerLoop(family, "CPO", steps_per_epoch=1000), None, task, updates=1, seed=0)
    assert cpo.multipliers.tolist() == [0.0] and np.isfinite(cpo.returns).all()
    trpo = fine_tune(OmniSafeInnerLoop(family, "TRPOLag", steps_per_epoch=1000), None, task, updates=2, seed=0,
                     multiplier=0.0, multiplier_lr=0.0)
    assert trpo.multipliers.tolist() == [0.0, 0.0]
    pid = OmniSafeInnerLoop(family, "TRPOPID", steps_per_epoch=1000)  # a multiplier start, no step size
    assert pid.session([task], 0, 0.5, 0.05, 1) is not None
    with pytest.raises(ValueError, match="discrete actions"):
        OmniSafeInnerLoop(FAMILY)
    with pytest.raises(ValueError, match="unknown OmniSafe algorithm"):
        OmniSafeInnerLoop(family, "SAC")


@omnisafe_only
@pytest.mark.slow
def test_reproduce_cmaml_on_omnisafe_trpolag(tmp_path):
    """`reproduce cmaml --inner TRPOLag` at the smallest size: every method runs OmniSafe's learner (and Xu & Zhu's
    step adapts OmniSafe's actor) under the meta-test protocol, and MAML's TRPOLag keeps its multiplier at 0
    (unconstrained TRPO)."""
    from cmdp_envs.meta.reproduce.cmaml import METHODS, ReproductionConfig, run

    config = ReproductionConfig(inner="TRPOLag", n_train_tasks=2, n_test_tasks=1, outer_iterations=1, meta_batch=2,
                                adaptation_steps=1, rollout_episodes=1, fine_tune_updates=1, n_envs=1, n_steps=1000,
                                n_check_episodes=4, executor="serial")
    summary = run(tmp_path, config)
    assert list(summary["methods"]) == list(METHODS) and summary["cost_limit"] == 5.0
    assert summary["methods"]["maml"]["meta_training"][0]["multiplier"] == 0.0
    for result in summary["methods"].values():
        assert result["update"] == [1] and result["observed"]["return"]["mean"][0] is not None
        assert np.isfinite(result["checked"]["cost"]["mean"]).all()
