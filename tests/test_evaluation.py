"""The meta-test protocol's bookkeeping (cmdp_envs.meta.evaluation), against numbers computed by hand: segments and
their merging, cumulative regret, violation counts at the feasibility tolerance, run_iterates, summarise."""

import numpy as np
import pytest

from cmdp_envs.meta.evaluation import FEASIBILITY_TOLERANCE, MetaTestRun, run_iterates, summarise
from cmdp_envs.tabular import TabularCMDP, evaluate_policy


def two_segment_run() -> MetaTestRun:
    """Episodes 0-2 run policy A (J_r = 4, J_c = 1), episodes 3-4 policy B (J_r = 6, J_c = 2.5), limit 2."""
    run = MetaTestRun.builder(cost_limit=2.0)
    run.add(2, 4.0, 1.0, {"policy": "A"})
    run.add(1, 4.0, 1.0, {"policy": "A"})  # the same policy again: merges into the first segment
    run.add(2, 6.0, 2.5, {"policy": "B"})
    return run.build()


def test_consecutive_segments_of_one_policy_merge():
    run = two_segment_run()
    assert run.starts.tolist() == [0, 3] and run.lengths.tolist() == [3, 2] and run.n_episodes == 5
    assert run.details == ({"policy": "A"}, {"policy": "B"})
    assert run.per_episode(run.cost_values).tolist() == [1.0, 1.0, 1.0, 2.5, 2.5]


def test_a_policy_that_returns_after_another_is_a_new_segment_and_counts_again():
    run = MetaTestRun.builder(cost_limit=1.0)
    run.add(1, 0.0, 2.0, {"policy": "A"})
    run.add(1, 0.0, 0.5, {"policy": "B"})
    run.add(1, 0.0, 2.0, {"policy": "A"})
    run = run.build()
    assert run.starts.tolist() == [0, 1, 2]
    assert run.violating_policies == 2 and run.violating_episodes == 2


def test_regret_by_hand():
    # J_r* = 5: A is 1 below per episode, B above (its regret is clipped at 0): 1, 2, 3, 3, 3.
    assert two_segment_run().regret(5.0).tolist() == [1.0, 2.0, 3.0, 3.0, 3.0]
    # J_r* = 7: 3, 6, 9, then +1 twice.
    assert two_segment_run().regret(7.0).tolist() == [3.0, 6.0, 9.0, 10.0, 11.0]


def test_violations_and_largest_cost():
    run = two_segment_run()
    assert run.violating_policies == 1 and run.violating_episodes == 2 and run.max_cost_value == 2.5


@pytest.mark.parametrize("excess, violating", [(0.0, 0), (FEASIBILITY_TOLERANCE / 2, 0),
                                                (FEASIBILITY_TOLERANCE, 0), (3 * FEASIBILITY_TOLERANCE, 1)])
def test_feasibility_tolerance_boundary(excess, violating):
    """A cost value up to the tolerance above the limit is round-off of the exact solve, not a violation."""
    run = MetaTestRun.builder(cost_limit=1.5)
    run.add(10, 1.0, 1.5 + excess, {"policy": 0})
    assert run.build().violating_policies == violating


def test_builder_refuses_inconsistent_records():
    run = MetaTestRun.builder(cost_limit=1.0)
    with pytest.raises(ValueError, match="at least one episode"):
        run.add(0, 1.0, 1.0, {"policy": 0})
    run.add(1, 1.0, 0.5, {"policy": 0})
    with pytest.raises(ValueError, match="two different values"):
        run.add(1, 2.0, 0.5, {"policy": 0})
    with pytest.raises(ValueError, match="no episodes"):
        MetaTestRun.builder(cost_limit=1.0).build()


def chain_cmdp() -> TabularCMDP:
    """One state, two actions: action 0 pays r = 1, c = 1; action 1 pays r = 0, c = 0; gamma = 0.5, so
    J = 2 x (expected per-step value)."""
    return TabularCMDP(P=np.ones((1, 2, 1)), r=np.array([[1.0, 0.0]]), c=np.array([[1.0, 0.0]]), mu=np.ones(1),
                       gamma=0.5, cost_limit=1.0)


def test_run_iterates_executes_each_iterate_for_its_episodes_and_the_last_for_the_rest():
    cmdp = chain_cmdp()
    probabilities = [0.9, 0.5, 0.2]  # probability of action 0 per iterate
    taken = []

    def iterates():
        for p in probabilities:
            taken.append(p)
            yield np.array([[p, 1 - p]])
        raise AssertionError("an iterate that is never executed must not be computed")

    run = run_iterates(cmdp, iterates(), n_episodes=25, episodes_per_iterate=10)
    assert taken == probabilities
    assert run.lengths.tolist() == [10, 10, 5]
    assert run.reward_values.tolist() == pytest.approx([1.8, 1.0, 0.4])
    assert run.cost_values.tolist() == pytest.approx([1.8, 1.0, 0.4])
    assert run.violating_policies == 1  # 1.8 > 1; 1.0 is at the limit
    assert [evaluate_policy(cmdp, np.array([[p, 1 - p]]))[0] for p in probabilities] == pytest.approx([1.8, 1.0, 0.4])


def test_summarise_by_hand():
    first = two_segment_run()                       # final regret at J* = 7: 11
    second = MetaTestRun.builder(cost_limit=2.0)
    second.add(5, 7.0, 0.0, {"policy": "C"})         # optimal from the start: regret 0
    summary = summarise([first, second.build()], optimal_reward_values=[7.0, 7.0], curve_points=5)
    assert summary["final_regret_mean"] == 5.5 and summary["final_regret_per_task"] == [11.0, 0.0]
    assert summary["violating_policies"] == 1 and summary["violating_episodes"] == 2
    assert summary["max_cost_value"] == 2.5 and summary["executed_policies"] == 3
    curve = summary["curve"]
    assert curve["episode"] == [1, 2, 3, 4, 5]
    assert curve["regret"]["mean"] == [1.5, 3.0, 4.5, 5.0, 5.5]
    assert curve["cost_value"]["mean"] == [0.5, 0.5, 0.5, 1.25, 1.25]
    assert curve["regret"]["p10"][-1] == pytest.approx(1.1) and curve["regret"]["p90"][-1] == pytest.approx(9.9)
