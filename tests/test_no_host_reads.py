"""With the finite-value checks off, no estimator reads a tensor's value on the host in a step.

A value read (``.item()``, ``bool(t)``, ``float(t)``, ``.tolist()``, ``.numpy()``) is a host
synchronisation on a GPU. The CUDA tests catch every kind with ``torch.cuda.set_sync_debug_mode``
but need a GPU; this guard runs everywhere and catches the Python-level reads, the usual way one
slips into a hot path (a ``float(alpha)`` in a controller, an ``if mask.any():``).
"""

from __future__ import annotations

import contextlib

import pytest
import torch

import difftools as dt

READS = ["item", "__bool__", "tolist", "__float__", "__int__", "__index__", "numpy"]


@contextlib.contextmanager
def refuse_host_reads():
    saved = {name: getattr(torch.Tensor, name) for name in READS}

    def refuse(name):
        def read(self, *args, **kwargs):
            raise AssertionError(f"host read in a step: Tensor.{name}")

        return read

    try:
        for name in READS:
            setattr(torch.Tensor, name, refuse(name))
        yield
    finally:
        for name, method in saved.items():
            setattr(torch.Tensor, name, method)


TOPK = dt.get_solver("topk", k=3)
LAYERS = {
    "aimle-fast-central": lambda c: dt.AIMLE(TOPK, samples=4, check_finite=c),
    "aimle-fast-forward": lambda c: dt.AIMLE(TOPK, samples=4, central=False, check_finite=c),
    "aimle-paper": lambda c: dt.AIMLE(TOPK, samples=4, controller="paper", check_finite=c),
    "aimle-reference": lambda c: dt.AIMLE(TOPK, samples=4, controller="reference", check_finite=c),
    "aimle-deterministic": lambda c: dt.AIMLE(TOPK, controller="deterministic", check_finite=c),
    "imle": lambda c: dt.IMLE(TOPK, samples=4, check_finite=c),
    "blackbox": lambda c: dt.Blackbox(TOPK, check_finite=c),
    "perturbed": lambda c: dt.Perturbed(TOPK, samples=4, check_finite=c),
    "ste": lambda c: dt.STE(TOPK, check_finite=c),
    "score-function": lambda c: dt.ScoreFunction(TOPK, samples=4, check_finite=c),
}


def _layer_step(layer):
    theta = torch.randn(8, 20, requires_grad=True)
    z = layer(theta)
    z.backward(torch.randn_like(z))


def _loss_step(loss):
    theta = torch.randn(8, 20, requires_grad=True)
    target = torch.zeros(8, 20).scatter_(-1, torch.randperm(20)[:3].expand(8, 3), 1.0)
    if isinstance(loss, dt.SPOPlusLoss):
        loss(theta, theta.detach() + 0.1, target).backward()
    else:
        loss(theta, target).backward()


@pytest.mark.parametrize("name", LAYERS)
def test_a_step_reads_nothing_on_the_host(name):
    layer = LAYERS[name](False)
    _layer_step(layer)  # first call: lazy set-up may read values
    with refuse_host_reads():
        for _ in range(3):  # the controller's later steps too
            _layer_step(layer)


@pytest.mark.parametrize(
    "make",
    [
        lambda: dt.SPOPlusLoss(TOPK, check_finite=False),
        lambda: dt.FenchelYoungLoss(dt.Perturbed(TOPK, samples=4, check_finite=False)),
    ],
    ids=["spo+", "fenchel-young"],
)
def test_a_loss_step_reads_nothing_on_the_host(make):
    loss = make()
    _loss_step(loss)
    with refuse_host_reads():
        _loss_step(loss)


def test_the_guard_catches_the_finite_checks():
    """The default ``check_finite=True`` reads one flag per check: the guard must see it."""
    layer = LAYERS["aimle-fast-central"](True)
    _layer_step(layer)
    with pytest.raises(AssertionError, match="host read in a step"), refuse_host_reads():
        _layer_step(layer)
