"""A warm multiprocessing forkserver for the distributed tests (DDP ranks, dask workers).

Spawned processes each import torch (and DDP's torch._dynamo, OR-Tools, ...) again, which takes
seconds per process on a loaded 2-core machine. The forkserver imports them once; processes
forked from it start in milliseconds, yet inherit no threads or state from the test process.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver

PRELOAD = [
    "torch._dynamo",  # DistributedDataParallel's constructor imports it
    "difftools",
    "difftools.solvers.ilp",
    "ortools.linear_solver.python.model_builder_helper",
    "scipy.sparse",
    "distributed",
]


def start_forkserver() -> None:
    """Start the process-wide forkserver with :data:`PRELOAD` imported (no-op when it runs)."""
    # Started here first, it keeps this preload list: dask would otherwise start it with its own.
    multiprocessing.set_forkserver_preload(PRELOAD)
    multiprocessing.forkserver.ensure_running()
