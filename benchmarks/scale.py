"""Scale-out benchmark: ILP solves on 1 vs 2 dask workers, and the cost of AIMLE's DDP sync.

Run from the repository root: ``python -m benchmarks.scale`` (``--quick`` for a smoke run).

1. Solve throughput of an ILP-backed AIMLE layer (forward + central-difference backward = 3 solves
   per example; the built-in "ilp" solver, OR-Tools SCIP, on a multi-dimensional knapsack)
   in-process and on dask LocalClusters of 1 and of 2 worker processes (1 thread each) on
   127.0.0.1, taking turns.
2. Training-step time of a small model with an AIMLE layer under DistributedDataParallel
   (2 gloo ranks on loopback) with ``sync=True`` (the α statistics are all-reduced) against
   ``sync=False``; DDP's per-forward buffer broadcast is off in both, so the difference is the
   sync alone. Configurations alternate in blocks so that load from other jobs hits both alike.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import inspect
import os
import socket
import statistics
import tempfile
import time
from typing import Any

from examples.common import HelpFormatter


class _Formatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """Every default shown, and the module docstring's numbered list kept as written."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__, formatter_class=_Formatter)
    parser.add_argument("--batch", type=int, default=32, help="ILP instances per layer call")
    parser.add_argument("--ilp-rounds", type=int, default=5, help="timed layer steps per configuration")
    parser.add_argument("--per-rank", type=int, default=32, help="DDP examples per rank")
    parser.add_argument("--steps", type=int, default=50, help="DDP steps per timed block")
    parser.add_argument("--rounds", type=int, default=6, help="timed blocks per DDP configuration")
    parser.add_argument("--part", choices=("all", "dask", "ddp"), default="all", help="which benchmark to run")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (a smoke run)")
    return parser


if __name__ == "__main__":  # --help and argument errors are answered before torch is imported
    _parser().parse_args()


import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from difftools.solvers.topk import TopK
from torch import nn
from tqdm import tqdm

import difftools
from difftools import AIMLE

ITEMS, ROWS = 40, 4


def _layer_step(layer: AIMLE, theta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    t = theta.clone().requires_grad_()
    z = layer(t)
    (z * grad).sum().backward()
    return torch.cat([z.detach(), t.grad])


def bench_dask(batch: int, rounds: int) -> list[tuple[str, float]]:
    """Median solves/s per configuration; the configurations take turns, one layer step each."""
    from distributed import LocalCluster

    rng = np.random.default_rng(0)
    weights = rng.integers(1, 20, size=(ROWS, ITEMS)).astype(float)
    capacity = weights.sum(1) / 4
    g = torch.Generator().manual_seed(0)
    thetas = torch.randn(rounds, batch, ITEMS, generator=g, dtype=torch.float64)
    grad = torch.randn(batch, ITEMS, generator=g, dtype=torch.float64)
    names = ["in-process, sequential", "dask, 1 worker", "dask, 2 workers"]
    with contextlib.ExitStack() as stack:
        executors = [None]
        for workers in (1, 2):
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
                )
            )
            executors.append(stack.enter_context(difftools.dask_executor(cluster.scheduler_address)))
        layers = [
            AIMLE(
                difftools.get_solver("ilp", sense="max", A=weights, b=capacity, executor=ex),
                noise=None,
                initial_alpha=1.0,
            )
            for ex in executors
        ]
        for layer in layers:  # warm-up: the workers import difftools and OR-Tools
            _layer_step(layer, thetas[0, :2], grad[:2])
        rates: list[list[float]] = [[] for _ in layers]
        for theta in tqdm(thetas, desc="rounds"):
            outs = []
            for layer, rate in zip(layers, rates):
                start = time.perf_counter()
                outs.append(_layer_step(layer, theta, grad))
                rate.append(3 * batch / (time.perf_counter() - start))
            if not all(torch.equal(out, outs[0]) for out in outs):
                raise AssertionError("dask results differ from the sequential ones")
    return [(name, statistics.median(rate)) for name, rate in zip(names, rates)]


# ------------------------------------------------------------------------------------------ DDP
FEATURES, N, K = 32, 64, 8
_SYNC_BUFFERS = (
    "forward_sync_buffers"
    if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters
    else "broadcast_buffers"
)


def _ddp_rank(rank: int, port: int, per_rank: int, steps: int, rounds: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60))
    g = torch.Generator().manual_seed(rank)
    x = torch.randn(per_rank, FEATURES, generator=g)
    target = torch.zeros(per_rank, N).scatter_(-1, torch.randperm(N, generator=g)[:K].expand(per_rank, K), 1.0)
    configs = {}
    for sync in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(FEATURES, N), AIMLE(TopK(K), sync=sync, initial_alpha=1.0))
        ddp = nn.parallel.DistributedDataParallel(model, **{_SYNC_BUFFERS: False})
        configs[sync] = (ddp, torch.optim.SGD(ddp.parameters(), lr=0.01))

    def block(sync: bool) -> float:
        ddp, opt = configs[sync]
        dist.barrier()
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad()
            ((ddp(x) - target) ** 2).mean().backward()
            opt.step()
        return (time.perf_counter() - start) / steps

    block(False), block(True)  # warm-up (DDP rebuilds its buckets after the first step)
    times: dict[Any, list[float]] = {False: [], True: [], "all_reduce": []}
    for r in range(rounds):
        for sync in (False, True) if r % 2 == 0 else (True, False):
            times[sync].append(block(sync))
    stats = torch.zeros(2, dtype=torch.int64)  # what AIMLE all-reduces: [non-zeros, examples]
    for _ in range(rounds):
        dist.barrier()
        start = time.perf_counter()
        for _ in range(steps):
            dist.all_reduce(stats)
        times["all_reduce"].append((time.perf_counter() - start) / steps)
    if rank == 0:
        torch.save(times, out)
    dist.destroy_process_group()


def bench_ddp(per_rank: int, steps: int, rounds: int, out_dir: str) -> list[tuple[str, float]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = os.path.join(out_dir, "ddp_times.pt")
    mp.spawn(_ddp_rank, args=(port, per_rank, steps, rounds, out), nprocs=2, join=True)
    times = torch.load(out)
    return [
        ("DDP, AIMLE sync=False", 1e3 * statistics.median(times[False])),
        ("DDP, AIMLE sync=True", 1e3 * statistics.median(times[True])),
        ("one all-reduce of 2 int64", 1e3 * statistics.median(times["all_reduce"])),
    ]


def main() -> None:
    args = _parser().parse_args()
    if args.quick:
        args.batch, args.ilp_rounds, args.steps, args.rounds = 4, 1, 5, 2
    torch.set_num_threads(1)

    if args.part in ("all", "dask"):
        rows = bench_dask(args.batch, args.ilp_rounds)
        print(f"\nILP-backed AIMLE layer: {args.batch} knapsack ILPs ({ITEMS} items, {ROWS} rows) per call")
        print("(3 solves each: forward and central difference); median solves/s over the rounds")
        for name, rate in rows:
            print(f"  {name:26s} {rate:7.1f} solves/s   ×{rate / rows[0][1]:.2f} vs sequential")
        print(f"  2 workers vs 1 worker: ×{rows[2][1] / rows[1][1]:.2f}")

    if args.part in ("all", "ddp"):
        with tempfile.TemporaryDirectory() as tmp:
            rows = bench_ddp(args.per_rank, args.steps, args.rounds, tmp)
        print(f"\nDDP (2 gloo ranks, {args.per_rank} examples each), median ms per training step")
        for name, ms in rows:
            print(f"  {name:26s} {ms:7.2f} ms")
        print(f"  sync overhead: ×{rows[1][1] / rows[0][1]:.3f} ({rows[1][1] - rows[0][1]:+.2f} ms/step)")


if __name__ == "__main__":
    main()
