"""Interleaved timing rounds shared by the benchmarks: every function once per round, medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def sync(device: str) -> None:
    """Wait for the GPU's queued work (nothing on the CPU), so a timer sees finished work."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved_medians(
    fns: dict[str, Callable[[], object]],
    rounds: int,
    inner: int,
    device: str = "cpu",
    warmup: int = 1,
    settle: int = 1,
) -> dict[str, float]:
    """Median seconds per call of each function over ``rounds`` rounds of ``inner`` calls.

    The functions alternate within each round, so all of them see the same machine load. In each
    round a function first runs ``settle`` untimed calls: the first call after another function
    pays for that function's memory pattern (on the CPU, pages of large tensors touched for the
    first time: in estimator_overhead's largest row an AIMLE step took 6.4 s right after the
    hand-written step and 4.8 s right after another AIMLE step), which a training loop, calling the
    same layer step after step, does not.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            for _ in range(settle):
                fn()
            sync(device)
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            sync(device)
            times[name].append((time.perf_counter() - start) / inner)
    return {name: statistics.median(t) for name, t in times.items()}
