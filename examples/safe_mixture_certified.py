"""Covering + safe mixture in its certified setting on the gridworld, beside the authors' practical constants.

Training (Algorithm 1, the authors' setting) also calibrates each cover member's value errors on the sampled tasks.
The test phase then runs Algorithm 2 with anytime confidence sequences and raises the mixture weight only as far as
it is certified feasible. Every executed mixture is evaluated exactly.

Usage: python examples/safe_mixture_certified.py [episodes] [test noise level]
"""

import sys

import numpy as np

from cmdp_envs.families.gridworld import GridWorldFamily
from cmdp_envs.meta.covering import train
from cmdp_envs.meta.oracles import DistanceCheck, ReferenceTaskOptimum, RegularisedOracle
from cmdp_envs.meta.safe_mixture import CertifiedConstants, PracticalConstants, SafeMixtureMethod
from cmdp_envs.tabular import solve_cmdp

n_episodes = int(sys.argv[1]) if len(sys.argv) > 1 else 40_000
noise = float(sys.argv[2]) if len(sys.argv) > 2 else 0.3399476

family = GridWorldFamily()
training = train(family, RegularisedOracle(family), DistanceCheck(family, parameter="noise"),
                 ReferenceTaskOptimum(family, family.task(noise=0.4)), delta=0.05, eps=0.005, xi=0.05, seed=0,
                 calibrate=True)
largest = max(entry.value_errors.n_tasks for entry in training.policy_values)
print(f"cover: {training.cover_size} members, value errors calibrated on up to {largest} tasks each")

cmdp = family.tabular(family.task(noise=noise))
optimum = solve_cmdp(cmdp).reward_value
# Per-step rewards (the goal's 10) and costs (an unsafe cell's 10) lie in [0, 10]: the certificate's ranges.
certified = CertifiedConstants(reward_range=(0.0, 10.0), cost_range=(0.0, 10.0))
for name, constants in (("certified", certified), ("practical", PracticalConstants())):
    run = SafeMixtureMethod(constants).run_on_tabular(cmdp, training, n_episodes, 100, np.random.SeedSequence(0))
    print(f"{name}: regret {run.regret(optimum)[-1]:.0f}, {run.violating_policies} violating mixtures, largest J_c "
          f"{run.max_cost_value:.3f} (limit {cmdp.cost_limit:g}), largest alpha "
          f"{max(detail['alpha'] for detail in run.details):.3f}")
