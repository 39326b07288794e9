"""Frames per second of OmniSafe training through the bridge, as a ratio to OmniSafe training on a native
``CustomEnv``-style environment of the same size, measured in one run (lane B: Python 3.10, 'omnisafe' extra).

The native environment is the same gridworld (same transition model, 49-dim one-hot observations, 4-dim Box actions
mapped by argmax, 200-step episodes) written directly against OmniSafe's ``CMDP`` API with torch tensors and
OmniSafe's own TimeLimit and AutoReset wrappers: what a user would write by hand following OmniSafe's CustomEnv
example. Target: the bridge costs at most 10%, i.e. ratio >= 0.90.

Usage: python benchmarks/omnisafe_bridge_overhead.py [--algo PPOLag] [--steps 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import omnisafe
import torch
from omnisafe.envs.core import CMDP, env_register

import cmdp_envs  # noqa: F401
from cmdp_envs.wrappers.omnisafe_bridge import omnisafe_custom_cfgs, register_omnisafe_envs

GRID = gym.make("cmdp_envs/GridWorld-v0").unwrapped
MODEL = GRID.tabular()


@env_register
class NativeGridWorld(CMDP):
    """The gridworld written by hand against OmniSafe's API (the reference)."""

    _support_envs: ClassVar[list[str]] = ["NativeGridWorld-v0"]
    need_auto_reset_wrapper = True
    need_time_limit_wrapper = True
    _num_envs = 1
    metadata: ClassVar[dict[str, Any]] = {}

    def __init__(self, env_id: str, **kwargs: Any) -> None:
        self._observation_space = gym.spaces.Box(0.0, 1.0, (MODEL.n_states,), dtype=np.float32)
        self._action_space = gym.spaces.Box(-1.0, 1.0, (MODEL.n_actions,), dtype=np.float32)
        self._cumulative = np.cumsum(MODEL.P, axis=2)
        self._rng = np.random.default_rng(0)
        self._state = 0
        self._discount = 1.0

    @property
    def max_episode_steps(self) -> int:
        return 200

    def _observation(self) -> torch.Tensor:
        observation = torch.zeros(MODEL.n_states)
        observation[self._state] = 1.0
        return observation

    def step(self, action: torch.Tensor):
        a = int(torch.argmax(action))
        s = self._state
        reward, cost = MODEL.r[s, a], MODEL.c[s, a] * self._discount
        self._discount *= MODEL.gamma
        self._state = int(np.searchsorted(self._cumulative[s, a], self._rng.random(), side="right"))
        observation = self._observation()
        return (observation, torch.as_tensor(reward, dtype=torch.float32), torch.as_tensor(cost, dtype=torch.float32),
                torch.as_tensor(False), torch.as_tensor(False), {"final_observation": observation})

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.set_seed(seed)
        self._state = int(np.searchsorted(np.cumsum(MODEL.mu), self._rng.random(), side="right"))
        self._discount = 1.0
        return self._observation(), {}

    def set_seed(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def render(self) -> Any:
        return None

    def close(self) -> None:
        pass


def frames_per_second(algo: str, env_id: str, cfgs: dict[str, Any]) -> float:
    with tempfile.TemporaryDirectory() as log_dir:
        cfgs = {**cfgs, "logger_cfgs": {**cfgs["logger_cfgs"], "log_dir": log_dir}}
        agent = omnisafe.Agent(algo, env_id, custom_cfgs=cfgs)
        start = time.perf_counter()
        agent.learn()
        return cfgs["train_cfgs"]["total_steps"] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="PPOLag")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    register_omnisafe_envs()
    cfgs = omnisafe_custom_cfgs(args.algo, "cmdp_envs/GridWorld-v0", total_steps=args.steps, steps_per_epoch=2000)
    bridge, native = [], []
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
        bridge.append(frames_per_second(args.algo, "cmdp_envs/GridWorld-v0", cfgs))
        native.append(frames_per_second(args.algo, "NativeGridWorld-v0", cfgs))
    ratio = max(bridge) / max(native)
    print(f"{args.algo}, {args.steps} steps, best of {args.repeats}:")
    print(f"  bridge (cmdp_envs/GridWorld-v0)   {max(bridge):9,.0f} frames/s")
    print(f"  native OmniSafe CMDP, same size   {max(native):9,.0f} frames/s")
    print(f"  ratio {ratio:.3f} (target >= 0.90): {'ok' if ratio >= 0.9 else 'BELOW TARGET'}")


if __name__ == "__main__":
    main()
