"""Benchmark: a batch of ILPs (OR-Tools SCIP and CP-SAT) on 1 worker vs 2 threads vs 2 processes.

Run ``python -m benchmarks.ilp_workers``. Every figure is a ratio to the sequential solve of the
same batch measured in the same process, so a loaded machine shifts all rows together. The
threads row also reports process CPU seconds per wall second (about 2 on an idle machine when
the solver releases the GIL), and a probe measures directly whether a Python thread can run
while OR-Tools solves. A last section shows why tiny instances are chunked.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import multiprocessing
import resource
import threading
import time

from examples.common import HelpFormatter


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.ilp_workers", description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--instances", type=int, default=16, help="knapsack ILPs in the batch")
    parser.add_argument("--variables", type=int, default=24, help="variables per ILP")
    parser.add_argument("--constraints", type=int, default=2, help="knapsack constraints per ILP")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats (best is kept)")
    return parser


if __name__ == "__main__":  # --help and argument errors are answered before torch is imported
    _parser().parse_args()


import numpy as np
import torch
from difftools.solvers.ilp import ILP
from tqdm import tqdm

from difftools import PerInstance


def knapsack_batch(instances: int, n: int, m: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray, PerInstance]:
    """Multi-dimensional 0/1 knapsacks: shared weights A [m, n], per-instance capacities."""
    rng = np.random.default_rng(seed)
    A = rng.integers(1, 30, (m, n)).astype(float)
    capacities = np.floor(A.sum(1) * rng.uniform(0.3, 0.5, (instances, m)))
    theta = torch.from_numpy(rng.uniform(1, 2, (instances, n)) * A.mean(0))
    return theta, A, PerInstance(torch.from_numpy(capacities))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(solver: ILP, theta: torch.Tensor, capacities: PerInstance, repeats: int) -> tuple[float, float, torch.Tensor]:
    """Best wall time over ``repeats``, CPU seconds of this process in that run, and the solutions."""
    best = (float("inf"), 0.0)
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), cpu_seconds()
        z = solver(theta, b=capacities)
        best = min(best, (time.perf_counter() - wall, cpu_seconds() - cpu))
    return best[0], best[1], z


def python_progress_during(work, seconds: float) -> float:
    """Iterations per second of a pure-Python loop in a second thread while ``work()`` runs."""
    stop, counts = threading.Event(), []

    def spin() -> None:
        count = 0
        while not stop.is_set():
            count += 1
        counts.append(count)

    thread = threading.Thread(target=spin)
    thread.start()
    start = time.perf_counter()
    work()
    elapsed = max(time.perf_counter() - start, seconds)
    stop.set()
    thread.join()
    return counts[0] / elapsed


def gil_probe(solver: ILP, theta: torch.Tensor, capacities: PerInstance) -> float:
    """Python progress during a solve relative to during a sleep of the same length.

    Near 0: the solver holds the GIL. Well above 0: it releases it (on a busy machine the spinning
    thread also competes with the solver for a core, so about 0.5 is what full release looks like).
    """
    start = time.perf_counter()
    solver(theta, b=capacities)
    seconds = time.perf_counter() - start
    asleep = python_progress_during(lambda: time.sleep(seconds), seconds)
    return python_progress_during(lambda: solver(theta, b=capacities), 0.0) / asleep


def main() -> None:
    args = _parser().parse_args()
    torch.set_num_threads(1)
    fork = multiprocessing.get_context("fork")
    theta, A, capacities = knapsack_batch(args.instances, args.variables, args.constraints)
    print(
        f"{args.instances} knapsacks, n={args.variables}, m={args.constraints}; best of {args.repeats}; "
        "ratios are sequential wall time / wall time"
    )
    rows = [(backend, kind) for backend in ("scip", "cp-sat") for kind in ("1 worker", "2 threads", "2 processes")]
    baseline: dict[str, tuple[float, torch.Tensor]] = {}
    for backend, workers in tqdm(rows, desc="ilp batch", leave=False):
        if workers == "1 worker":
            executor = None
        elif workers == "2 threads":
            executor = concurrent.futures.ThreadPoolExecutor(2)
        else:
            executor = concurrent.futures.ProcessPoolExecutor(2, mp_context=fork)
        with executor or contextlib.nullcontext():
            wall, cpu, z = timed(
                ILP(sense="max", A=A, backend=backend, executor=executor), theta, capacities, args.repeats
            )
        if executor is None:
            baseline[backend] = (wall, z)
        # Ties may be broken differently only if the instance has several optima: compare objectives.
        objective, reference = (theta * z).sum(-1), (theta * baseline[backend][1]).sum(-1)
        assert torch.allclose(objective, reference), f"{backend} {workers}: different optimal values"
        load = f", CPU/wall {cpu / wall:.2f}" if workers != "2 processes" else ""
        tqdm.write(
            f"{backend:6s} {workers:12s} {wall:7.2f} s  speed-up x{baseline[backend][0] / wall:.2f}"
            f"  ({1e3 * wall / args.instances:.1f} ms/instance{load})"
        )

    for backend in ("scip", "cp-sat"):
        probe = gil_probe(ILP(sense="max", A=A, backend=backend), theta[:4], PerInstance(capacities.value[:4]))
        print(f"{backend:6s} Python progress in another thread during a solve / during a sleep: {probe:.2f}")

    # Tiny instances: one task per instance pays the inter-process round trip every time.
    tiny_theta, tiny_A, tiny_caps = knapsack_batch(256, 6, 1, seed=1)
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=fork) as pool:
        sequential, _, _ = timed(ILP(sense="max", A=tiny_A, backend="cp-sat"), tiny_theta, tiny_caps, args.repeats)
        for chunksize in (1, None):
            solver = ILP(sense="max", A=tiny_A, backend="cp-sat", executor=pool, chunksize=chunksize)
            wall, _, _ = timed(solver, tiny_theta, tiny_caps, args.repeats)
            label = "chunksize=1" if chunksize else "default chunks"
            print(f"tiny (256 x n=6) cp-sat, 2 processes, {label:14s} speed-up x{sequential / wall:.2f}")


if __name__ == "__main__":
    main()
