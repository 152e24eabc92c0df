"""λ steps without a finite reciprocal: the CPU's host decision and the device path agree exactly."""

from __future__ import annotations

import pytest
import torch

import difftools as dt
from difftools import _host
from difftools.estimators.finite_difference import _usable_steps

PATHS = {"host": True, "device": False}


@pytest.fixture(params=list(PATHS))
def path(request, monkeypatch):
    monkeypatch.setattr(_host, "reads_are_free", lambda device: PATHS[request.param])
    return request.param


def _step(layer, theta, upstream):
    t = theta.clone().requires_grad_()
    (layer(t) * upstream).sum().backward()
    return t.grad, layer.alpha.clone(), layer.nnz_ema.clone()


def test_usable_steps_masks_exactly_the_bad_lambdas(path):
    tiny = torch.finfo(torch.float32).tiny
    lam = torch.tensor([1.0, float("inf"), float("nan"), 0.0, 1e-40, tiny, 3e38])
    mask = _usable_steps(lam)
    assert mask.tolist() == [True, False, False, False, False, True, True]
    good = _usable_steps(torch.tensor([[0.5], [2.0]]))
    assert good is None if path == "host" else good.all()
    assert _usable_steps(torch.empty(0, 1)).numel() == 0  # an empty batch: no reduction over nothing
    assert _usable_steps(torch.tensor(0.0)).item() is False  # one λ for the batch (lam_scope="batch")


@pytest.mark.parametrize("central", [True, False])
@pytest.mark.parametrize("samples", [None, 3])
def test_both_paths_give_the_same_step(central, samples, monkeypatch):
    theta = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    upstream = torch.randn(6, 8, generator=torch.Generator().manual_seed(1))
    upstream[2] = 0.0  # one example without a gradient: λ = inf there, no step, the others step
    if samples:
        upstream = upstream.expand(samples, 6, 8)
    results = []
    for free in (True, False):
        monkeypatch.setattr(_host, "reads_are_free", lambda device, free=free: free)
        layer = dt.AIMLE("argmax", samples=samples, central=central, generator=torch.Generator().manual_seed(2))
        results.append([_step(layer, theta, upstream) for _ in range(3)])
    for (g0, a0, e0), (g1, a1, e1) in zip(*results):
        assert torch.equal(g0, g1) and torch.equal(a0, a1) and torch.equal(e0, e1)
    grad = results[0][-1][0]
    assert torch.isfinite(grad).all() and not grad[2].any() and grad.any()
