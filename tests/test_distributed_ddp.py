"""AIMLE under torch.distributed: two gloo processes on loopback agree with one process on the whole batch."""

from __future__ import annotations

import datetime
import inspect
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from difftools.solvers.topk import TopK
from torch import nn

from difftools import AIMLE
from difftools.core import event_norm
from difftools.noise import Gumbel, Noise
from tests.forkserver import start_forkserver

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo"),
]

WORLD, PER_RANK, FEATURES, ITEMS, K, STEPS = 2, 3, 4, 6, 2, 6


class RankSlice(Noise):
    """Gumbel noise for rank ``rank`` of ``world``: the rank's slice of what one process would draw.

    Every rank seeds the same generator, draws the whole batch's noise ``[S, world * B, ...]``
    and keeps its own rows, so the ranks together reproduce the single-process noise exactly.
    """

    def __init__(self, rank: int, world: int):
        self.rank, self.world = rank, world

    def _sample(self, shape, generator, device, dtype):
        full = Gumbel()._sample((shape[0], shape[1] * self.world, *shape[2:]), generator, device, dtype)
        return full[:, self.rank * shape[1] : (self.rank + 1) * shape[1]]


class Net(nn.Module):
    """Encoder -> AIMLE(top-k) -> head. The head's parameters sit after the layer, so DDP reduces
    their gradient bucket before the layer's backward runs its own all-reduce."""

    def __init__(self, **aimle):
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(FEATURES, ITEMS, dtype=torch.float64)
        # Eq. 9's count over the batch: the target 1.5 is calibrated on it so that α moves both ways.
        self.layer = AIMLE(
            TopK(K), initial_alpha=1.0, step=0.5, target_nnz=1.5, count="entries", count_over="batch", **aimle
        )
        self.head = nn.Linear(ITEMS, 1, dtype=torch.float64)

    def forward(self, x):
        z = self.layer(self.encoder(x))
        return z, self.head(z.mean(0) if z.dim() == 3 else z)


def _data():
    g = torch.Generator().manual_seed(1)
    xs = torch.randn(STEPS, WORLD * PER_RANK, FEATURES, generator=g, dtype=torch.float64)
    targets = torch.zeros(STEPS, WORLD * PER_RANK, ITEMS, dtype=torch.float64)
    targets.scatter_(-1, torch.rand(STEPS, WORLD * PER_RANK, ITEMS, generator=g).argsort(-1)[..., :K], 1.0)
    return xs, targets


def _train(model: nn.Module, rows: slice, *, samples: int | None, seed: int | None, lr: float = 0.5) -> dict:
    """SGD steps on rows ``rows`` of each batch; records α, ḡ and gradients after every step."""
    layer = model.module.layer if isinstance(model, nn.parallel.DistributedDataParallel) else model.layer
    if seed is not None:
        layer.generator = torch.Generator().manual_seed(seed)
    xs, targets = _data()
    log = {"alpha": [], "nnz_ema": [], "grads": []}
    for x, target in zip(xs[:, rows], targets[:, rows]):
        model.zero_grad()
        z, score = model(x)
        loss = ((z - target) ** 2).mean() + score.pow(2).mean()  # a mean over samples too
        loss.backward()
        log["alpha"].append(layer.alpha.clone())
        log["nnz_ema"].append(layer.nnz_ema.clone())
        log["grads"].append([p.grad.clone() for p in model.parameters()])
        with torch.no_grad():  # plain SGD (torch.optim's first step would import torch._dynamo: seconds)
            for p in model.parameters():
                p -= lr * p.grad
    return log


SCENARIOS = {
    # name: (AIMLE options, samples, generator seed, DDP broadcast_buffers)
    "no_noise": (dict(noise=None), None, None, True),
    "gumbel_samples": (dict(samples=2), 2, 7, False),
}


# DDP's "re-broadcast buffers from rank 0 at every forward" switch (renamed in torch 2.13).
_SYNC_BUFFERS = (
    "forward_sync_buffers"
    if "forward_sync_buffers" in inspect.signature(nn.parallel.DistributedDataParallel).parameters
    else "broadcast_buffers"
)


def _rank_main(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    # A short timeout turns a collective mismatch (deadlock) into an error instead of a hang.
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=datetime.timedelta(seconds=30))
    try:
        rows = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        results = {}
        for name, (options, samples, seed, broadcast) in SCENARIOS.items():
            noise = {} if "noise" in options else {"noise": RankSlice(rank, WORLD)}
            # bucket_cap_mb tiny: from step 2 on (DDP rebuilds its buckets after step 1) every parameter
            # has its own bucket, so the head's gradient all-reduce is in flight when ours runs.
            ddp = nn.parallel.DistributedDataParallel(
                Net(**options, **noise), bucket_cap_mb=1e-6, **{_SYNC_BUFFERS: broadcast}
            )
            results[name] = _train(ddp, rows, samples=samples, seed=seed)
        # Unequal shards (2 and 4 examples), no DDP and a frozen model (lr=0): α follows the mean
        # over all 6 examples, not the mean of the ranks' means.
        shard = slice(0, 2) if rank == 0 else slice(2, 6)
        results["uneven"] = _train(Net(noise=None), shard, samples=None, seed=None, lr=0.0)
        # sync=False: each rank adapts on its own shard.
        results["unsynced"] = _train(Net(noise=None, sync=False), rows, samples=None, seed=None, lr=0.0)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    # forkserver: fresh interpreters like "spawn", without importing torch again in every rank.
    start_forkserver()
    mp.start_processes(_rank_main, args=(_free_port(), str(out)), nprocs=WORLD, join=True, start_method="forkserver")
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


def _single(name: str) -> dict:
    options, samples, seed, _ = SCENARIOS[name]
    noise = {} if "noise" in options else {"noise": RankSlice(0, 1)}
    return _train(Net(**options, **noise), slice(None), samples=samples, seed=seed)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_ranks_hold_identical_alpha_equal_to_single_process(ranks, name):
    assert not dist.is_initialized()  # the reference runs without any collective
    single = _single(name)
    r0, r1 = ranks[0][name], ranks[1][name]
    for key in ("alpha", "nnz_ema"):
        assert all(torch.equal(a, b) for a, b in zip(r0[key], r1[key])), key
        torch.testing.assert_close(torch.stack(r0[key]), torch.stack(single[key]), rtol=0, atol=1e-12)
    # The controller really moved (both up and down), so the comparison has teeth.
    alphas = torch.stack(single["alpha"])
    assert (alphas.diff() > 0).any() and (alphas.diff() < 0).any()


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_ddp_averaged_gradients_equal_single_process(ranks, name):
    single = _single(name)
    for step in range(STEPS):
        for g0, g1, gs in zip(ranks[0][name]["grads"][step], ranks[1][name]["grads"][step], single["grads"][step]):
            torch.testing.assert_close(g0, g1, rtol=0, atol=0)
            torch.testing.assert_close(g0, gs, rtol=1e-9, atol=1e-12)
            assert gs.abs().sum() > 0


def test_uneven_shards_sync_on_the_total_count(ranks):
    single = _train(Net(noise=None), slice(0, 6), samples=None, seed=None, lr=0.0)
    for key in ("alpha", "nnz_ema"):
        torch.testing.assert_close(torch.stack(ranks[0]["uneven"][key]), torch.stack(single[key]), rtol=0, atol=1e-12)
        torch.testing.assert_close(torch.stack(ranks[1]["uneven"][key]), torch.stack(single[key]), rtol=0, atol=1e-12)


def test_without_sync_ranks_drift_apart(ranks):
    ema0, ema1 = (torch.stack(ranks[r]["unsynced"]["nnz_ema"]) for r in range(WORLD))
    assert not torch.equal(ema0, ema1)


# ----------------------------------------------------------------- the statistics themselves (one process)
def _one_step(layer: AIMLE, theta: torch.Tensor) -> None:
    t = theta.clone().requires_grad_()
    weights = torch.randn(theta.shape, generator=torch.Generator().manual_seed(1)).to(theta.dtype)
    (layer(t) * weights).sum().backward()


def test_counts_are_exact_in_half_precision():
    # 999 instances: a bfloat16 sum of the counts (or of 999 itself) would round. The same MAP
    # difference in both dtypes (values exact in bfloat16) isolates the counting: a whole step would
    # also compare λ, which bfloat16 rounds, and a near tie in the solver could then flip one instance.
    generator = torch.Generator().manual_seed(0)
    out = (torch.rand(999, 8, generator=generator) < 0.4).double()
    diff = torch.randint(-1, 2, (999, 8), generator=generator).double() * out
    grad_f = torch.randn(1, 999, 8, generator=generator).round()
    for count in ("solution", "entries"):
        emas = []
        for dtype in (torch.float64, torch.bfloat16):
            layer = AIMLE(TopK(3), noise=None, initial_alpha=5.0, decay=0.5, count=count)
            with torch.no_grad():
                g = grad_f.to(dtype)
                layer._observe(diff[None].to(dtype), out[None].to(dtype), g, event_norm(g, 1, keep_float64=True))
            emas.append(layer.nnz_ema)
        assert emas[0].item() != 1.0, "the step must move the estimate for the comparison to mean anything"
        assert torch.equal(emas[0], emas[1]), count


def test_empty_batch_leaves_the_controller_unchanged():
    layer = AIMLE(TopK(3), noise=None, initial_alpha=2.0)
    _one_step(layer, torch.zeros(0, 8))
    assert layer.alpha.item() == 2.0 and layer.nnz_ema.item() == 1.0


def test_sync_must_be_a_bool():
    with pytest.raises(TypeError, match="sync must be a bool"):
        AIMLE(TopK(3), sync="yes")
