"""The meta layer.

* :mod:`cmdp_envs.meta.oracles`: learners as oracles (exact LP, SB3, OmniSafe), ``O_c`` and ``O_s``;
* :mod:`cmdp_envs.meta.policies`: tabular and network policies as plain, pickle-free values;
* :mod:`cmdp_envs.meta.sb3_lagrangian`: PPO/TRPO-Lagrangian for SB3 (``sb3`` extra);
* :mod:`cmdp_envs.meta.executors`: serial, local-process and Ray executors;
* :mod:`cmdp_envs.meta.compare`: one protocol for constrained RL learners (``cmdp-envs compare``);
* :mod:`cmdp_envs.meta.cmaml`: C-MAML (Daaboul et al.); :mod:`cmdp_envs.meta.inner_loops`: its constrained
  learners, SB3's and OmniSafe's;
* :mod:`cmdp_envs.meta.test_time`: the meta-test protocol on any env (:mod:`cmdp_envs.meta.evaluation`: on tabular
  families, exactly).

Modules that need an optional dependency import it when they are imported, not here.
"""
