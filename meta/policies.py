"""Policies as plain values that save to ``.npz`` and load without unpickling anything:

* :class:`TabularPolicy`: action probabilities per state, read exactly out of SB3 and OmniSafe models trained on
  tabular families;
* :class:`MLPPolicy`: the actor network of an SB3 or OmniSafe model as numpy arrays (weights, biases, activations,
  and the log standard deviation of Gaussian actors), for any family.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cmdp_envs.io import UnreadableFileError, atomic_write, check_json_fields, read_npz
from cmdp_envs.tabular import check_distribution_rows
from cmdp_envs.task import SeedLike, as_generator, check_count

__all__ = [
    "TabularPolicy",
    "MLPPolicy",
    "sample_action",
    "softmax",
    "gaussian_argmax_probabilities",
    "tabular_policy_from_sb3",
    "tabular_policy_from_omnisafe",
]

# Rows off one by at most this are kept as they are: renormalising them would move entries by an ulp on every
# construction, and a policy loaded from its saved probabilities must equal the one saved.
_RENORMALISE_ABOVE = 1e-12
# Normal draws per block in gaussian_argmax_probabilities (8 MiB of float64).
_GAUSSIAN_BLOCK = 2**20


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

    Construction clips round-off negatives to zero and renormalises only the rows whose sum is off one by more than
    ``1e-12``. Rows it renormalises then sum to one within a few ulps, so building a policy from another's
    ``probabilities`` (or from a saved file) reproduces them bit for bit.
    """

    def __init__(self, probabilities: np.ndarray, seed: SeedLike = None):
        kind = np.asarray(probabilities).dtype.kind
        if kind not in "iuf":  # no silent parsing of strings, and bools or objects are not probabilities
            raise ValueError(f"probabilities must be an int or float array, got dtype {np.asarray(probabilities).dtype}")
        probabilities = np.array(probabilities, dtype=np.float64)
        if probabilities.ndim != 2 or probabilities.shape[1] < 1:
            raise ValueError(f"probabilities must have shape (S, A) with A >= 1, got {probabilities.shape}")
        check_distribution_rows(probabilities, "probabilities")
        np.clip(probabilities, 0.0, None, out=probabilities)
        sums = probabilities.sum(axis=1, keepdims=True)
        off = np.abs(sums - 1.0) > _RENORMALISE_ABOVE
        probabilities = np.where(off, probabilities / sums, probabilities)
        probabilities.setflags(write=False)
        self.probabilities = probabilities
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
        """Write ``probabilities`` to an ``.npz`` file, atomically; :meth:`load` gives them back bit for bit."""
        return atomic_write(path, lambda file: np.savez(file, probabilities=self.probabilities))

    @classmethod
    def load(cls, path: str | os.PathLike, seed: SeedLike = None,
             shape: tuple[int, int] | None = None) -> TabularPolicy:
        """Read a policy written by :meth:`save`; never unpickles.

        :param shape: the ``(S, A)`` the policy must have (e.g. the task's), checked when given.
        :raises FileNotFoundError: the file is missing.
        :raises UnreadableFileError: (a ``ValueError`` naming the file) the file is not a saved policy, has another
            shape than ``shape``, or its rows are not probability distributions (non-finite entries included).
        """
        try:
            arrays = read_npz(path)
        except UnreadableFileError as error:
            raise UnreadableFileError(path, f"not a saved TabularPolicy: {error.reason}") from error
        if "probabilities" not in arrays:
            raise UnreadableFileError(path, f"not a saved TabularPolicy: no array 'probabilities' (it has "
                                            f"{sorted(arrays)})")
        probabilities = arrays["probabilities"]
        if shape is not None and probabilities.shape != tuple(shape):
            raise UnreadableFileError(path, f"probabilities have shape {probabilities.shape}, expected "
                                            f"{tuple(shape)} (S, A)")
        try:
            return cls(probabilities, seed=seed)
        except ValueError as error:
            raise UnreadableFileError(path, f"not a valid TabularPolicy: {error}") from error

    def __repr__(self) -> str:
        return f"TabularPolicy(n_states={self.n_states}, n_actions={self.probabilities.shape[1]})"


def gaussian_argmax_probabilities(mean: np.ndarray, std: np.ndarray, n_samples: int = 20_000,
                                  seed: SeedLike = 0) -> np.ndarray:
    """``P(argmax_a x_a = a)`` for ``x ~ Normal(mean, diag(std^2))`` per row: the categorical policy that a Gaussian
    actor induces through the OmniSafe bridge's argmax action mapping. Monte Carlo with ``n_samples`` draws per row
    (standard error at most ``0.5 / sqrt(n_samples)`` per probability); rows with ``std == 0`` are exact.

    ``mean`` and ``std`` broadcast to ``(S, A)``. The draws are made row by row in blocks of at most
    ``_GAUSSIAN_BLOCK`` numbers, so memory stays bounded for any ``n_samples``; the generator fills arrays in C
    order, so the blocks consume its stream exactly as one ``(S, n_samples, A)`` draw would, and give the same
    probabilities.
    """
    n_samples = check_count("n_samples", n_samples, minimum=1)
    mean, std = np.broadcast_arrays(np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64))
    if mean.ndim != 2 or mean.shape[1] < 1:
        raise ValueError(f"mean and std must broadcast to shape (S, A) with A >= 1, got {mean.shape}")
    rng = as_generator(seed)
    n_actions = mean.shape[1]
    block = max(1, _GAUSSIAN_BLOCK // n_actions)
    counts = np.zeros(mean.shape, dtype=np.int64)
    for row in range(mean.shape[0]):
        for start in range(0, n_samples, block):
            size = min(block, n_samples - start)
            draws = mean[row] + std[row] * rng.standard_normal((size, n_actions))
            counts[row] += np.bincount(draws.argmax(axis=1), minlength=n_actions)
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
            raise ValueError(f"need as many weights, biases and activations, at least one of each; got "
                             f"{len(weights)}, {len(biases)} and {len(activations)}")
        unknown = set(activations) - set(_ACTIVATIONS)
        if unknown:
            raise ValueError(f"unknown activation(s) {sorted(unknown)}; known: {sorted(_ACTIVATIONS)}")
        weights = [np.asarray(w, dtype=np.float64) for w in weights]
        biases = [np.asarray(b, dtype=np.float64) for b in biases]
        size = int(observation_size)
        for index, (weight, bias) in enumerate(zip(weights, biases)):
            if weight.ndim != 2 or weight.shape[1] != size or bias.shape != (weight.shape[0],):
                raise ValueError(f"layer {index}: weight {weight.shape} and bias {bias.shape} do not chain from {size}")
            _check_finite(f"the weight of layer {index}", weight)
            _check_finite(f"the bias of layer {index}", bias)
            size = weight.shape[0]
        if output != "categorical" and (log_std is None or np.shape(log_std) != (size,)):
            raise ValueError(f"a Gaussian output needs log_std of shape ({size},), got "
                             f"{None if log_std is None else np.shape(log_std)}")
        if log_std is not None:
            log_std = np.asarray(log_std, dtype=np.float64)
            _check_finite("log_std", log_std)
        if action_bounds is not None:
            low, high = (np.asarray(bound, dtype=np.float64) for bound in action_bounds)
            if output != "gaussian" or low.shape != (size,) or high.shape != (size,):
                raise ValueError(f"action_bounds must be (low, high) of shape ({size},) for a Gaussian output; got "
                                 f"shapes {low.shape} and {high.shape} for output {output!r}")
            _check_finite("the action bound low", low)
            _check_finite("the action bound high", high)
            if np.any(low >= high):
                index = int(np.argmax(low >= high))
                raise ValueError(f"action_bounds need low < high; at index {index} low = {float(low[index])!r} "
                                 f"and high = {float(high[index])!r}")
            action_bounds = (low, high)
        self.weights = weights
        self.biases = biases
        self.activations = list(activations)
        self.output = output
        self.observation_size = int(observation_size)
        self.discrete_observation = bool(discrete_observation)
        self.log_std = log_std
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
        """Read a policy written by :meth:`save`; never unpickles.

        :raises FileNotFoundError: the file is missing.
        :raises UnreadableFileError: (a ``ValueError`` naming the file) the file is not an ``.npz`` archive, its
            header is not the JSON :meth:`save` writes, its arrays do not match the header's layer count, or the
            network is invalid (shapes that do not chain, non-finite numbers).
        """
        try:
            arrays = read_npz(path, text_keys=("header",))
        except UnreadableFileError as error:
            raise UnreadableFileError(path, f"not a saved MLPPolicy: {error.reason}") from error
        header = _read_header(path, arrays)
        layers = range(header["layers"])
        expected = {f"{kind}_{i}" for kind in ("weight", "bias") for i in layers} | {"header"}
        optional = {"log_std", "action_low", "action_high"}
        missing, unexpected = sorted(expected - set(arrays)), sorted(set(arrays) - expected - optional)
        if missing or unexpected:
            problems = ([f"misses the arrays {missing}"] if missing else []) + (
                [f"has the unexpected arrays {unexpected}"] if unexpected else [])
            raise UnreadableFileError(path, f"the header says {header['layers']} layers, but the archive "
                                            f"{' and '.join(problems)}")
        if ("action_low" in arrays) != ("action_high" in arrays):
            raise UnreadableFileError(path, "has only one of the arrays action_low and action_high")
        bounds = (arrays["action_low"], arrays["action_high"]) if "action_low" in arrays else None
        try:
            return cls([arrays[f"weight_{i}"] for i in layers], [arrays[f"bias_{i}"] for i in layers],
                       header["activations"], header["output"], header["observation_size"],
                       header["discrete_observation"], arrays.get("log_std"), bounds, seed=seed)
        except ValueError as error:
            raise UnreadableFileError(path, f"not a valid MLPPolicy: {error}") from error


def _check_finite(name: str, array: np.ndarray) -> None:
    """``ValueError`` naming ``name``, the position and the value of the first non-finite entry of ``array``."""
    bad = ~np.isfinite(array)
    if bad.any():
        position = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} has a non-finite entry {float(array[position])!r} at index {position}")


#: The fields of MLPPolicy's saved header and their JSON types.
_HEADER_FIELDS: dict[str, type] = {
    "output": str, "activations": list, "observation_size": int, "discrete_observation": bool, "layers": int,
}


def _read_header(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The JSON header of a saved MLPPolicy, its fields checked for type; ``UnreadableFileError`` otherwise."""
    if "header" not in arrays:
        raise UnreadableFileError(path, f"not a saved MLPPolicy: no 'header' array (it has {sorted(arrays)})")
    if arrays["header"].shape != ():
        raise UnreadableFileError(path, f"the header must be one string, got an array of shape "
                                        f"{arrays['header'].shape}")
    try:
        header = json.loads(str(arrays["header"]))
    except json.JSONDecodeError as error:
        raise UnreadableFileError(path, f"the header is not valid JSON: {error}") from error
    header = check_json_fields(path, "the header", header, _HEADER_FIELDS)
    if not all(isinstance(name, str) for name in header["activations"]):
        raise UnreadableFileError(path, f"header field 'activations' must be a list of strings, got "
                                        f"{header['activations']!r}")
    if header["layers"] < 1 or header["observation_size"] < 1:
        raise UnreadableFileError(path, f"header fields 'layers' and 'observation_size' must be >= 1, got "
                                        f"{header['layers']} and {header['observation_size']}")
    return header
