"""DOPE, the model-based safe-exploration baseline, on one gridworld task from the covering authors' pi_s.

DOPE plays its safe baseline for K0 episodes, then plans optimistically over the kernels its counts allow, with a
pessimistic cost. With its own K0 (billions of episodes here) it never plans; this run shortens the warm-up to show
what its plans are worth at the gridworld's scale.

Usage: python examples/dope.py [episodes] [warm-up episodes]
"""

import sys

import numpy as np

from cmdp_envs.families.gridworld import GridWorldFamily
from cmdp_envs.meta.covering import CoveringResult
from cmdp_envs.meta.dope import DOPE
from cmdp_envs.meta.policies import TabularPolicy
from cmdp_envs.tabular import evaluate_policy, solve_cmdp, solve_regularised_cmdp

n_episodes = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
warmup = int(sys.argv[2]) if len(sys.argv) > 2 else 1000

family = GridWorldFamily()
pi_s = solve_regularised_cmdp(family.tabular(family.task(noise=0.4))).policy  # the authors' pi_s
# DOPE uses no cover: the training artefacts are pi_s alone.
training = CoveringResult(policy_values=(), safe_policy=TabularPolicy(pi_s), n_samples=1, doublings=0,
                          coverage_error=0.0, config={})
cmdp = family.tabular(family.task(noise=0.3))
print(f"DOPE's own warm-up here: K0 = {DOPE().warmup_episodes(cmdp, pi_s):.3g} episodes")

run = DOPE(warmup=warmup).run_on_tabular(cmdp, training, n_episodes, 100, np.random.SeedSequence(0))
optimum = solve_cmdp(cmdp).reward_value
baseline_regret = n_episodes * (optimum - evaluate_policy(cmdp, pi_s)[0])
print(f"{n_episodes} episodes, warm-up {warmup}: {run.details[-1]['plan']} plans, regret {run.regret(optimum)[-1]:.0f} "
      f"(pi_s alone: {baseline_regret:.0f}), largest J_c {run.cost_values.max():.3f} (limit {cmdp.cost_limit:g})")
