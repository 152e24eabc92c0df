"""In-process A/B of the small case: TopK with and without its output-value checks (ninth session).

Run from the repository root: ``PYTHONPATH=. python docs/aimle-defaults-data/session9/solver_checks_ab.py``.
"""

import statistics
import time

import torch
from difftools.solvers.topk import TopK

import difftools as dt
from benchmarks.estimator_overhead import HandWritten

torch.set_num_threads(1)
theta = torch.randn(64, 100)
dy = torch.randn(1, 64, 100)


class OldTopK(TopK):
    check_output_values = True  # the checks before this change


new = dt.AIMLE(TopK(5), samples=1, central=True, initial_alpha=0.5)
old = dt.AIMLE(OldTopK(5), samples=1, central=True, initial_alpha=0.5)
hand = HandWritten(5, 1, "cpu")
leaf = theta.clone().requires_grad_(True)


def library(layer):
    def step():
        leaf.grad = None
        layer(leaf).backward(dy)

    return step


fns = {"new": library(new), "old": library(old), "hand": lambda: hand.step(theta, dy)}
times = {k: [] for k in fns}
for f in fns.values():
    for _ in range(50):
        f()
for _ in range(21):  # interleaved rounds of 300 steps each
    for k, f in fns.items():
        start = time.perf_counter()
        for _ in range(300):
            f()
        times[k].append((time.perf_counter() - start) / 300 * 1e3)
m = {k: statistics.median(v) for k, v in times.items()}
ratios = {k: round(m[k] / m["hand"], 3) for k in ("new", "old")}
print({k: round(v, 3) for k, v in m.items()}, "ratio", ratios)
