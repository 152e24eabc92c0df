"""Fan-out of one batch over instances: sequentially, on a ``concurrent.futures.Executor``, with a timeout.

:class:`~difftools.FunctionSolver` calls :func:`solve_instances`; failures come back as the index
of the failing instance and its exception, which :class:`Failure` turns into a SolverError.
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from difftools.errors import SolverError

__all__ = ["Failure", "describe", "map_on_executor", "run_with_timeout", "solve_chunk"]


def solve_chunk(fn: Callable, start: int, thetas: list, contexts: list[dict], out: list | None = None) -> list:
    """Worker body: solve consecutive instances; failures come back as (index, exception).

    ``out`` (sequential calls with a timeout) receives the results as they come, so that the
    caller can tell which instance was still running when the time ran out.
    """
    out = [] if out is None else out
    for offset, (theta, ctx) in enumerate(zip(thetas, contexts)):
        try:
            out.append(fn(theta, **ctx))
        # SystemExit too: a solver calling sys.exit must not end the training process.
        except (Exception, SystemExit) as e:
            out.append(Failure(start + offset, e))
            return out
    return out


class Failure:
    """An instance whose solve raised: its index in the flattened batch and the exception."""

    __slots__ = ("index", "error")

    def __init__(self, index: int, error: BaseException):
        self.index, self.error = index, error

    def as_solver_error(self, name: str) -> SolverError:
        if isinstance(self.error, SolverError):
            return SolverError(self.error.message, solver=self.error.solver or name, index=self.index)
        return SolverError(describe(self.error), solver=name, index=self.index)


def describe(error: BaseException) -> str:
    """What a solver's exception says, in a SolverError message."""
    if isinstance(error, SystemExit):
        return f"called sys.exit({error.code!r}); a solver must raise an exception instead of exiting"
    return f"raised {type(error).__name__}: {error}"


def run_with_timeout(work: Callable[[], Any], running: Callable[[], int | None], timeout: float, name: str) -> Any:
    """``work()``, or a SolverError once ``timeout`` seconds have passed without it returning.

    The call runs in a daemon thread: Python cannot stop a thread, so a solver that never
    returns keeps running in the background, but neither the caller nor interpreter exit waits
    for it. ``running()`` says which instance was being solved when the time ran out.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    thread = threading.Thread(target=target, name=f"difftools-solver-{name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise SolverError(
            f"did not finish within timeout={timeout:g} s (the call is left running in a background thread)",
            solver=name,
            index=running(),
        )
    if "error" in box:
        raise box["error"]
    return box["value"]


def map_on_executor(
    executor: concurrent.futures.Executor,
    fn: Callable,
    thetas: list,
    contexts: list[dict],
    *,
    chunksize: int | None,
    timeout: float | None,
    name: str,
) -> list:
    """Results (or a trailing :class:`Failure`) of ``fn`` on every instance, in chunks on ``executor``."""
    n = len(thetas)
    workers = getattr(executor, "_max_workers", None) or 4
    # A few chunks per worker balances load while amortising the per-task overhead.
    size = chunksize or max(1, math.ceil(n / (4 * workers)))
    starts = range(0, n, size)
    futures: list[concurrent.futures.Future] = []
    results: list = []
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        for start in starts:
            try:
                chunk_args = (thetas[start : start + size], contexts[start : start + size])
                futures.append(executor.submit(solve_chunk, fn, start, *chunk_args))
            except Exception as e:  # a broken or shut-down pool refuses new work
                raise SolverError(
                    f"the executor refused the task for instances {start}..{min(start + size, n) - 1}: "
                    f"{type(e).__name__}: {e}",
                    solver=name,
                    index=start,
                ) from e
        for start, fut in zip(starts, futures):
            try:
                chunk = fut.result(None if deadline is None else max(0.0, deadline - time.monotonic()))
            # A crashed worker process (BrokenProcessPool), a lost cluster worker, a pickling
            # error; SystemExit too, so a worker calling sys.exit cannot end the caller.
            except (Exception, SystemExit) as e:
                # Our own deadline passed while the task still runs (a task that itself raised
                # TimeoutError, e.g. dask_executor's, is done and reported as a failure below).
                if deadline is not None and isinstance(e, concurrent.futures.TimeoutError) and not fut.done():
                    raise SolverError(
                        f"executor task for instances {start}..{min(start + size, n) - 1} did not finish within "
                        f"timeout={timeout:g} s (a running task cannot be stopped: left to the executor)",
                        solver=name,
                        index=start,
                    ) from e
                raise SolverError(
                    f"executor task for instances {start}..{min(start + size, n) - 1} failed: "
                    f"{type(e).__name__}: {e}",
                    solver=name,
                    index=start,
                ) from e
            results.extend(chunk)
            if chunk and isinstance(chunk[-1], Failure):
                break
    finally:
        # After a failure the remaining tasks are useless; cancelling done futures is a no-op.
        for fut in futures:
            fut.cancel()
    return results
