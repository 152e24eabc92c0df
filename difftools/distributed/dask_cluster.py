"""A ``concurrent.futures`` executor that runs solver batches on a dask.distributed cluster.

``dask_executor(address)`` connects to a dask scheduler and returns a :class:`DaskExecutor`, which any
per-instance solver accepts as ``executor=`` (``difftools.solver(fn, executor=...)``, or the
built-in solvers that take one). dask is imported lazily: difftools does not depend on it unless
this module's functions are called (``pip install "difftools[dist]"``).
"""

from __future__ import annotations

import concurrent.futures as cf
import time
import weakref
from collections.abc import Callable
from typing import Any

from difftools._validation import check_seconds

__all__ = ["DaskExecutor", "dask_executor"]


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as e:
        raise ImportError(
            "dask_executor needs dask.distributed, which is not installed; install the 'dist' extra: "
            'pip install "difftools[dist]" (or, in a clone of the repository, pip install -e ".[dist]")'
        ) from e
    return distributed


class _TaskFuture(cf.Future):
    """A ``concurrent.futures.Future`` mirroring one dask task, with a deadline on ``result()``."""

    def __init__(self, task: Any, deadline: float | None, timeout: float | None, where: str):
        super().__init__()
        self._task, self._deadline, self._timeout, self._where = task, deadline, timeout, where

    def _settle(self, task: Any) -> None:
        """Runs in dask's callback thread once the task is finished, failed or cancelled."""
        try:
            if task.status == "finished":
                self.set_result(task.result())
            elif task.status == "cancelled":
                self.set_exception(
                    RuntimeError(f"dask task {task.key!r} was cancelled on {self._where} (client closed?)")
                )
            else:  # "error", including KilledWorker: the task's workers died too often
                self.set_exception(task.exception())
        except cf.InvalidStateError:  # we already cancelled it, or its deadline passed
            pass

    def _bounded(self, wait: Callable[[float | None], Any], timeout: float | None) -> Any:
        if timeout is not None or self._deadline is None:
            return wait(timeout)
        try:
            return wait(max(0.0, self._deadline - time.monotonic()))
        except cf.TimeoutError:
            self.cancel()
            raise TimeoutError(
                f"dask task not finished within timeout={self._timeout:g} s of its submission to "
                f"{self._where} (a slow solver, too few or lost workers); raise dask_executor's timeout "
                "or check the cluster"
            ) from None

    def result(self, timeout: float | None = None) -> Any:
        """The task's result; without ``timeout``, waits at most until the executor's deadline."""
        return self._bounded(super().result, timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        return self._bounded(super().exception, timeout)

    def cancel(self) -> bool:
        cancelled = super().cancel()
        if cancelled:
            self._task.cancel()
        return cancelled


class DaskExecutor(cf.Executor):
    """Runs ``submit(fn, *args)`` as tasks on a dask.distributed cluster (made by :func:`dask_executor`).

    Futures are ``concurrent.futures.Future`` objects. ``result()`` waits at most ``timeout``
    seconds after the task's submission, then raises :class:`TimeoutError` and cancels the task, so
    a lost cluster never hangs training. A worker that dies mid-task is handled by dask: the task
    is rerun elsewhere, up to the scheduler's ``distributed.scheduler.allowed-failures`` times,
    then fails with ``KilledWorker``.
    """

    def __init__(self, client: Any, *, timeout: float | None, own_client: bool, submit_options: dict):
        self.client = client
        self.timeout = timeout
        self._own_client = own_client
        self._submit_options = submit_options
        self._where = f"the dask scheduler at {client.scheduler.address}"
        self._tasks: weakref.WeakSet = weakref.WeakSet()
        self._shutdown = False

    @property
    def _max_workers(self) -> int | None:
        """Worker threads on the cluster now (what ``difftools.solver`` sizes its chunks by)."""
        return sum(self.client.nthreads().values()) or None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        if self._shutdown:
            raise RuntimeError("DaskExecutor: cannot submit after shutdown()")
        # pure=False: solver inputs are large arrays, not worth hashing for deduplication.
        task = self.client.submit(fn, *args, pure=False, **self._submit_options, **kwargs)
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        future = _TaskFuture(task, deadline, self.timeout, self._where)
        task.add_done_callback(future._settle)
        self._tasks.add(task)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; cancel or (bounded by ``timeout``) await pending ones; close an owned client."""
        if self._shutdown:
            return
        self._shutdown = True
        pending = [t for t in self._tasks if not t.done()]
        if pending and (cancel_futures or not wait):
            self.client.cancel(pending)
        elif pending:
            distributed = _import_distributed()
            distributed.wait(pending, timeout=self.timeout)
        if self._own_client:
            self.client.close()

    def __repr__(self) -> str:
        return f"DaskExecutor({self.client.scheduler.address!r}, timeout={self.timeout})"


def dask_executor(
    address: Any,
    *,
    timeout: float | None = 600.0,
    connect_timeout: float = 30.0,
    **submit_options: Any,
) -> DaskExecutor:
    """A ``concurrent.futures.Executor`` that solves instances on a dask.distributed cluster.

    Pass it as a per-instance solver's ``executor``; the batch is cut into chunks, the chunks run
    as dask tasks, and results come back in order (a failing instance raises
    :class:`~difftools.SolverError` with its index)::

        ex = difftools.dask_executor("tcp://scheduler.example.org:8786")
        layer = difftools.AIMLE(difftools.solver(solve_one, sense="max", executor=ex))

    Workers must be able to import difftools and the solver function (same environment).

    Args:
        address: the scheduler's address (``"tcp://host:8786"``), or an existing
            ``distributed.Client`` (which ``shutdown`` then leaves open).
        timeout: seconds a submitted task may take until ``result()`` gives up with
            :class:`TimeoutError` (so a whole batch is bounded by it); ``None`` waits forever.
        connect_timeout: seconds to wait for the scheduler when connecting.
        **submit_options: forwarded to ``Client.submit`` (``workers=``, ``resources=``,
            ``priority=``, ...).

    Returns:
        A :class:`DaskExecutor`; use it as a context manager or call ``shutdown()`` to close the
        connection it opened.
    """
    timeout = check_seconds(timeout, "dask_executor", "timeout")
    connect_timeout = check_seconds(connect_timeout, "dask_executor", "connect_timeout", allow_none=False)
    distributed = _import_distributed()
    if isinstance(address, distributed.Client):
        return DaskExecutor(address, timeout=timeout, own_client=False, submit_options=submit_options)
    if not isinstance(address, str) or not address:
        raise TypeError(
            "dask_executor: address must be a scheduler address such as 'tcp://host:8786' or a "
            f"distributed.Client, got {address!r}"
        )
    try:
        client = distributed.Client(address, timeout=connect_timeout, set_as_default=False)
    except OSError as e:
        raise OSError(
            f"dask_executor: could not connect to the dask scheduler at {address!r} within "
            f"connect_timeout={connect_timeout:g} s: {e}"
        ) from e
    return DaskExecutor(client, timeout=timeout, own_client=True, submit_options=submit_options)
