"""Test-phase speed of the safe mixture (Algorithm 2), measured against a per-step loop in the same run.

``run_on_tabular`` drives :class:`~cmdp_envs.meta.safe_mixture.SafeMixture` for ``K`` episodes on one gridworld test
task through the batched sampler (the elimination and weight updates run after every episode). The reference runs
the same algorithm object with each episode sampled by a per-step Python loop over the same mixture and model (one
``rng.choice`` per action and per next state, the pattern of the authors' test loop). Both use ``horizon`` steps per
episode. Target: ratio >= 50, i.e. the full reproduction (seven methods, ten tasks, K = 40,000) well inside 10 minutes.

Usage: python benchmarks/safe_mixture_throughput.py [--episodes 40000] [--loop-episodes 300]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from cmdp_envs.families.gridworld import PAPER_TEST_NOISE_LEVELS, GridWorldFamily
from cmdp_envs.meta.covering import train
from cmdp_envs.meta.oracles import DistanceCheck, ExactLPOracle, ExactSimultaneouslyFeasibleOracle
from cmdp_envs.meta.safe_mixture import PracticalConstants, SafeMixture, run_on_tabular
from env_throughput import python_loop_episode  # benchmarks/ is on sys.path when a script in it runs


def loop_episodes_per_second(algorithm: SafeMixture, covering, cmdp, n_episodes: int, horizon: int) -> float:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for _ in range(n_episodes):
        proposal = algorithm.propose()
        use_candidate = proposal.candidate is not None and rng.random() < proposal.alpha
        policy = (covering.policy_values[proposal.candidate].policy if use_candidate
                  else covering.safe_policy).probabilities
        algorithm.observe(*python_loop_episode(cmdp, policy, horizon, rng))
    return n_episodes / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=40_000)
    parser.add_argument("--loop-episodes", type=int, default=300)
    parser.add_argument("--horizon", type=int, default=100)
    args = parser.parse_args()

    family = GridWorldFamily()
    feasible_oracle = ExactSimultaneouslyFeasibleOracle(family, reference_tasks=[family.task(noise=0.4)],
                                                        exploration=0.02)
    covering = train(family, ExactLPOracle(family), DistanceCheck(family, parameter="noise"), feasible_oracle,
                     delta=0.1, eps=0.01, xi=0.05, seed=0)
    cmdp = family.tabular(family.task(noise=PAPER_TEST_NOISE_LEVELS[0]))

    def fresh(n_episodes: int) -> SafeMixture:
        return SafeMixture(covering.policy_values, cmdp.cost_limit, cmdp.gamma, n_episodes, PracticalConstants())

    start = time.perf_counter()
    run_on_tabular(fresh(args.episodes), covering, cmdp, args.horizon, seed=0)
    ours = args.episodes / (time.perf_counter() - start)
    loop = loop_episodes_per_second(fresh(args.loop_episodes), covering, cmdp, args.loop_episodes, args.horizon)
    ratio = ours / loop
    print(f"{'measure':<34} {'episodes/s':>12}   (horizon {args.horizon})")
    print(f"{'run_on_tabular (batched sampler)':<34} {ours:12,.0f}")
    print(f"{'per-step Python loop':<34} {loop:12,.0f}")
    print(f"ratio {ratio:.1f} (target >= 50x: {'ok' if ratio >= 50 else 'BELOW TARGET'}); "
          f"K = 40,000 on ten tasks: {400_000 / ours:.1f} s ours, {400_000 / loop / 60:.1f} min by the loop")


if __name__ == "__main__":
    main()
