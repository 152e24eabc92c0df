"""The CPU's large-tensor reductions (core.LARGE): the checked float32 norm and the ord-0 counts are exact."""

from __future__ import annotations

import pytest
import torch

import difftools as dt
from difftools import _host
from difftools.core import LARGE, event_norm
from difftools.estimators.aimle import _nonzero_entries


def _awkward_rows(dtype: torch.dtype) -> torch.Tensor:
    """[80, 1000] (above LARGE): ordinary rows and rows that under- or overflow in float32 squares."""
    torch.manual_seed(0)
    x = torch.randn(80, 1000)
    x[1] = 0.0  # a true zero
    x[2] *= 1e-30  # every square underflows
    x[3] *= 1e25  # every square overflows
    x[4, 5] = float("inf")
    x[5, 0] = float("nan")
    x[6] = 0.0
    x[6, 3] = 1e-38  # one tiny entry in a zero row
    x[7, :10] *= 1e-21  # some subnormal squares in an ordinary row
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_checked_norm_equals_the_float64_norm(dtype):
    x = _awkward_rows(dtype)
    assert x.numel() >= LARGE
    exact = torch.linalg.vector_norm(x, dim=1, keepdim=True, dtype=torch.float64)
    got = event_norm(x, 1, keep_float64=True)
    assert got.dtype == torch.float64 and got.shape == exact.shape
    torch.testing.assert_close(got, exact, rtol=1e-6, atol=0.0, equal_nan=True)
    assert got[1].item() == 0.0 and (got[2].item() > 0) == bool(x[2].any())  # float16 has no 1e-30
    assert torch.isinf(got[4]) and torch.isnan(got[5])
    torch.testing.assert_close(event_norm(x, 1), exact.to(dtype), equal_nan=True)


def test_checked_norm_is_the_cpu_path_only(monkeypatch):
    """Where host reads are not free the one-op float64 norm runs; both give the same values."""
    x = _awkward_rows(torch.float32).view(8, 10, 1000)
    cpu = event_norm(x, 1, keep_float64=True)
    monkeypatch.setattr(_host, "reads_are_free", lambda device: False)
    elsewhere = event_norm(x, 1, keep_float64=True)
    torch.testing.assert_close(cpu, elsewhere, rtol=1e-6, atol=0.0, equal_nan=True)
    elsewhere_2d = event_norm(x, 2, keep_float64=True)  # two event dims: one norm per [10, 1000] instance
    monkeypatch.undo()
    torch.testing.assert_close(event_norm(x, 2, keep_float64=True), elsewhere_2d, rtol=1e-6, atol=0.0, equal_nan=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("size", [(4, 50), (40, 2000)], ids=["small", "large"])
def test_nonzero_entries_counts_like_bool_sum(dtype, size):
    torch.manual_seed(1)
    x = (torch.rand(size) < 0.3).to(dtype) - (torch.rand(size) < 0.1).to(dtype)
    x[0, 0] = float("nan")  # counted, as bool() counts it
    x[1] = 0.0
    counts = _nonzero_entries(x, (1,))
    assert torch.equal(counts.long(), x.bool().sum(1))


def test_aimle_step_on_a_large_batch_matches_the_accelerator_path(monkeypatch):
    """Same seed: the CPU's large-tensor path gives the accelerator path's α and gradient."""
    theta = torch.randn(128, 1000)  # 128 000 entries: above LARGE
    upstream = torch.randn(2, 128, 1000)
    upstream[:, :5] = 0.0  # inactive examples

    def run():
        layer = dt.AIMLE(dt.get_solver("topk", k=10), samples=2, generator=torch.Generator().manual_seed(3))
        leaf = theta.clone().requires_grad_(True)
        for _ in range(3):
            leaf.grad = None
            (layer(leaf) * upstream).sum().backward()
        return layer.alpha.clone(), layer.nnz_ema.clone(), leaf.grad

    cpu = run()
    monkeypatch.setattr(_host, "reads_are_free", lambda device: False)
    elsewhere = run()
    for a, b in zip(cpu, elsewhere):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
