"""Policies as plain values that save to ``.npz`` and load without unpickling anything:

* :class:`TabularPolicy`: action probabilities per state, read exactly out of SB3 and OmniSafe models trained on
  tabular families;
* :class:`MLPPolicy`: the actor network of an SB3 or OmniSafe model as numpy arrays (weights, biases, activations,
  and the log standard deviation of Gaussian actors), for any family.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from cmdp_envs.io import atomic_write
from cmdp_envs.task import SeedLike, as_generator

__all__ = [
    "TabularPolicy",
    "MLPPolicy",
    "sample_action",
    "softmax",
    "gaussian_argmax_probabilities",
    "tabular_policy_from_sb3",
    "tabular_policy_from_omnisafe",
]


def sample_action(probabilities: np.ndarray, rng: np.random.Generator) -> int:
    """One draw from a categorical distribution (round-off past the last cumulative sum maps to the last action)."""
    return int(min(np.searchsorted(np.cumsum(probabilities), rng.random(), side="right"), len(probabilities) - 1))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(S, A)`` logits: the tabular softmax policy (``-inf`` logits get probability zero)."""
    policy = np.exp(logits - logits.max(axis=1, keepdims=True))
    return policy / policy.sum(axis=1, keepdims=True)


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

    def reseed(self, seed: SeedLike) -> None:
        """Restart the action sampler from ``seed`` (drivers call this so that a seeded run is reproducible)."""
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
        return sample_action(self.action_probabilities(observation), self._rng)

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


_ACTIVATIONS = {
    "identity": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0.0),
}
_OUTPUTS = ("categorical", "gaussian", "gaussian_argmax")


def _torch_layers(modules: list[Any]) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """Weights, biases and per-layer activations of a chain of ``Linear`` and activation modules."""
    import torch.nn as nn

    names = {nn.Tanh: "tanh", nn.ReLU: "relu", nn.Identity: "identity"}
    weights, biases, activations = [], [], []
    for module in modules:
        if isinstance(module, nn.Sequential):
            sub = _torch_layers(list(module))
            weights += sub[0]
            biases += sub[1]
            activations += sub[2]
        elif isinstance(module, nn.Linear):
            weights.append(module.weight.detach().cpu().numpy().astype(np.float64))
            biases.append(module.bias.detach().cpu().numpy().astype(np.float64))
            activations.append("identity")
        elif type(module) in names:
            if not weights:
                raise ValueError("an activation before the first Linear layer is not supported")
            activations[-1] = names[type(module)]
        else:
            raise ValueError(f"unsupported layer {module!r}: MLPPolicy handles Linear, Tanh, ReLU and Identity")
    return weights, biases, activations


class MLPPolicy:
    """A multilayer-perceptron actor in numpy.

    The observation is flattened as Gymnasium flattens it (a ``Discrete(n)`` index becomes its one-hot vector), passed
    through the layers, and read as

    * ``"categorical"``: logits of a discrete action (SB3 on ``Discrete`` action spaces);
    * ``"gaussian"``: the mean of a Gaussian with standard deviation ``exp(log_std)`` (continuous actions);
    * ``"gaussian_argmax"``: a Gaussian whose draw's argmax is the discrete action (OmniSafe through the bridge).
    """

    def __init__(self, weights: list[np.ndarray], biases: list[np.ndarray], activations: list[str], output: str,
                 observation_size: int, discrete_observation: bool, log_std: np.ndarray | None = None,
                 action_bounds: tuple[np.ndarray, np.ndarray] | None = None, seed: SeedLike = None):
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}, got {output!r}")
        if not (len(weights) == len(biases) == len(activations) >= 1):
            raise ValueError("need as many weights, biases and activations, at least one of each")
        unknown = set(activations) - set(_ACTIVATIONS)
        if unknown:
            raise ValueError(f"unknown activation(s) {sorted(unknown)}; known: {sorted(_ACTIVATIONS)}")
        size = int(observation_size)
        for index, (weight, bias) in enumerate(zip(weights, biases)):
            if weight.ndim != 2 or weight.shape[1] != size or bias.shape != (weight.shape[0],):
                raise ValueError(f"layer {index}: weight {weight.shape} and bias {bias.shape} do not chain from {size}")
            size = weight.shape[0]
        if output != "categorical" and (log_std is None or np.shape(log_std) != (size,)):
            raise ValueError(f"a Gaussian output needs log_std of shape ({size},)")
        self.weights = [np.asarray(w, dtype=np.float64) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float64) for b in biases]
        self.activations = list(activations)
        self.output = output
        self.observation_size = int(observation_size)
        self.discrete_observation = bool(discrete_observation)
        self.log_std = None if log_std is None else np.asarray(log_std, dtype=np.float64)
        if action_bounds is not None:
            low, high = (np.asarray(bound, dtype=np.float64) for bound in action_bounds)
            if output != "gaussian" or low.shape != (size,) or high.shape != (size,) or np.any(low >= high):
                raise ValueError(f"action_bounds must be (low, high) of shape ({size},) with low < high, for a "
                                 "Gaussian output")
            action_bounds = (low, high)
        self.action_bounds = action_bounds
        self._rng = as_generator(seed)

    def reseed(self, seed: SeedLike) -> None:
        """Restart the action sampler from ``seed``."""
        self._rng = as_generator(seed)

    @classmethod
    def from_sb3(cls, model: Any, seed: SeedLike = None) -> MLPPolicy:
        """The actor of an SB3 ``MlpPolicy`` model (PPO, TRPO, A2C) on a flat observation space."""
        import gymnasium as gym

        policy = model.policy
        weights, biases, activations = _torch_layers([policy.mlp_extractor.policy_net, policy.action_net])
        discrete_actions = isinstance(policy.action_space, gym.spaces.Discrete)
        log_std = None if discrete_actions else policy.log_std.detach().cpu().numpy()
        return cls(weights, biases, activations, "categorical" if discrete_actions else "gaussian",
                   observation_size=gym.spaces.flatdim(policy.observation_space),
                   discrete_observation=isinstance(policy.observation_space, gym.spaces.Discrete),
                   log_std=log_std, seed=seed)

    @classmethod
    def from_omnisafe(cls, actor: Any, observation_space: Any, discrete_actions: bool,
                      action_bounds: tuple[np.ndarray, np.ndarray] | None = None, seed: SeedLike = None) -> MLPPolicy:
        """An OmniSafe Gaussian actor trained through the bridge on an env with ``observation_space`` (the
        Gymnasium space before flattening); ``discrete_actions`` when the env's actions are ``Discrete``. For a
        ``Box`` action space pass its ``(low, high)``: OmniSafe's agent acts in ``[-1, 1]`` and its ``ActionScale``
        wrapper maps that onto the bounds, which :meth:`act` then does too."""
        import gymnasium as gym

        weights, biases, activations = _torch_layers([actor.mean])
        return cls(weights, biases, activations, "gaussian_argmax" if discrete_actions else "gaussian",
                   observation_size=gym.spaces.flatdim(observation_space),
                   discrete_observation=isinstance(observation_space, gym.spaces.Discrete),
                   log_std=actor.log_std.detach().cpu().numpy(), action_bounds=action_bounds, seed=seed)

    def _features(self, observation: Any) -> np.ndarray:
        if self.discrete_observation:
            state = int(np.asarray(observation))
            if not 0 <= state < self.observation_size:
                raise ValueError(f"state {state} is outside [0, {self.observation_size - 1}]")
            features = np.zeros(self.observation_size)
            features[state] = 1.0
            return features
        features = np.asarray(observation, dtype=np.float64).ravel()
        if features.shape != (self.observation_size,):
            raise ValueError(f"observation has {features.size} entries, the policy takes {self.observation_size}")
        return features

    def forward(self, observation: Any) -> np.ndarray:
        """The network's output: logits (categorical) or the Gaussian mean."""
        x = self._features(observation)
        for weight, bias, activation in zip(self.weights, self.biases, self.activations):
            x = _ACTIVATIONS[activation](weight @ x + bias)
        return x

    def action_probabilities(self, observation: Any, n_samples: int = 20_000) -> np.ndarray:
        """Probabilities of the discrete actions (exact for categorical outputs, estimated for Gaussian argmax)."""
        output = self.forward(observation)
        if self.output == "categorical":
            z = np.exp(output - output.max())
            return z / z.sum()
        if self.output == "gaussian_argmax":
            return gaussian_argmax_probabilities(output[None], np.exp(self.log_std)[None], n_samples, self._rng)[0]
        raise ValueError("a continuous Gaussian policy has no action probabilities")

    def act(self, observation: Any, deterministic: bool = False) -> Any:
        output = self.forward(observation)
        if self.output == "categorical":
            if deterministic:
                return int(np.argmax(output))
            return sample_action(self.action_probabilities(observation), self._rng)
        action = output if deterministic else output + np.exp(self.log_std) * self._rng.standard_normal(output.shape)
        if self.output == "gaussian_argmax":
            return int(np.argmax(action))
        if self.action_bounds is not None:
            low, high = self.action_bounds
            action = low + (action + 1.0) * (high - low) / 2.0
        return action

    def save(self, path: str | os.PathLike) -> Path:
        """Write the network to an ``.npz`` file (arrays and a JSON header), atomically."""
        header = {"output": self.output, "activations": self.activations, "observation_size": self.observation_size,
                  "discrete_observation": self.discrete_observation, "layers": len(self.weights)}
        arrays = {f"weight_{i}": w for i, w in enumerate(self.weights)}
        arrays.update({f"bias_{i}": b for i, b in enumerate(self.biases)})
        if self.log_std is not None:
            arrays["log_std"] = self.log_std
        if self.action_bounds is not None:
            arrays["action_low"], arrays["action_high"] = self.action_bounds
        return atomic_write(path, lambda file: np.savez(file, header=np.array(json.dumps(header)), **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike, seed: SeedLike = None) -> MLPPolicy:
        """Read a policy written by :meth:`save`; never unpickles (``allow_pickle=False``)."""
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                layers = range(int(header["layers"]))
                return cls([data[f"weight_{i}"] for i in layers], [data[f"bias_{i}"] for i in layers],
                           header["activations"], header["output"], header["observation_size"],
                           header["discrete_observation"], data["log_std"] if "log_std" in data else None,
                           (data["action_low"], data["action_high"]) if "action_low" in data else None, seed=seed)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not a saved MLPPolicy: {error}") from error
