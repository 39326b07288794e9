"""Executors: the same seeds give the same results in this process, on local processes and on Ray."""

import importlib.util
import sys

import numpy as np
import pytest

from cmdp_envs.meta.executors import (
    LocalExecutor,
    SerialExecutor,
    call_oracle_on_tasks,
    make_executor,
    spawn_seeds,
)
from cmdp_envs.meta.oracles import ExactLPOracle


def test_spawned_seeds_are_stable_and_distinct():
    assert spawn_seeds(0, 5) == spawn_seeds(0, 5)
    assert spawn_seeds(0, 5)[:3] == spawn_seeds(0, 3)
    assert len(set(spawn_seeds(0, 100))) == 100
    with pytest.raises(ValueError, match="seed"):
        spawn_seeds(-1, 2)


def _summary(results):
    return [(r.task, r.reward.value, r.cost.value, r.policy.probabilities.tobytes()) for r in results]


def test_local_processes_match_serial_for_oracle_calls(paper_family):
    tasks = paper_family.sample(4, seed=0)
    oracle = ExactLPOracle(paper_family)
    serial = call_oracle_on_tasks(SerialExecutor(), oracle, tasks, seed=1)
    local = call_oracle_on_tasks(LocalExecutor(max_workers=2), oracle, tasks, seed=1)
    assert _summary(local) == _summary(serial)
    assert [r.task for r in local] == tasks, "results come back in task order"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("stable_baselines3") is None,
                    reason="stable-baselines3 is in the 'sb3' extra")
def test_learned_oracles_are_reproducible_across_executors(paper_family):
    from cmdp_envs.meta.oracles.sb3_learners import SB3LagrangianOracle

    oracle = SB3LagrangianOracle(paper_family, total_timesteps=512, n_envs=1, n_steps=256,
                                 env_kwargs={"max_episode_steps": 20})
    tasks = paper_family.sample(2, seed=3)
    serial = call_oracle_on_tasks(SerialExecutor(), oracle, tasks, seed=7)
    local = call_oracle_on_tasks(LocalExecutor(max_workers=2), oracle, tasks, seed=7)
    for a, b in zip(serial, local):
        np.testing.assert_allclose(a.policy.probabilities, b.policy.probabilities, rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is in the 'ray' extra")
def test_ray_matches_serial(paper_family):
    from cmdp_envs.meta.executors import RayExecutor

    import ray

    with RayExecutor(num_cpus=2) as executor:
        tasks = paper_family.sample(3, seed=0)
        oracle = ExactLPOracle(paper_family)
        assert _summary(call_oracle_on_tasks(executor, oracle, tasks, seed=1)) == _summary(
            call_oracle_on_tasks(SerialExecutor(), oracle, tasks, seed=1))
        # A second executor joins the running session and does not own it.
        RayExecutor().shutdown()
        assert ray.is_initialized()
    assert not ray.is_initialized(), "the executor that started Ray stops it"
    with pytest.raises(ValueError, match="num_cpus"):
        RayExecutor(address="127.0.0.1:6379", num_cpus=2)


def test_make_executor_and_bad_input():
    assert isinstance(make_executor("serial"), SerialExecutor)
    assert make_executor("local", max_workers=1).max_workers == 1
    with pytest.raises(ValueError, match="executor must be one of"):
        make_executor("threads")
    with pytest.raises(ValueError, match="start_method"):
        LocalExecutor(start_method="teleport")
    assert LocalExecutor(max_workers=2).map(abs, []) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_local_workers_leave_when_the_main_process_is_killed(tmp_path):
    """`timeout` or a scheduler may kill only the main process: its workers must not run on for hours."""
    import os
    import signal
    import subprocess
    import time

    script = tmp_path / "orphans.py"
    script.write_text(
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from cmdp_envs.meta.executors import LocalExecutor\n"
        "def work(path):\n"
        "    Path(path).write_text(str(os.getpid()))\n"
        "    time.sleep(120)\n"
        "if __name__ == '__main__':\n"
        "    LocalExecutor(max_workers=2).map(work, [sys.argv[1] + '/a', sys.argv[1] + '/b'])\n"
    )
    main = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    try:
        deadline = time.monotonic() + 60
        while not ((tmp_path / "a").exists() and (tmp_path / "b").exists()):
            assert time.monotonic() < deadline and main.poll() is None, "the workers never started"
            time.sleep(0.2)
        time.sleep(0.2)  # the pid files are written
        workers = [int((tmp_path / name).read_text()) for name in ("a", "b")]
    finally:
        main.send_signal(signal.SIGKILL)
        main.wait()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        # A zombie (exited, not yet reaped by its new parent) has left too.
        with open(f"/proc/{pid}/stat") as file:
            return file.read().split(")")[-1].split()[0] != "Z"

    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers)
