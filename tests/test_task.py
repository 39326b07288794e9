"""The task API: sampling, explicit tasks, validation, hashing, descriptions."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdp_envs.families.gridworld import PAPER_GOAL, PAPER_UNSAFE_CELLS, GridWorldFamily, GridWorldTask
from cmdp_envs.task import Choice, ClippedNormal, Fixed, TruncatedNormal, Uniform, as_generator


def test_sample_is_deterministic_under_a_seed(paper_family, varied_family):
    for family in (paper_family, varied_family):
        assert family.sample(20, seed=3) == family.sample(20, seed=3)
        assert family.sample(20, seed=3) != family.sample(20, seed=4)
        assert len(family.sample(0, seed=0)) == 0


def test_sample_follows_the_paper_distribution(paper_family):
    noise = np.array([t.noise for t in paper_family.sample(20000, seed=0)])
    # Normal(0.3, 0.03) clipped to [0, 0.5]: clipping is ~7 standard deviations away, so the moments are the normal's.
    assert abs(noise.mean() - 0.3) < 4 * 0.03 / np.sqrt(len(noise))
    assert abs(noise.std() - 0.03) < 0.001
    assert noise.min() >= 0 and noise.max() <= 0.5


def test_clipping_not_resampling():
    dist = ClippedNormal(mean=0.45, std=0.2, low=0.0, high=0.5)
    draws = np.array(dist.sample(np.random.default_rng(0), 10000))
    # Clipping puts an atom at the bound: about P(N(0.45, 0.2) > 0.5) = 40% of the draws.
    assert 0.37 < np.mean(draws == 0.5) < 0.43


def test_truncation_resamples_into_the_interval():
    """Ni & Kamgarpour's HalfCheetah targets: N(1, 0.3) conditioned on [0, 2]. No atoms at the bounds, the mean stays 1
    by symmetry, and the variance is that of the truncated normal (scipy's), below the untruncated 0.3."""
    import scipy.stats

    dist = TruncatedNormal(mean=1.0, std=np.sqrt(0.3), low=0.0, high=2.0)
    draws = np.array(dist.sample(np.random.default_rng(0), 20000))
    assert draws.min() > 0 and draws.max() < 2 and abs(draws.mean() - 1.0) < 0.01
    expected = scipy.stats.truncnorm(-1 / np.sqrt(0.3), 1 / np.sqrt(0.3), loc=1.0, scale=np.sqrt(0.3)).var()
    assert abs(draws.var() - expected) < 0.01 and expected < 0.3
    assert dist.sample(np.random.default_rng(3), 5) == dist.sample(np.random.default_rng(3), 5)
    with pytest.raises(ValueError, match="std > 0"):
        TruncatedNormal(mean=1.0, std=0.0, low=0.0, high=2.0)


def test_varied_family_varies_reward_constraint_and_dynamics(varied_family):
    tasks = varied_family.sample(300, seed=1)
    assert len({t.goal for t in tasks}) == 5
    assert len({t.unsafe_cells for t in tasks}) == 3
    assert len({t.noise for t in tasks}) == 300
    assert all(1.0 <= t.cost_limit <= 2.0 for t in tasks)


def test_tasks_are_frozen_and_hashable(paper_family):
    task = paper_family.task(noise=0.2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.noise = 0.3
    assert {task: 1}[paper_family.task(noise=0.2)] == 1
    assert task == GridWorldTask(cost_limit=1.5, noise=0.2, goal=PAPER_GOAL, unsafe_cells=PAPER_UNSAFE_CELLS)
    assert task.as_dict()["goal"] == [3, 6]


def test_explicit_task_defaults_and_list_inputs(varied_family):
    task = varied_family.task(goal=[0, 6], noise=0.1)
    assert task.goal == (0, 6) and task.noise == 0.1
    assert varied_family.task().goal == (3, 6)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"noise": 0.51}, r"'noise' = 0.51 is outside its range \[0.0, 0.5\]"),
        ({"noise": -0.1}, r"'noise' = -0.1 is outside its range"),
        ({"noise": float("nan")}, "must be finite"),
        ({"noise": "high"}, "must be a number"),
        ({"noise": True}, "must be a number"),
        ({"cost_limit": 2.0}, "fixed at 1.5"),
        ({"goal": (0, 6)}, r"'goal' = \(0, 6\) is fixed at \(3, 6\)"),
        ({"friction": 1.0}, r"unknown task parameter\(s\) \['friction'\]"),
    ],
)
def test_invalid_task_parameters_raise_naming_the_value(paper_family, params, message):
    with pytest.raises(ValueError, match=message):
        paper_family.task(**params)


def test_varied_family_rejects_values_outside_its_choices(varied_family):
    with pytest.raises(ValueError, match=r"'goal' = \(1, 1\) is not one of"):
        varied_family.task(goal=(1, 1))
    with pytest.raises(ValueError, match=r"'cost_limit' = 3.0 is outside its range \[1.0, 2.0\]"):
        varied_family.task(cost_limit=3.0)


def test_family_checks_its_whole_support_on_construction():
    """A distribution that could produce an invalid task fails when the family is built, not on a later draw."""
    with pytest.raises(ValueError, match="must not be an unsafe cell"):
        GridWorldFamily(goal=Choice(((3, 6), (2, 2))), unsafe_cells=Fixed(PAPER_UNSAFE_CELLS))
    with pytest.raises(ValueError, match="outside the 7 x 7 grid"):
        GridWorldFamily(goal=Fixed((7, 0)))
    with pytest.raises(ValueError, match=r"'noise' = 2.0 is outside \[0, 1\]"):
        GridWorldFamily(noise=Uniform(0.0, 2.0))
    with pytest.raises(ValueError, match="'cost_limit' = -1.0 must be >= 0"):
        GridWorldFamily(cost_limit=Uniform(-1.0, 1.0))


def test_tasks_must_be_in_canonical_form(paper_family):
    with pytest.raises(ValueError, match="canonical form"):
        paper_family.check_task(GridWorldTask(goal=[3, 6]))
    paper_family.check_task(GridWorldTask(noise=np.float64(0.3)))


def test_families_and_tasks_pickle(paper_family, varied_family):
    import pickle
    from concurrent.futures import ProcessPoolExecutor

    for family in (paper_family, varied_family):
        task = family.sample(1, seed=0)[0]
        clone = pickle.loads(pickle.dumps(family))
        assert clone.sample(5, seed=1) == family.sample(5, seed=1)
        np.testing.assert_array_equal(clone.tabular(task).P, family.tabular(task).P)
        assert pickle.loads(pickle.dumps(task)) == task
    tasks = paper_family.sample(2, seed=0)
    with ProcessPoolExecutor(max_workers=2) as pool:
        models = list(pool.map(paper_family.tabular, tasks))
    for task, model in zip(tasks, models):
        np.testing.assert_array_equal(model.P, paper_family.tabular(task).P)


def test_bad_family_arguments():
    with pytest.raises(ValueError, match="noise_model"):
        GridWorldFamily(noise_model="gaussian")
    with pytest.raises(ValueError, match="gamma"):
        GridWorldFamily(gamma=1.0)
    with pytest.raises(TypeError, match="ParameterDistribution"):
        GridWorldFamily(noise=0.3)
    with pytest.raises(ValueError):
        ClippedNormal(mean=0.6, std=0.1, low=0.0, high=0.5)
    with pytest.raises(ValueError):
        Uniform(2.0, 1.0)
    with pytest.raises(ValueError):
        Choice(())


def test_bad_sample_arguments(paper_family):
    for n in (-1, 2.5, True):
        with pytest.raises(ValueError, match="n must be"):
            paper_family.sample(n, seed=0)
    with pytest.raises(ValueError, match="seed"):
        paper_family.sample(2, seed=-1)
    with pytest.raises(ValueError, match="seed"):
        as_generator("zero")


def test_check_task_rejects_other_types(paper_family):
    @dataclasses.dataclass(frozen=True)
    class Other:
        cost_limit: float = 1.5

    with pytest.raises(ValueError, match="expected a GridWorldTask"):
        paper_family.check_task(Other())


def test_describe_names_every_parameter(varied_family):
    text = varied_family.describe()
    for name in ("cost_limit: Uniform[1.0, 2.0]", "noise: Normal(mean=0.3, std=0.03) clipped to [0.0, 0.5]", "goal:",
                 "unsafe_cells:"):
        assert name in text


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), varied=st.booleans(), model=st.sampled_from(["reference", "random_action"]))
def test_sampled_tasks_are_valid_cmdps(seed, varied, model):
    family = GridWorldFamily.varied(noise_model=model) if varied else GridWorldFamily(noise_model=model)
    for task in family.sample(3, seed=seed):
        family.check_task(task)
        assert 0.0 <= task.noise <= 0.5
        cmdp = family.tabular(task)
        np.testing.assert_allclose(cmdp.P.sum(axis=2), 1.0, atol=1e-12)
        assert (cmdp.P >= 0).all() and (cmdp.c >= 0).all()
        assert np.isclose(cmdp.mu.sum(), 1.0)
        assert cmdp.cost_limit == task.cost_limit


@settings(max_examples=60, deadline=None)
@given(noise=st.floats(0.0, 0.5), cost_limit=st.floats(1.0, 2.0))
def test_explicit_tasks_in_range_are_accepted(noise, cost_limit):
    family = GridWorldFamily.varied()
    task = family.task(noise=noise, cost_limit=cost_limit)
    assert task.noise == noise and task.cost_limit == cost_limit
