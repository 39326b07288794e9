"""Reproductions of papers' experiments, one module per paper (``cmdp-envs reproduce <name>``)."""
