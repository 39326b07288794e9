"""Executors for independent work (one oracle call per covering task, one inner loop per meta-batch task): in this
process, on local processes (default) or on a Ray cluster (``ray`` extra).

Every executor returns results in the order of its inputs, and work items carry their own seeds
(:func:`spawn_seeds`), so the same seeds give the same results whichever executor runs them.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

import numpy as np
from tqdm.auto import tqdm

from cmdp_envs.task import Task, check_count

__all__ = [
    "Executor",
    "SerialExecutor",
    "LocalExecutor",
    "RayExecutor",
    "EXECUTORS",
    "make_executor",
    "spawn_seeds",
    "call_oracle_on_tasks",
]

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """``executor.map(fn, items)``: ``[fn(item) for item in items]``, possibly in parallel, in input order. Each
    executor is also a context manager that stops what it started (processes, a Ray session) on leaving."""

    def map(self, fn: Callable[[T], R], items: Sequence[T], description: str = "") -> list[R]: ...


def spawn_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent int seeds derived from ``seed`` (numpy ``SeedSequence.spawn``): item ``i`` gets the same
    seed however the items are split among workers."""
    check_count("seed", seed)
    return [int(child.generate_state(1)[0]) for child in np.random.SeedSequence(seed).spawn(check_count("n", n))]


class SerialExecutor:
    """Runs everything in this process, one item after another (the reference the parallel executors must match).
    A context manager like the others, with nothing to stop."""

    def map(self, fn: Callable[[T], R], items: Sequence[T], description: str = "") -> list[R]:
        return [fn(item) for item in tqdm(items, desc=description or None, disable=not description)]

    def __enter__(self) -> SerialExecutor:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        pass


def _single_threaded_worker() -> None:
    # One thread per process, since the processes already use the cores. The variables reach libraries imported
    # from now on; a spawned worker has already re-imported the parent's __main__, which may have loaded torch.
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    # A worker whose parent was killed (`timeout`, a scheduler's SIGTERM to the main process) would run its current
    # item to the end, hours perhaps: it leaves as soon as it is orphaned instead.
    parent = os.getppid()

    def leave_when_orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=leave_when_orphaned, daemon=True).start()


class LocalExecutor:
    """Runs items on ``max_workers`` local processes (default: the number of CPUs).

    Processes start with ``"spawn"`` by default: forking a process that has loaded torch can deadlock. Functions and
    items must be picklable (families, tasks and the package's oracles are). The processes start at the first
    :meth:`map` and serve every later one (a meta-learner maps once per outer iteration, and starting processes that
    import torch takes seconds); :meth:`close`, or leaving a ``with`` block, stops them. A worker whose main process
    is killed leaves within a second rather than finishing its item.
    """

    def __init__(self, max_workers: int | None = None, start_method: str = "spawn"):
        self.max_workers = check_count("max_workers", max_workers, minimum=1) if max_workers else os.cpu_count() or 1
        if start_method not in multiprocessing.get_all_start_methods():
            raise ValueError(f"start_method must be one of {multiprocessing.get_all_start_methods()}, "
                             f"got {start_method!r}")
        self.start_method = start_method
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[T], R], items: Sequence[T], description: str = "") -> list[R]:
        items = list(items)
        if not items:
            return []
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.max_workers,
                mp_context=multiprocessing.get_context(self.start_method),
                initializer=_single_threaded_worker,
            )
        futures = [self._pool.submit(fn, item) for item in items]
        try:
            for _ in tqdm(concurrent.futures.as_completed(futures), total=len(futures), desc=description or None,
                          disable=not description):
                pass
            return [future.result() for future in futures]
        except BaseException:
            # A failed or interrupted map leaves no work running behind the caller's back.
            self.close()
            raise

    def close(self) -> None:
        """Stop the worker processes (the next :meth:`map` starts new ones)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        # An executor passed inside a picklable object travels without its processes.
        return {**self.__dict__, "_pool": None}


class RayExecutor:
    """Runs items as Ray tasks: on the cluster at ``address``, or on a local Ray started with ``num_cpus``.

    Needs the ``ray`` extra (``pip install "cmdp-envs[ray]"``). Each task asks for ``num_cpus_per_task`` CPUs. A Ray
    session that was already running is used as it is and left running; one this executor started is shut down by
    :meth:`shutdown` or at the end of a ``with RayExecutor(...) as executor:`` block.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None, num_cpus_per_task: float = 1.0):
        try:
            import ray
        except ImportError as error:
            raise ImportError('Ray is not installed: pip install "cmdp-envs[ray]"') from error
        if address is not None and num_cpus is not None:
            raise ValueError("num_cpus sizes a local Ray; a cluster at an address has its own resources")
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}})
        self.num_cpus_per_task = num_cpus_per_task

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    def map(self, fn: Callable[[T], R], items: Sequence[T], description: str = "") -> list[R]:
        # Ray remotes must be plain functions; fn (often a callable object) travels once through the object store.
        remote = self._ray.remote(num_cpus=self.num_cpus_per_task)(_apply)
        fn_ref = self._ray.put(fn)
        refs = [remote.remote(fn_ref, item) for item in items]
        pending = list(refs)
        with tqdm(total=len(refs), desc=description or None, disable=not description) as progress:
            while pending:
                done, pending = self._ray.wait(pending, num_returns=1)
                progress.update(len(done))
        return self._ray.get(refs)

    def shutdown(self) -> None:
        """Stop the Ray session if this executor started it."""
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
        self._started = False


def _apply(fn: Callable[[T], R], item: T) -> R:
    return fn(item)


#: The executors by name: local processes, this process, or Ray; configurations and the command line accept these.
EXECUTORS: dict[str, type] = {"local": LocalExecutor, "serial": SerialExecutor, "ray": RayExecutor}


def make_executor(kind: str = "local", **kwargs: Any) -> Executor:
    """``"serial"``, ``"local"`` (processes) or ``"ray"``, with that executor's keyword arguments."""
    if kind not in EXECUTORS:
        raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {kind!r}")
    return EXECUTORS[kind](**kwargs)


class _OracleCall:
    """A picklable ``(task, seed) -> oracle(task, seed=seed)``."""

    def __init__(self, oracle: Callable[..., Any]):
        self.oracle = oracle

    def __call__(self, task_and_seed: tuple[Task, int]) -> Any:
        task, seed = task_and_seed
        return self.oracle(task, seed=seed)


def call_oracle_on_tasks(executor: Executor, oracle: Callable[..., Any], tasks: Sequence[Task], seed: int = 0,
                         description: str = "oracle calls") -> list[Any]:
    """``oracle(task_i, seed=seed_i)`` for every task through ``executor``, with ``seed_i`` from
    :func:`spawn_seeds`; results in task order."""
    seeds = spawn_seeds(seed, len(tasks))
    return executor.map(_OracleCall(oracle), list(zip(tasks, seeds)), description=description)
