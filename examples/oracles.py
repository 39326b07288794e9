"""Learners as oracles: the exact LP oracle on many tasks in parallel processes, a policy feasible with a margin on
all of them (O_s), and the CMDP check (O_c) - the building blocks of covering + safe mixture."""

import numpy as np

from cmdp_envs.families.gridworld import GridWorldFamily
from cmdp_envs.meta.executors import LocalExecutor, call_oracle_on_tasks
from cmdp_envs.meta.oracles import DistanceCheck, ExactLPOracle, ExactSimultaneouslyFeasibleOracle

if __name__ == "__main__":  # process pools start fresh interpreters that import this file
    family = GridWorldFamily()
    tasks = family.sample(8, seed=0)

    answers = call_oracle_on_tasks(LocalExecutor(max_workers=2), ExactLPOracle(family), tasks, seed=0)
    for answer in answers:
        print(f"noise {answer.task.noise:.3f}: J_r = {answer.reward}, J_c = {answer.cost}")

    pi_s = ExactSimultaneouslyFeasibleOracle(family, iterations=500)(tasks, xi=0.1)
    print(f"O_s: one policy with margins {np.round(pi_s.margins, 3)} (>= xi = 0.1) on all {len(tasks)} tasks")
    pi_s.policy.save("pi_s.npz")

    check = DistanceCheck(family)
    print("O_c(task 0, task 1, eps=0.05):", check(tasks[0], tasks[1], eps=0.05),
          f"(distance {family.distance(tasks[0], tasks[1]):.4f})")
