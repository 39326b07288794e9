import os

import gymnasium as gym
import numpy as np
import pytest

import cmdp_envs  # noqa: F401  (registers the ids)
from cmdp_envs.families.gridworld import GridWorldFamily

os.environ.setdefault("MPLBACKEND", "Agg")

#: Two-sided normal quantile for the Monte Carlo checks: a correct implementation fails one check with probability
#: about 6e-5; every check is seeded, so a pass is reproducible.
Z = 4.0


@pytest.fixture(scope="session")
def paper_family() -> GridWorldFamily:
    return GridWorldFamily()


@pytest.fixture(scope="session")
def varied_family() -> GridWorldFamily:
    return GridWorldFamily.varied()


@pytest.fixture
def env():
    env = gym.make("cmdp_envs/GridWorld-v0")
    yield env
    env.close()


def random_cmdp(rng: np.random.Generator, n_states: int, n_actions: int, cost_limit: float, gamma: float = 0.8):
    from cmdp_envs.tabular import TabularCMDP

    P = rng.dirichlet(np.full(n_states, 0.5), size=(n_states, n_actions))
    return TabularCMDP(
        P=P,
        r=rng.uniform(0, 1, (n_states, n_actions)),
        c=rng.uniform(0, 1, (n_states, n_actions)),
        mu=rng.dirichlet(np.ones(n_states)),
        gamma=gamma,
        cost_limit=cost_limit,
    )
