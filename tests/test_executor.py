"""Parallel per-instance solving through real executors: thread and process pools, dask; failures."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import pickle
import sys
import threading
import time

import numpy as np
import pytest
import torch

import difftools
from difftools import PerInstance, SolverError

pytestmark = pytest.mark.timeout(60)

# fork: workers start in milliseconds and inherit this module, so test functions need not be importable.
FORK = multiprocessing.get_context("fork")


# --------------------------------------------------------------------------- solver functions
# Module level, so that process pools can pickle them.
def top_k(theta: np.ndarray, k: int = 1, offset: float = 0.0) -> np.ndarray:
    """k-hot argmax of θ + offset, ties to the lower index (independent of torch.topk)."""
    order = np.argsort(-(theta + offset), kind="stable")[:k]
    z = np.zeros_like(theta)
    z[order] = 1.0
    return z


def slow_top_k(theta: np.ndarray, k: int = 1) -> np.ndarray:
    # Later instances finish first, so ordering bugs in the collection would show.
    time.sleep(0.002 * max(0.0, 3.0 - float(theta.sum())))
    return top_k(theta, k)


def fails_on_negative_first(theta: np.ndarray) -> np.ndarray:
    if theta[0] < 0:
        raise ValueError(f"bad first entry {theta[0]:.3f}")
    return top_k(theta)


def raises_solver_error(theta: np.ndarray) -> np.ndarray:
    if theta[0] < 0:
        raise SolverError("infeasible")
    return top_k(theta)


def exits_worker(theta: np.ndarray) -> np.ndarray:
    if theta[0] < 0:
        os._exit(1)  # a crashing worker process (segfault, OOM kill) looks like this
    return top_k(theta)


def calls_sys_exit(theta: np.ndarray) -> np.ndarray:
    sys.exit(3)


class UnpicklableError(Exception):
    def __init__(self):
        super().__init__("carries a lock")
        self.lock = threading.Lock()


def raises_unpicklable(theta: np.ndarray) -> np.ndarray:
    raise UnpicklableError()


def batch_with_first_negative(n: int, bad: int) -> torch.Tensor:
    theta = torch.rand(n, 4, generator=torch.Generator().manual_seed(n)) + 0.1
    theta[bad, 0] = -1.0
    return theta


@pytest.fixture(scope="module")
def process_pool():
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=FORK) as pool:
        yield pool


@pytest.fixture(scope="module")
def thread_pool():
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        yield pool


# --------------------------------------------------------------------------- results and context
@pytest.mark.parametrize("chunksize", [None, 1, 3, 100])
def test_thread_pool_matches_sequential_in_order(thread_pool, chunksize):
    theta = torch.randn(3, 5, 6, generator=torch.Generator().manual_seed(0))
    k = PerInstance(torch.randint(1, 4, (3, 5), generator=torch.Generator().manual_seed(1)))
    expected = difftools.solver(slow_top_k, sense="max")(theta, k=k)
    parallel = difftools.solver(slow_top_k, sense="max", executor=thread_pool, chunksize=chunksize)(theta, k=k)
    torch.testing.assert_close(parallel, expected)
    assert (expected.sum(-1) == k.value.float()).all()


@pytest.mark.parametrize("chunksize", [None, 1, 4])
def test_process_pool_matches_sequential_with_shared_and_per_instance_context(process_pool, chunksize):
    theta = torch.randn(13, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    context = dict(k=PerInstance([1 + i % 5 for i in range(13)]), offset=np.arange(6.0))
    expected = difftools.solver(top_k, sense="max")(theta, **context)
    parallel = difftools.solver(top_k, sense="max", executor=process_pool, chunksize=chunksize)(theta, **context)
    torch.testing.assert_close(parallel, expected)
    assert parallel.dtype == torch.float64


def test_empty_batch_on_executor(thread_pool):
    out = difftools.solver(top_k, sense="max", executor=thread_pool)(torch.empty(0, 4))
    assert out.shape == (0, 4)


def test_context_reaches_pool_workers_in_forward_and_backward_of_aimle(process_pool):
    """Per-instance k under AIMLE with samples=3: every solver call (forward, both central ends)."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    inner = difftools.solver(top_k, sense="max", executor=process_pool, chunksize=2)

    class Recording(difftools.SolverWrapper):
        """Records what reaches the inner solver; the wrapper base hands PerInstance context on."""

        def solve_batch(self, theta, **context):
            z = super().solve_batch(theta, **context)
            seen.append((z, context["k"].value))
            return z

    k = torch.tensor([1, 2, 3, 2])
    theta = torch.randn(4, 5, generator=torch.Generator().manual_seed(3), requires_grad=True)
    layer = difftools.AIMLE(Recording(inner), samples=3, initial_alpha=1.0, generator=torch.Generator().manual_seed(4))
    z = layer(theta, k=PerInstance(k))
    (z * torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(5))).mean(0).sum().backward()
    assert len(seen) == 2  # forward, then one call for both ends of the central difference
    for out, k_seen in seen:
        assert out.shape[1:] == (4, 5) and k_seen.shape == out.shape[:2]
        torch.testing.assert_close(out.sum(-1), k.expand(out.shape[0], 4).float())
    assert theta.grad is not None and theta.grad.abs().sum() > 0


# --------------------------------------------------------------------------- failures
@pytest.mark.parametrize("pool", ["thread_pool", "process_pool", None])
def test_exception_names_the_failing_instance(request, pool):
    executor = request.getfixturevalue(pool) if pool else None
    solve = difftools.solver(fails_on_negative_first, sense="max", executor=executor, chunksize=3)
    with pytest.raises(SolverError, match=r"solver 'fails_on_negative_first', instance 7: raised ValueError: bad") as e:
        solve(batch_with_first_negative(12, 7))
    assert e.value.index == 7 and isinstance(e.value.__cause__, ValueError)


@pytest.mark.parametrize("pool", ["thread_pool", "process_pool"])
def test_solver_error_from_a_worker_keeps_its_message(request, pool):
    solve = difftools.solver(raises_solver_error, sense="max", executor=request.getfixturevalue(pool), chunksize=2)
    with pytest.raises(SolverError, match=r"^solver 'raises_solver_error', instance 5: infeasible$") as e:
        solve(batch_with_first_negative(8, 5))
    assert e.value.solver == "raises_solver_error" and e.value.index == 5


def test_crashed_worker_process_raises_and_never_hangs():
    pool = concurrent.futures.ProcessPoolExecutor(2, mp_context=FORK)
    try:
        solve = difftools.solver(exits_worker, sense="max", executor=pool, chunksize=2)
        with pytest.raises(SolverError, match=r"executor task for instances \d+\.\.\d+ failed: BrokenProcessPool"):
            solve(batch_with_first_negative(10, 6))
        # The broken pool refuses new work: again an error, not a hang.
        with pytest.raises(SolverError, match="the executor refused the task .*BrokenProcessPool"):
            solve(torch.rand(4, 3))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_shut_down_executor_is_a_clear_error():
    pool = concurrent.futures.ThreadPoolExecutor(1)
    pool.shutdown()
    with pytest.raises(SolverError, match="refused the task for instances 0..0: RuntimeError: cannot schedule"):
        difftools.solver(top_k, sense="max", executor=pool)(torch.rand(2, 3))


def test_sys_exit_in_a_thread_worker_does_not_end_the_caller(thread_pool):
    with pytest.raises(SolverError, match=r"instance 0: called sys.exit\(3\); a solver must raise an exception"):
        difftools.solver(calls_sys_exit, sense="max", executor=thread_pool)(torch.rand(2, 3))


def test_unpicklable_function_for_a_process_pool(process_pool):
    with pytest.raises(SolverError, match="(?i)pickl"):
        difftools.solver(lambda t: t, sense="max", executor=process_pool)(torch.rand(3, 2))


def test_unpicklable_exception_from_a_worker_process(process_pool):
    with pytest.raises(SolverError, match="instances 0..1 failed"):
        difftools.solver(raises_unpicklable, sense="max", executor=process_pool, chunksize=2)(torch.rand(2, 3))


def test_dask_distributed_executor():
    distributed = pytest.importorskip("distributed")
    # An in-process cluster (inproc transport): the real scheduler and worker, no sockets.
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as client:
        executor = client.get_executor()
        theta = torch.randn(9, 5, generator=torch.Generator().manual_seed(6))
        k = PerInstance([1 + i % 3 for i in range(9)])
        expected = difftools.solver(top_k, sense="max")(theta, k=k)
        torch.testing.assert_close(
            difftools.solver(top_k, sense="max", executor=executor, chunksize=2)(theta, k=k), expected
        )
        with pytest.raises(SolverError, match="instance 4: raised ValueError"):
            difftools.solver(fails_on_negative_first, sense="max", executor=executor, chunksize=2)(
                batch_with_first_negative(9, 4)
            )


# --------------------------------------------------------------------------- pickling
def test_solver_error_survives_pickling():
    error = pickle.loads(pickle.dumps(SolverError("infeasible", solver="ilp", index=3)))
    assert str(error) == "solver 'ilp', instance 3: infeasible"
    assert (error.message, error.solver, error.index) == ("infeasible", "ilp", 3)


def test_function_solver_pickles_without_its_executor(thread_pool):
    solve = difftools.solver(top_k, sense="max", executor=thread_pool, name="k-hot")
    copy = pickle.loads(pickle.dumps(solve))
    assert copy.executor is None and solve.executor is thread_pool and copy.name == "k-hot"
    theta = torch.randn(4, 5)
    torch.testing.assert_close(copy(theta), solve(theta))
