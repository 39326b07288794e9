"""The meta layer: learners as oracles and constrained meta-RL algorithms (added issue by issue)."""

__all__: list[str] = []
