"""With the finite-value checks off, no estimator reads a tensor's value on the host in a step.

A value read (``.item()``, ``bool(t)``, ``float(t)``, ``.tolist()``, ``.numpy()``, or an op whose
output size depends on the data, such as ``nonzero`` and boolean indexing) is a host
synchronisation on a GPU. The CUDA tests catch every kind with ``torch.cuda.set_sync_debug_mode``
but need a GPU; this guard runs everywhere: it refuses the ops that hand a value to the host
(``aten._local_scalar_dense``, behind every scalar read, and ``aten.nonzero``) and the Python-level
reads that bypass the dispatcher, the usual ways one slips into a hot path (a ``float(alpha)`` in
a controller, an ``if mask.any():``, a ``theta[mask]``).
"""

from __future__ import annotations

import contextlib

import pytest
import torch

import difftools as dt
from difftools import _host
from tests.host_reads import HostReads

READS = ["tolist", "numpy"]  # read host memory directly, without an op the dispatcher sees


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
        with HostReads(refuse=True):
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
    "aimle-sum-of-gamma": lambda c: dt.AIMLE(
        TOPK, samples=4, noise=dt.SumOfGamma(3), generator=torch.Generator().manual_seed(0), check_finite=c
    ),
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


@pytest.fixture(autouse=True)
def _gamma_sampled_as_on_a_gpu(monkeypatch):
    # On the CPU some steps read host memory (no wait): the exact gamma sampler redraws rejected
    # proposals, large tensors' norms are checked (core._checked_norm). Elsewhere neither reads
    # anything; check that path here.
    monkeypatch.setattr(_host, "reads_are_free", lambda device: False)


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


@pytest.mark.parametrize(
    "read",
    [
        lambda t: t.sum().item(),
        lambda t: bool(t.any()),
        lambda t: float(t.max()),
        lambda t: t[t > 0],
        lambda t: t.masked_select(t > 0),
        lambda t: t.tolist(),
        lambda t: t.numpy(),
    ],
    ids=["item", "bool", "float", "boolean-index", "masked-select", "tolist", "numpy"],
)
def test_the_guard_catches_each_kind_of_read(read):
    t = torch.randn(5)
    with pytest.raises(AssertionError, match="host read in a step"), refuse_host_reads():
        read(t)


def test_the_exact_gamma_sampler_is_a_cpu_only_read():
    """What the fixture switches off: on the CPU, seeded Sum-of-Gamma noise reads its rejections back."""
    with pytest.raises(AssertionError, match="nonzero"), refuse_host_reads():
        with pytest.MonkeyPatch.context() as m:
            m.setattr(_host, "reads_are_free", lambda device: True)
            dt.SumOfGamma(3).sample((8, 20), generator=torch.Generator().manual_seed(0))
