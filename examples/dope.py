"""DOPE and the gridworld authors' DOPE+, the model-based safe-exploration baselines, on one gridworld task from the
covering authors' pi_s.

Both play their safe baseline during a warm-up, then plan on the transitions they have counted with an optimistic
reward and a pessimistic cost. DOPE's own warm-up K0 is billions of episodes here, so it never plans; this run
shortens it to show what its plans are worth at the gridworld's scale. The authors' DOPE+ keeps its 18,000 episodes
of pi_s (with shorter ones its plans are infeasible) and then plans with their hand-tuned bonuses.

Usage: python examples/dope.py [episodes] [DOPE's warm-up episodes]
"""

import sys

import numpy as np

from cmdp_envs.families.gridworld import GridWorldFamily
from cmdp_envs.meta.covering import CoveringResult
from cmdp_envs.meta.dope import DOPE, AuthorsDOPEPlus
from cmdp_envs.meta.policies import TabularPolicy
from cmdp_envs.tabular import evaluate_policy, solve_cmdp, solve_regularised_cmdp

n_episodes = int(sys.argv[1]) if len(sys.argv) > 1 else 25_000
warmup = int(sys.argv[2]) if len(sys.argv) > 2 else 1000

family = GridWorldFamily()
pi_s = solve_regularised_cmdp(family.tabular(family.task(noise=0.4))).policy  # the authors' pi_s
# Neither uses a cover: the training artefacts are pi_s alone.
training = CoveringResult(policy_values=(), safe_policy=TabularPolicy(pi_s), n_samples=1, doublings=0,
                          coverage_error=0.0, config={})
cmdp = family.tabular(family.task(noise=0.3))
print(f"DOPE's own warm-up here: K0 = {DOPE().warmup_episodes(cmdp, pi_s):.3g} episodes")

optimum = solve_cmdp(cmdp).reward_value
baseline_regret = n_episodes * (optimum - evaluate_policy(cmdp, pi_s)[0])
for name, method in (("DOPE", DOPE(warmup=warmup)), ("DOPE+ (authors)", AuthorsDOPEPlus())):
    run = method.run_on_tabular(cmdp, training, n_episodes, 100, np.random.SeedSequence(0))
    print(f"{name}, {n_episodes} episodes, warm-up {method.warmup}: {run.details[-1]['plan']} plans, regret "
          f"{run.regret(optimum)[-1]:.0f} (pi_s alone: {baseline_regret:.0f}), largest J_c {run.cost_values.max():.3f} "
          f"(limit {cmdp.cost_limit:g})")
