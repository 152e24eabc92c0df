"""The ``difftools.solver`` adapter: granularities, backends, batch dims, executors, devices."""

from __future__ import annotations

import concurrent.futures

import numpy as np
import pytest
import torch

import difftools as dt


def _onehot_argmax_np(theta):
    z = np.zeros_like(theta)
    z[np.argmax(theta)] = 1
    return z


def _onehot_argmax_np_batched(theta):
    z = np.zeros_like(theta)
    z[np.arange(len(theta)), np.argmax(theta, axis=1)] = 1
    return z


@pytest.mark.parametrize(
    "fn, batched, backend",
    [
        (_onehot_argmax_np, False, "numpy"),
        (_onehot_argmax_np_batched, True, "numpy"),
        (lambda t: torch.zeros_like(t).scatter_(-1, t.argmax(-1, keepdim=True), 1.0), True, "torch"),
        (lambda t: torch.zeros_like(t).scatter_(0, t.argmax().view(1), 1.0), False, "torch"),
    ],
)
@pytest.mark.parametrize("shape", [(6,), (4, 6), (2, 3, 6), (0, 6)])
def test_all_granularities_agree_with_argmax(fn, batched, backend, shape):
    s = dt.solver(fn, sense="max", batched=batched, backend=backend)
    theta = torch.randn(shape, dtype=torch.float64)
    z = s(theta)
    assert z.shape == theta.shape and z.dtype == torch.float64
    torch.testing.assert_close(z, dt.get_solver("argmax")(theta))


def test_per_instance_and_shared_context_in_numpy_adapter():
    calls = []

    @dt.solver(sense="max", event_dim=1)
    def masked(theta, *, mask, offset):
        calls.append(offset)
        z = np.zeros_like(theta)
        z[np.argmax(np.where(mask, theta, -np.inf))] = 1
        return z

    masks = torch.eye(3, dtype=torch.bool).reshape(3, 3)
    z = masked(torch.randn(3, 3), mask=dt.PerInstance(masks), offset=5)
    torch.testing.assert_close(z, torch.eye(3))
    assert calls == [5, 5, 5]


def test_per_instance_with_two_batch_dims():
    s = dt.solver(lambda t, *, k: (np.arange(len(t)) == k).astype(float), sense="max")
    k = torch.tensor([[0, 1], [2, 3]])
    z = s(torch.randn(2, 2, 4), k=dt.PerInstance(k))
    assert z.argmax(-1).tolist() == [[0, 1], [2, 3]]


@pytest.mark.parametrize("workers", [1, 2])
def test_thread_pool_executor_keeps_order(workers):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        s = dt.solver(_onehot_argmax_np, sense="max", executor=pool, chunksize=3)
        theta = torch.randn(17, 5)
        torch.testing.assert_close(s(theta), dt.get_solver("argmax")(theta))


def test_executor_error_carries_instance_index():
    def fails_on_big(theta):
        if theta.max() > 50:
            raise ValueError("too big")
        return _onehot_argmax_np(theta)

    theta = torch.randn(10, 4)
    theta[7, 1] = 99.0
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        s = dt.solver(fails_on_big, sense="max", executor=pool, chunksize=2, name="picky")
        with pytest.raises(dt.SolverError, match="solver 'picky', instance 7: raised ValueError: too big"):
            s(theta)


def test_adapter_validation_errors():
    with pytest.raises(ValueError, match="sense must be 'max' or 'min'"):
        dt.solver(_onehot_argmax_np, sense="maximise")
    with pytest.raises(ValueError, match="needs batched=False"):
        dt.solver(_onehot_argmax_np, sense="max", batched=True, executor=concurrent.futures.ThreadPoolExecutor(1))
    with pytest.raises(ValueError, match="event_dim=2 trailing dims"):
        dt.solver(_onehot_argmax_np, sense="max", event_dim=2)(torch.randn(3))
    with pytest.raises(TypeError, match="θ must be a torch.Tensor"):
        dt.solver(_onehot_argmax_np, sense="max")(np.zeros(3))
    with pytest.raises(TypeError, match="PerInstance: value must be"):
        dt.PerInstance(3)


def test_repr():
    r = repr(dt.solver(_onehot_argmax_np, sense="min", event_dim=2, name="grid"))
    assert r == "FunctionSolver(name='grid', sense='min', event_dim=2, batched=False, backend='numpy')"


@pytest.mark.cuda
def test_numpy_solver_follows_cuda_device():
    s = dt.solver(_onehot_argmax_np, sense="max")
    theta = torch.randn(4, 5, device="cuda")
    z = s(theta)
    assert z.device == theta.device
