"""Xu & Zhu's safe closed-form adaptation on the paper's ten gridworld test tasks: exact values of every adapted
policy, per step, and whether the run stayed feasible throughout (anytime safety).

The starting policy pi_s must have full support: the closed form pi ∝ pi_phi exp(...) never gives probability to an
action pi_phi never takes, so adaptation from a deterministic LP policy stops after one step. Here pi_s is the
simultaneously feasible policy of 50 training tasks found by exact worst-case natural policy gradient (softmax
iterates, full support). The paper's own pi_s, the LP optimum of the noise-0.5 task, does not exist: that task is
infeasible (README, "Findings")."""

import sys

from cmdp_envs.families.gridworld import PAPER_TEST_NOISE_LEVELS, GridWorldFamily
from cmdp_envs.io import write_json
from cmdp_envs.meta.oracles import ExactSimultaneouslyFeasibleOracle
from cmdp_envs.meta.safe_adaptation import SafeAdaptationConfig, anytime_safety_evaluation, plot_anytime_safety

n_steps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
family = GridWorldFamily()
pi_s = ExactSimultaneouslyFeasibleOracle(family, iterations=300)(family.sample(50, seed=0), xi=0.0).policy
cmdps = [family.tabular(family.task(noise=noise)) for noise in PAPER_TEST_NOISE_LEVELS]
labels = [f"noise {noise:.4f}" for noise in PAPER_TEST_NOISE_LEVELS]

settings = {
    # The gridworld baseline setting of Ni & Kamgarpour's comparison, with sampled and with exact advantages.
    "baseline_sampled": SafeAdaptationConfig(advantages="sampled", n_episodes=1000, horizon=100),
    "baseline_exact": SafeAdaptationConfig(advantages="exact"),
    # The same with the multiplier solved exactly (bisection) instead of 30 dual-descent steps.
    "bisection_exact": SafeAdaptationConfig(advantages="exact", dual_method="bisection"),
    # A conservative KL weight in the constraint (the theory scales lambda_c with A_c_max / (1 - gamma)^2).
    "conservative_exact": SafeAdaptationConfig(advantages="exact", cost_kl=1000.0, dual_step=0.05,
                                               dual_iterations=300),
}
for name, config in settings.items():
    result = anytime_safety_evaluation(cmdps, pi_s.probabilities, n_steps, config, seed=0, labels=labels)
    write_json(f"safe_adaptation_{name}.json", result)
    plot_anytime_safety(result, f"safe_adaptation_{name}.png")
    final = sum(task["reward_values"][-1] for task in result["tasks"]) / len(result["tasks"])
    worst = max(max(task["cost_values"]) for task in result["tasks"])
    verdict = "anytime safe" if result["anytime_safe"] else "NOT anytime safe"
    print(f"{name:<20} mean final J_r = {final:.3f}, largest J_c = {worst:.4f} (limit 1.5): {verdict}")
    for task in result["tasks"]:
        if not task["anytime_safe"]:
            print(f"    {task['label']}: limit broken at steps {task['violating_steps']}")
