"""Solver batches on a real dask LocalCluster (2 worker processes on 127.0.0.1): ILPs, errors, lost workers."""

from __future__ import annotations

import itertools
import os
import sys
import time

import numpy as np
import pytest
import torch

import difftools
from difftools import AIMLE, PerInstance, SolverError, dask_executor, get_solver
from tests.forkserver import start_forkserver

dask = pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(90)


def ilp_bruteforce(theta: np.ndarray, *, A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """max <θ, z> s.t. A z <= b, z binary, by enumeration (the exact answer)."""
    best, best_z = -np.inf, None
    for bits in itertools.product((0.0, 1.0), repeat=theta.shape[0]):
        z = np.array(bits)
        if np.all(A @ z <= b) and theta @ z > best:
            best, best_z = theta @ z, z
    return best_z


def crash_worker_once(theta: np.ndarray, *, A: np.ndarray, b: np.ndarray, marker: str) -> np.ndarray:
    """Kills the worker process running it the first time (no ``marker`` file yet), then solves.

    The marker is created atomically (O_EXCL): two chunks starting at once on the two workers
    would otherwise both see no marker and both crash, and the task retried on the second dead
    worker fails with KilledWorker (seen once in CI).
    """
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return ilp_bruteforce(theta, A=A, b=b)
    os._exit(1)


def sleep_until(theta: np.ndarray, *, stop: str) -> np.ndarray:
    """A solver stuck until the file ``stop`` exists (bounded, so no worker outlives the tests)."""
    deadline = time.monotonic() + 30
    while not os.path.exists(stop) and time.monotonic() < deadline:
        time.sleep(0.05)
    return np.zeros_like(theta)


def _problem(batch: tuple[int, ...], n: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(*batch, n, generator=g, dtype=torch.float64)
    rng = np.random.default_rng(seed)
    A = rng.integers(1, 5, size=(2, n)).astype(float)  # two knapsack rows
    b = np.array([6.0, 7.0])
    return theta, A, b


@pytest.fixture(scope="module")
def cluster():
    # Worker processes (and their restarts after a crash) fork from a warm forkserver.
    start_forkserver()
    # allowed_failures=1: a task whose worker dies is rerun once (then it would fail with KilledWorker).
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}), distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=":0",
        scheduler_kwargs={"allowed_failures": 1},
    ) as c:
        yield c


@pytest.fixture(scope="module")
def executor(cluster):
    with dask_executor(cluster.scheduler_address, timeout=60) as ex:
        yield ex


def test_ilp_batch_matches_sequential_and_bruteforce(executor):
    theta, A, b = _problem((3, 5))
    on_cluster = get_solver("ilp", sense="max", A=A, b=b, executor=executor, chunksize=2)(theta)
    assert torch.equal(on_cluster, get_solver("ilp", sense="max", A=A, b=b)(theta))
    exact = np.stack([ilp_bruteforce(t, A=A, b=b) for t in theta.reshape(-1, 6).numpy()]).reshape(3, 5, 6)
    assert torch.equal(on_cluster, torch.from_numpy(exact))
    assert executor._max_workers == 2


def test_aimle_layer_on_cluster_matches_sequential(executor):
    theta, A, b = _problem((4,), seed=1)
    runs = []
    for ex in (executor, None):
        layer = AIMLE(get_solver("ilp", sense="max", A=A, executor=ex), noise=None, initial_alpha=1.0)
        t = theta.clone().requires_grad_()
        z = layer(t, b=PerInstance(np.tile(b, (4, 1))))  # per-instance context travels with its instance
        (z * torch.arange(6.0, dtype=z.dtype)).sum().backward()
        runs.append((z.detach(), t.grad, layer.alpha.clone()))
    for on_cluster, sequential in zip(*runs):
        assert torch.equal(on_cluster, sequential)


def test_failing_task_reports_its_instance(executor):
    theta, A, b = _problem((8,), seed=2)
    bs = np.tile(b, (8, 1))
    bs[5] = -1.0  # A >= 1 and z >= 0: instance 5 is infeasible
    ilp = get_solver("ilp", sense="max", A=A, executor=executor, chunksize=3)
    with pytest.raises(SolverError, match=r"instance 5: the ILP is infeasible") as info:
        ilp(theta, b=PerInstance(bs))
    assert info.value.index == 5


def test_client_get_executor_also_works(cluster):
    theta, A, b = _problem((5,), seed=3)
    with distributed.Client(cluster, set_as_default=False) as client:
        z = get_solver("ilp", sense="max", A=A, b=b, executor=client.get_executor())(theta)
    assert torch.equal(z, get_solver("ilp", sense="max", A=A, b=b)(theta))


def test_bad_arguments_are_named(cluster):
    with pytest.raises(ValueError, match="timeout must be None or a finite number of seconds > 0"):
        dask_executor(cluster.scheduler_address, timeout=0)
    with pytest.raises(ValueError, match="connect_timeout must be"):
        dask_executor(cluster.scheduler_address, connect_timeout=None)
    with pytest.raises(TypeError, match="address must be a scheduler address"):
        dask_executor(8786)


def test_unreachable_scheduler_is_reported():
    with pytest.raises(OSError, match="could not connect to the dask scheduler at 'tcp://127.0.0.1:9'"):
        dask_executor("tcp://127.0.0.1:9", connect_timeout=1)


def test_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an environment without dask looks like
    with pytest.raises(ImportError, match=r"difftools\[dist\]"):
        dask_executor("tcp://127.0.0.1:8786")


def test_stuck_task_times_out(cluster, tmp_path):
    theta = torch.zeros(2, 3)
    stop = tmp_path / "stop"
    try:
        with dask_executor(cluster.scheduler_address, timeout=1) as ex:
            stuck = difftools.solver(sleep_until, sense="max", executor=ex)
            # Without the timeout this call would wait the solver's 30 s (pytest-timeout bounds the rest).
            with pytest.raises(SolverError, match=r"TimeoutError: dask task not finished within timeout=1 s"):
                stuck(theta, stop=str(stop))
    finally:
        stop.touch()  # release the worker thread still running the cancelled task


def test_lost_worker_is_retried(executor, tmp_path):
    theta, A, b = _problem((2,), seed=4)
    crashing = difftools.solver(crash_worker_once, sense="max", executor=executor, chunksize=1)
    z = crashing(theta, A=A, b=b, marker=str(tmp_path / "crashed"))
    assert (tmp_path / "crashed").exists()
    assert torch.equal(z, difftools.solver(ilp_bruteforce, sense="max")(theta, A=A, b=b))
