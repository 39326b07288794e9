"""Xu & Zhu's safe meta-RL (*Efficient Safe Meta-RL: Provable Near-Optimality and Anytime Safety*, NeurIPS 2025):

* :mod:`.closed_form`: the tabular safe closed-form adaptation step, its dual method, adaptation sequences, and
  Safe Meta-RL as a test-time method (:class:`SafeMetaRL`);
* :mod:`.anytime_safety`: every policy of every adaptation sequence evaluated exactly over a set of tasks, and its
  figure;
* :mod:`.meta_training`: meta-training of the meta-policy with exact gradients (torch);
* :mod:`.neural_step`: the adaptation step for neural policies on any env (torch);
* :mod:`.neural_meta_training`: that step as an inner loop, and the meta-training of a neural meta-policy over it.

The advantage estimators they share live in :mod:`cmdp_envs.meta.estimators`.
"""

from cmdp_envs.meta.estimators import AdvantageEstimate, exact_advantages, sampled_advantages, trajectory_advantages
from cmdp_envs.meta.safe_adaptation.anytime_safety import anytime_safety_evaluation, plot_anytime_safety
from cmdp_envs.meta.safe_adaptation.closed_form import (
    AdaptationRun,
    AdaptationStep,
    SafeAdaptationConfig,
    SafeMetaRL,
    adapt,
    adaptation_step,
    bisect_multiplier,
    closed_form_policy,
    closed_form_update,
    dual_multiplier,
    linearised_constraint,
    linearised_cost,
)
from cmdp_envs.meta.safe_adaptation.meta_training import MetaTrainingResult, meta_objective, meta_train
from cmdp_envs.meta.safe_adaptation.neural_meta_training import SafeAdaptationInnerLoop, xu_zhu_config
from cmdp_envs.meta.safe_adaptation.neural_step import (
    NeuralAdaptationConfig,
    NeuralAdaptationStep,
    make_policy_network,
    network_to_mlp_policy,
    neural_adaptation_step,
)

__all__ = [
    "AdaptationRun",
    "AdaptationStep",
    "AdvantageEstimate",
    "MetaTrainingResult",
    "NeuralAdaptationConfig",
    "NeuralAdaptationStep",
    "SafeAdaptationConfig",
    "SafeAdaptationInnerLoop",
    "SafeMetaRL",
    "adapt",
    "adaptation_step",
    "anytime_safety_evaluation",
    "bisect_multiplier",
    "closed_form_policy",
    "closed_form_update",
    "dual_multiplier",
    "exact_advantages",
    "linearised_constraint",
    "linearised_cost",
    "make_policy_network",
    "meta_objective",
    "meta_train",
    "network_to_mlp_policy",
    "neural_adaptation_step",
    "plot_anytime_safety",
    "sampled_advantages",
    "trajectory_advantages",
    "xu_zhu_config",
]
