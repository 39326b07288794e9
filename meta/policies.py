"""Policies as plain values: tabular action probabilities, read exactly out of SB3 and OmniSafe models, saved as
npz and loaded without unpickling."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from cmdp_envs.io import atomic_write
from cmdp_envs.task import SeedLike, as_generator

__all__ = ["TabularPolicy", "gaussian_argmax_probabilities", "tabular_policy_from_sb3", "tabular_policy_from_omnisafe"]


class TabularPolicy:
    """A stationary policy over ``S`` states and ``A`` actions, ``probabilities[s, a] = pi(a|s)``.

    ``act(observation)`` accepts a state index or its one-hot vector (the two observation types of tabular
    families) and samples with the policy's own generator (``seed``).
    """

    def __init__(self, probabilities: np.ndarray, seed: SeedLike = None):
        probabilities = np.array(probabilities, dtype=np.float64)
        if probabilities.ndim != 2 or probabilities.shape[1] < 1:
            raise ValueError(f"probabilities must have shape (S, A), got {probabilities.shape}")
        if np.any(probabilities < -1e-12) or not np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-6):
            raise ValueError("every row of probabilities must be a distribution over actions")
        self.probabilities = np.clip(probabilities, 0.0, None) / np.clip(probabilities, 0.0, None).sum(1, keepdims=True)
        self.probabilities.setflags(write=False)
        self._rng = as_generator(seed)

    @property
    def n_states(self) -> int:
        return self.probabilities.shape[0]

    def _state(self, observation: Any) -> int:
        observation = np.asarray(observation)
        if observation.ndim == 0:
            state = int(observation)
        elif observation.shape == (self.n_states,):
            state = int(np.argmax(observation))
        else:
            raise ValueError(f"observation must be a state index or a one-hot vector of length {self.n_states}")
        if not 0 <= state < self.n_states:
            raise ValueError(f"state {state} is outside [0, {self.n_states - 1}]")
        return state

    def action_probabilities(self, observation: Any) -> np.ndarray:
        return self.probabilities[self._state(observation)]

    def act(self, observation: Any) -> int:
        probabilities = self.action_probabilities(observation)
        return int(min(np.searchsorted(np.cumsum(probabilities), self._rng.random(), side="right"),
                       len(probabilities) - 1))

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``probabilities`` to an ``.npz`` file, atomically."""
        return atomic_write(path, lambda file: np.savez(file, probabilities=self.probabilities))

    @classmethod
    def load(cls, path: str | os.PathLike, seed: SeedLike = None) -> TabularPolicy:
        """Read a policy written by :meth:`save`; never unpickles (``allow_pickle=False``)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                probabilities = data["probabilities"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path} is not a saved TabularPolicy: {error}") from error
        return cls(probabilities, seed=seed)

    def __repr__(self) -> str:
        return f"TabularPolicy(n_states={self.n_states}, n_actions={self.probabilities.shape[1]})"


def gaussian_argmax_probabilities(mean: np.ndarray, std: np.ndarray, n_samples: int = 20_000,
                                  seed: SeedLike = 0) -> np.ndarray:
    """``P(argmax_a x_a = a)`` for ``x ~ Normal(mean, diag(std^2))`` per row: the categorical policy that a Gaussian
    actor induces through the OmniSafe bridge's argmax action mapping. Monte Carlo with ``n_samples`` draws per row
    (standard error at most ``0.5 / sqrt(n_samples)`` per probability); rows with ``std == 0`` are exact."""
    mean, std = np.broadcast_arrays(np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64))
    rng = as_generator(seed)
    draws = mean[:, None, :] + std[:, None, :] * rng.standard_normal((mean.shape[0], n_samples, mean.shape[1]))
    winners = draws.argmax(axis=2)
    counts = np.stack([np.bincount(row, minlength=mean.shape[1]) for row in winners])
    return counts / n_samples


def _one_hot_states(n_states: int) -> np.ndarray:
    return np.eye(n_states, dtype=np.float32)


def tabular_policy_from_sb3(model: Any, n_states: int, one_hot: bool = True) -> TabularPolicy:
    """The exact action probabilities of an SB3 model with a categorical policy, in every state."""
    import torch

    observations = _one_hot_states(n_states) if one_hot else np.arange(n_states)
    with torch.no_grad():
        tensor, _ = model.policy.obs_to_tensor(observations)
        probabilities = model.policy.get_distribution(tensor).distribution.probs.cpu().numpy()
    probabilities = probabilities.astype(np.float64)
    return TabularPolicy(probabilities / probabilities.sum(axis=1, keepdims=True))


def tabular_policy_from_omnisafe(actor: Any, n_states: int, n_samples: int = 20_000,
                                 seed: SeedLike = 0) -> TabularPolicy:
    """The categorical policy of an OmniSafe Gaussian actor trained through the bridge (one-hot observations, argmax
    actions), estimated by :func:`gaussian_argmax_probabilities`."""
    import torch

    with torch.no_grad():
        distribution = actor(torch.as_tensor(_one_hot_states(n_states)))
        mean, std = distribution.mean.cpu().numpy(), distribution.stddev.cpu().numpy()
    return TabularPolicy(gaussian_argmax_probabilities(mean, std, n_samples=n_samples, seed=seed))
