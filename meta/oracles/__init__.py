"""Learners as oracles for the meta algorithms: the protocol, the exact LP oracle and the entropy-regularised one,
SB3 and OmniSafe learners, the CMDP check and the simultaneously feasible oracles. The SB3 and OmniSafe oracles
import their libraries when used:
``from cmdp_envs.meta.oracles.sb3_learners import SB3LagrangianOracle`` (``sb3`` extra) and
``from cmdp_envs.meta.oracles.omnisafe_learners import OmniSafeOracle`` (``omnisafe`` extra, Python 3.10)."""

from cmdp_envs.meta.oracles.exact import ExactLPOracle, RegularisedOracle
from cmdp_envs.meta.oracles.feasible import (
    DistanceCheck,
    ExactSimultaneouslyFeasibleOracle,
    LearnedSimultaneouslyFeasibleOracle,
    NoFeasiblePolicyError,
    ReferenceTaskOptimum,
    SimultaneouslyFeasibleResult,
)
from cmdp_envs.meta.oracles.protocol import LearnerOracle, OracleResult, Policy, ValueEstimate, evaluate

__all__ = [
    "DistanceCheck",
    "ExactLPOracle",
    "ExactSimultaneouslyFeasibleOracle",
    "LearnedSimultaneouslyFeasibleOracle",
    "LearnerOracle",
    "NoFeasiblePolicyError",
    "OracleResult",
    "Policy",
    "ReferenceTaskOptimum",
    "RegularisedOracle",
    "SimultaneouslyFeasibleResult",
    "ValueEstimate",
    "evaluate",
]
