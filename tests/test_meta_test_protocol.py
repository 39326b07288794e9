"""The meta-test protocol on any env (meta/test_time.py), with real SB3 learners on the gridworld, where every
executed policy's values are also known exactly."""

import importlib.util

import gymnasium as gym
import numpy as np
import pytest
import torch

import cmdp_envs  # noqa: F401

pytest.importorskip("stable_baselines3")

from cmdp_envs.meta.cmaml import actor_theta, load_actor  # noqa: E402
from cmdp_envs.meta.executors import spawn_seeds  # noqa: E402
from cmdp_envs.meta.inner_loops import SB3InnerLoop  # noqa: E402
from cmdp_envs.meta.safe_adaptation.neural_step import NeuralAdaptationConfig  # noqa: E402
from cmdp_envs.meta.test_time import (  # noqa: E402
    BudgetExceeded,
    EpisodeMixture,
    LearnerFineTuning,
    NeuralSafeAdaptation,
    TestRun,
    meta_test,
)
from cmdp_envs.tabular import evaluate_policy  # noqa: E402

FAMILY = gym.make("cmdp_envs/GridWorld-v0").unwrapped.family
INNER = SB3InnerLoop(FAMILY, n_envs=2, n_steps=200, batch_size=100, n_epochs=2)  # an update is two whole episodes


def test_fine_tuning_is_recorded_and_every_executed_policy_is_checked_against_its_exact_values():
    """Each update's rollout runs the policy of that moment: two whole episodes per update, in order. Each checked
    interval holds the policy's exact discounted cost (the gridworld's linear solve), at the stated confidence."""
    tasks = FAMILY.sample(2, seed=7)
    method = LearnerFineTuning("random", INNER, None, updates=3)
    results = meta_test(method, FAMILY, tasks, budget=6, seed=0, n_check_episodes=400)
    again = meta_test(method, FAMILY, tasks, budget=6, seed=0, n_check_episodes=400)
    for result, repeat, task in zip(results, again, tasks):
        assert result.policy.tolist() == [0, 0, 1, 1, 2, 2] and result.straddling == 0 and result.unfinished == 0
        np.testing.assert_array_equal(result.costs, repeat.costs)
        assert [p.episodes for p in result.executed] == [2, 2, 2]
        assert result.as_dict()["executed"][0]["cost"] == result.executed[0].cost.value
    # Replay the first task's run, with the seed meta_test gave it, to read the executed policies exactly.
    run = TestRun(FAMILY, tasks[0], budget=6, seed=spawn_seeds(0, 2 * len(tasks))[0], env_kwargs=INNER.env_kwargs)
    method.adapt(run)
    cmdp = FAMILY.tabular(tasks[0])
    covered = 0
    np.testing.assert_array_equal(np.array([c for _, _, c, _ in run.episodes]), results[0].costs)
    for theta, checked in zip(run.policies, results[0].executed):
        load_actor(run.actor, theta)
        with torch.no_grad():
            probabilities = run.actor.module.get_distribution(torch.eye(cmdp.n_states)).distribution.probs.numpy()
        _, exact_cost = evaluate_policy(cmdp, probabilities.astype(np.float64))
        covered += abs(checked.cost.value - exact_cost) <= checked.cost.half_width
        assert checked.verified == (checked.cost.upper_bound <= tasks[0].cost_limit)
    assert covered == len(run.policies)


def test_the_protocol_refuses_undeclared_policies_and_episodes_over_budget():
    run = TestRun(FAMILY, FAMILY.default_task, budget=1, seed=0, env_kwargs=INNER.env_kwargs)
    env = run.make_env()
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="declare the policy"):
        env.step(0)
    run.executing(INNER.session([FAMILY.default_task], 0, 0.0, 0.0, 1).actor)
    truncated = False
    env.step(0)
    while not truncated:
        *_, terminated, truncated, _ = env.step(0)
        truncated = truncated or terminated
    env.reset(seed=1)
    with pytest.raises(BudgetExceeded, match="budget is 1 episodes"):
        env.step(0)
    assert len(run.episodes) == 1 and run.episodes[0][0] == 0
    with pytest.raises(BudgetExceeded):
        meta_test(LearnerFineTuning("random", INNER, None, updates=3), FAMILY, [FAMILY.default_task], budget=5, seed=0)
    with pytest.raises(TypeError, match="act\\(observation\\)"):
        run.executing(object())
    with pytest.raises(ValueError, match="summing to 1"):
        EpisodeMixture((object(), object()), (0.5, 0.6))
    with pytest.raises(ValueError, match="one weight per policy"):
        EpisodeMixture((object(),), (0.5, 0.5))
    with pytest.raises(ValueError, match="leave meta_test's env_kwargs out"):
        meta_test(LearnerFineTuning("random", INNER, None, updates=1), FAMILY, [FAMILY.default_task], budget=2, seed=0,
                  env_kwargs={})


def test_a_policy_that_only_ran_parts_of_episodes_is_checked_too():
    """Rollouts of 150 steps against 200-step episodes: every episode straddles two policies, and the last policy
    starts no episode, running only the ends of the last ones. All four are checked (and counted in the simultaneous
    intervals); no policy's observed means include a straddling episode."""
    inner = SB3InnerLoop(FAMILY, n_envs=2, n_steps=150, batch_size=100, n_epochs=1)
    (result,) = meta_test(LearnerFineTuning("random", inner, None, updates=4), FAMILY, [FAMILY.default_task], budget=6,
                          seed=0, n_check_episodes=20)
    assert [p.index for p in result.executed] == [0, 1, 2, 3]
    assert result.straddling == len(result.returns) == 6 and result.unfinished == 0
    assert set(result.policy.tolist()) == {0, 1, 2}
    assert all(p.episodes == 0 and np.isnan(p.observed_cost) for p in result.executed)
    assert all(entry["observed_cost"] is None for entry in result.as_dict()["executed"])


@pytest.mark.slow
def test_xu_zhu_neural_adaptation_from_a_learner_actor():
    """Xu & Zhu's step adapts the SB3 actor itself (a C-MAML meta policy, say): each step runs whole episodes of the
    policy of the moment, and a start far above the limit comes down."""
    task = FAMILY.sample(1, seed=7)[0]
    start = actor_theta(INNER.session([task], 0, 0.0, 0.0, 1).actor)
    method = NeuralSafeAdaptation("xu_zhu", INNER, start, steps=3, config=NeuralAdaptationConfig(n_episodes=5))
    (result,) = meta_test(method, FAMILY, [task], budget=15, seed=0, n_check_episodes=200)
    assert result.policy.tolist() == [0] * 5 + [1] * 5 + [2] * 5 and result.unfinished == 0
    first, last = result.executed[0].cost, result.executed[-1].cost
    assert first.value > task.cost_limit and last.value < first.value - first.half_width - last.half_width


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("omnisafe") is None,
                    reason="OmniSafe is in the 'omnisafe' extra (Python 3.10, lane B)")
def test_omnisafe_learners_run_under_the_protocol():
    """OmniSafe's TRPOLag fine-tunes in the protocol's recording envs, declaring its policy before each epoch's
    rollout (one episode per epoch here), and Xu & Zhu's step adapts OmniSafe's own actor; both repeat exactly, and
    the registration of the recording envs does not outlive the session."""
    from cmdp_envs.meta.inner_loops import OmniSafeInnerLoop
    from cmdp_envs.wrappers.omnisafe_bridge import _bridge_class

    family = gym.make("cmdp_envs/PointGoalArc1-v0").unwrapped.family
    task = family.sample(1, seed=3)[0]
    inner = OmniSafeInnerLoop(family, "TRPOLag", steps_per_epoch=1000)
    registered = len(_bridge_class()._support_envs)
    fine_tuning = LearnerFineTuning("trpolag", inner, None, updates=2)
    (result,), (again,) = (meta_test(fine_tuning, family, [task], budget=2, seed=0, n_check_episodes=4)
                           for _ in range(2))
    assert len(_bridge_class()._support_envs) == registered
    assert result.policy.tolist() == [0, 1] and result.unfinished == 0 and result.straddling == 0
    assert [p.episodes for p in result.executed] == [1, 1]
    np.testing.assert_array_equal(result.costs, again.costs)
    np.testing.assert_array_equal(result.returns, again.returns)
    start = actor_theta(inner.session([task], 0, 0.0, 0.0, 1).actor)
    adaptation = NeuralSafeAdaptation("xu_zhu", inner, start, steps=2, config=NeuralAdaptationConfig(n_episodes=2))
    (adapted,) = meta_test(adaptation, family, [task], budget=4, seed=0, n_check_episodes=4)
    assert adapted.policy.tolist() == [0, 0, 1, 1] and len(adapted.executed) == 2
    assert np.isfinite([p.cost.value for p in adapted.executed]).all()
