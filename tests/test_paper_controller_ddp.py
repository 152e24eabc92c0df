"""AIMLE's fast λ controller under torch.distributed (gloo, 2 CPU ranks): the same α as one process.

Kept apart, with few imports, because every spawned rank imports this module.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from difftools.solvers.topk import argmax

import difftools as dt


def _step(layer, theta, upstream):
    t = theta.clone().requires_grad_(True)
    (layer(t) * upstream).sum().backward()


def _ddp_worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        theta, upstream = _ddp_inputs()
        layer = dt.AIMLE(argmax, noise=None, controller="fast", initial_alpha=0.0)
        rows = slice(rank * 2, rank * 2 + 2)  # each rank holds half of the batch
        alphas = []
        for _ in range(6):
            _step(layer, theta[rows], upstream[rows])
            alphas.append(layer.alpha.clone())
        torch.save(torch.stack(alphas), f"{out_file}.{rank}")
    finally:
        dist.destroy_process_group()


def _ddp_inputs():
    g = torch.Generator().manual_seed(11)
    return torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)


def test_fast_controller_under_ddp_matches_single_process_on_whole_batch(tmp_path):
    """gloo, 2 ranks on CPU: the all-reduced counts give every rank the single-process α trace."""
    # fork: the ranks need not re-import torch; they only use the CPU, so forking is safe.
    mp.start_processes(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "alpha")), nprocs=2,
                       start_method="fork")
    theta, upstream = _ddp_inputs()
    layer = dt.AIMLE(argmax, noise=None, controller="fast", initial_alpha=0.0)
    single = []
    for _ in range(6):
        _step(layer, theta, upstream)
        single.append(layer.alpha.clone())
    single = torch.stack(single)
    assert len(set(single.tolist())) > 2  # α actually moved
    for rank in range(2):
        assert torch.equal(torch.load(tmp_path / f"alpha.{rank}"), single)
