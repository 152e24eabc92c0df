"""Faults that used to give silently wrong gradients or hangs (issue 14): each gives the right answer or says why.

In-place writes by solvers, 1/λ that is not finite, norms that under/overflow, the AIMLE controller
counting changes that gave no gradient, non-discrete or random outputs, solvers that block.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
import warnings

import numpy as np
import pytest
import torch

import difftools as dt
from difftools import _host
from difftools.output_checks import _OUTPUT_WARNED, _OUTPUT_WARNED_IDS

pytestmark = pytest.mark.timeout(60)


def onehot(theta: np.ndarray) -> np.ndarray:
    z = np.zeros_like(theta)
    z[np.argmax(theta)] = 1.0
    return z


def writes_into_input(theta: np.ndarray) -> np.ndarray:
    z = onehot(theta)
    theta[:] = 0.0  # scratch use of the input: must not reach the estimator's saved tensors
    return z


def writes_into_batch(theta: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(theta).scatter_(-1, theta.argmax(-1, keepdim=True), 1.0)
    theta.mul_(-1.0)
    return z


class InPlaceArgmax:
    """A protocol solver (not made with difftools.solver) that negates its input in place."""

    sense = "max"
    event_dim = 1

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        z = torch.zeros_like(theta).scatter_(-1, theta.argmax(-1, keepdim=True), 1.0)
        theta.neg_()
        return z


def imle_grad(solver, theta: torch.Tensor, weights: torch.Tensor, **kwargs) -> torch.Tensor:
    theta = theta.clone().requires_grad_()
    (dt.IMLE(solver, noise=None, **kwargs)(theta) * weights).sum().backward()
    return theta.grad


@pytest.mark.parametrize(
    "dirty",
    [
        dt.solver(writes_into_input, sense="max", name="dirty_numpy"),
        dt.solver(writes_into_batch, sense="max", batched=True, backend="torch", name="dirty_torch"),
    ],
    ids=["numpy", "torch"],
)
@pytest.mark.parametrize("central", [False, True])
def test_a_solver_writing_into_its_input_cannot_change_the_gradient(dirty, central):
    gen = torch.Generator().manual_seed(0)
    theta, weights = torch.randn(16, 5, generator=gen), torch.randn(16, 5, generator=gen)
    clean = dt.solver(onehot, sense="max", name="clean")
    expected = imle_grad(clean, theta, weights, lam=0.3, central=central)
    assert expected.abs().sum() > 0  # the step moves some argmax: a corrupted target would show
    torch.testing.assert_close(imle_grad(dirty, theta, weights, lam=0.3, central=central), expected)


def test_a_protocol_solver_writing_into_its_input_is_refused():
    with pytest.raises(dt.SolverError, match=r"wrote into its input θ.*theta = theta.clone\(\)"):
        dt.IMLE(InPlaceArgmax(), noise=None)(torch.randn(3, 4))


@pytest.mark.parametrize("make", [lambda: dt.IMLE("argmax", lam=1e-40), lambda: dt.Blackbox("argmax", lam=1e-39)])
def test_fixed_lambda_whose_reciprocal_overflows_is_a_clear_error(make):
    layer = make()
    theta = torch.randn(4, 5, requires_grad=True)
    z = layer(theta)
    with pytest.raises(ValueError, match=r"lam=1e-(40|39) cannot be used with θ of dtype torch.float32: 1/λ is not"):
        (z * torch.randn(4, 5)).sum().backward()


def test_fixed_tiny_lambda_is_fine_in_float64():
    theta = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    (dt.IMLE("argmax", lam=1e-40)(theta) * torch.randn(4, 5, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(theta.grad).all()


@pytest.mark.parametrize("host_reads", [True, False], ids=["cpu-host-guard", "device-mask"])
def test_adaptive_lambda_whose_reciprocal_overflows_gives_zero_gradient_and_no_count(host_reads, monkeypatch):
    # α = 1e-40 is subnormal in float32: λ = α·‖θ‖/‖∇f‖ has no finite reciprocal. Both ways of
    # finding that out (finite_difference._usable_steps) must take no step.
    monkeypatch.setattr(_host, "reads_are_free", lambda device: host_reads)
    layer = dt.AIMLE("argmax", initial_alpha=1e-40, samples=4)
    theta = torch.randn(3, 5, requires_grad=True)
    (layer(theta) * torch.randn(3, 5)).sum().backward()
    assert torch.isfinite(theta.grad).all() and not theta.grad.any()
    # Eq. 9 with a zero count: ḡ = 0.9 · 1 + 0.1 · 0.
    torch.testing.assert_close(layer.nnz_ema, torch.tensor(0.9))


def aimle_grads(theta: torch.Tensor, grad_scale: float, dtype: torch.dtype) -> torch.Tensor:
    """AIMLE's gradient (no noise: deterministic) for θ in ``dtype`` and ∇f scaled by ``grad_scale``."""
    gen = torch.Generator().manual_seed(1)
    weights = torch.randn(theta.shape, generator=gen, dtype=torch.float64)
    t = theta.detach().to(dtype).clone().requires_grad_()
    layer = dt.AIMLE("argmax", noise=None, initial_alpha=0.5)
    (layer(t) * (weights * grad_scale).to(dtype)).sum().backward()
    return t.grad.double()


@pytest.mark.parametrize("grad_scale", [1e-20, 1e-30])
def test_aimle_tiny_downstream_gradient_matches_float64(grad_scale):
    theta = torch.randn(8, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exact = aimle_grads(theta, grad_scale, torch.float64)
    assert exact.abs().sum() > 0
    torch.testing.assert_close(aimle_grads(theta, grad_scale, torch.float32), exact, rtol=1e-4, atol=0.0)


@pytest.mark.parametrize("theta_scale", [1e20, 1e30])
def test_aimle_huge_theta_matches_float64(theta_scale):
    theta = torch.randn(8, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * theta_scale
    exact = aimle_grads(theta, 1.0, torch.float64)
    assert exact.abs().sum() > 0
    torch.testing.assert_close(aimle_grads(theta, 1.0, torch.float32), exact, rtol=1e-4, atol=0.0)


def test_aimle_controller_does_not_count_changes_without_gradient():
    # Forward difference whose target point differs from the forward's (τ' = 0 ≠ τ = 1): with
    # λ = 0 (α = 0) the two MAP states differ by the noise alone, and no gradient comes out.
    layer = dt.AIMLE("argmax", central=False, target_noise_temperature=0.0, samples=8)
    theta = torch.zeros(4, 6, requires_grad=True)
    (layer(theta) * torch.randn(8, 4, 6)).sum().backward()
    assert not theta.grad.any()
    torch.testing.assert_close(layer.nnz_ema, torch.tensor(0.9))  # counted 0 changes, not ~2 per example


def test_aimle_lambda_beyond_float32_gives_no_gradient_and_no_count():
    """θ ~ 1e30 with ∇f ~ 1e-20: λ = α‖θ‖/‖∇f‖ ~ 1e50 is not a float32. Before, ‖θ‖² overflowed, λ = inf
    moved θ to ±inf, the MAP states changed, the controller counted them, and the gradient was 0."""
    gen = torch.Generator().manual_seed(5)
    theta = (torch.randn(4, 6, generator=gen) * 1e30).requires_grad_()
    layer = dt.AIMLE("argmax", noise=None, initial_alpha=0.5)
    (layer(theta) * torch.randn(4, 6, generator=gen) * 1e-20).sum().backward()
    assert torch.isfinite(theta.grad).all() and not theta.grad.any()
    torch.testing.assert_close(layer.nnz_ema, torch.tensor(0.9))


def softmax_solver(theta: np.ndarray) -> np.ndarray:
    e = np.exp(theta - theta.max())
    return e / e.sum()


def test_non_discrete_outputs_warn_once_per_solver():
    soft = dt.solver(softmax_solver, sense="max", name="softmax")
    with pytest.warns(RuntimeWarning, match=r"solver softmax returned 12 of 12 entries that are not integers"):
        dt.AIMLE(soft)(torch.randn(3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dt.AIMLE(soft)(torch.randn(3, 4))  # once per solver
        dt.AIMLE(dt.solver(softmax_solver, sense="max", discrete=None))(torch.randn(3, 4))  # declared real


def test_binary_declaration_catches_integers_outside_0_1():
    twos = dt.solver(lambda t: 2.0 * onehot(t), sense="max", discrete="binary", name="twos")
    with pytest.warns(RuntimeWarning, match="not 0 or 1"):
        dt.IMLE(twos)(torch.randn(2, 3))


def test_constant_fraction_warns_for_protocol_solvers_too():
    class Fraction:
        sense, event_dim = "max", 1

        def __call__(self, theta):
            return torch.full_like(theta, 0.37)

    solver = Fraction()
    try:
        with pytest.warns(RuntimeWarning, match=r"not integers \(e.g. 0.37\)"):
            dt.STE(solver)(torch.randn(2, 3))
    finally:
        _OUTPUT_WARNED.discard(solver)
        _OUTPUT_WARNED_IDS.discard(id(solver))


def test_only_the_forward_solver_call_is_checked_against_the_discrete_set():
    """The backward's calls at perturbed points are not checked again (one check per step, not three)."""
    calls = []

    class FirstCallDiscrete:  # a batched protocol solver: one call per solve
        sense, event_dim = "max", 1

        def __call__(self, theta: torch.Tensor) -> torch.Tensor:
            calls.append(tuple(theta.shape))
            hot = torch.nn.functional.one_hot(theta.argmax(-1), theta.shape[-1]).to(theta.dtype)
            return hot if len(calls) == 1 else torch.full_like(theta, 0.5)

    theta = torch.randn(3, 4, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dt.AIMLE(FirstCallDiscrete())(theta).sum().backward()
    assert calls == [(1, 3, 4), (2, 3, 4)]  # the forward, then both ends of the central difference


def test_discrete_outputs_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dt.AIMLE(dt.solver(onehot, sense="max"))(torch.randn(3, 4))
        dt.AIMLE("argmax")(torch.randn(3, 4))


RELEASE = threading.Event()


@pytest.fixture
def release_blocked_solvers():
    """Let the solvers left blocked by a timeout finish after the test (pool threads are joined at exit)."""
    RELEASE.clear()
    yield
    RELEASE.set()


def blocks(theta: np.ndarray) -> np.ndarray:
    if theta[0] > 0:
        RELEASE.wait(30)
    return onehot(theta)


@pytest.mark.usefixtures("release_blocked_solvers")
@pytest.mark.parametrize("executor", [None, "threads"])
def test_timeout_stops_a_blocked_solver(executor):
    theta = -torch.ones(4, 3)
    theta[2, 0] = 1.0  # instance 2 blocks
    pool = None if executor is None else concurrent.futures.ThreadPoolExecutor(2)
    try:
        solver = dt.solver(blocks, sense="max", timeout=0.2, executor=pool, chunksize=1, name="stuck")
        start = time.monotonic()
        with pytest.raises(dt.SolverError, match=r"solver 'stuck', instance 2: .*did not finish within timeout=0.2 s"):
            dt.AIMLE(solver, noise=None)(theta)
        assert time.monotonic() - start < 5.0
    finally:
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


@pytest.mark.usefixtures("release_blocked_solvers")
def test_timeout_on_a_batched_solver_and_a_fast_one():
    stuck = dt.solver(lambda t: RELEASE.wait(30), sense="max", batched=True, timeout=0.1, name="stuck_batch")
    with pytest.raises(dt.SolverError, match="solver 'stuck_batch': did not finish within timeout=0.1 s"):
        stuck(torch.zeros(2, 3))
    fast = dt.solver(onehot, sense="max", timeout=5.0)
    torch.testing.assert_close(fast(torch.tensor([[0.0, 2.0, 1.0]])), torch.tensor([[0.0, 1.0, 0.0]]))
    assert "timeout=5" in repr(fast)


@pytest.mark.usefixtures("release_blocked_solvers")
def test_timeout_thread_is_a_daemon():
    # Thread objects, not idents: a thread left by an earlier test can end meanwhile and the
    # new thread reuse its ident.
    before = set(threading.enumerate())
    stuck = dt.solver(blocks, sense="max", timeout=0.05)
    with pytest.raises(dt.SolverError):
        stuck(torch.ones(1, 3))
    left = [t for t in threading.enumerate() if t not in before]
    assert left and all(t.daemon for t in left)  # interpreter exit does not wait for it


def test_solver_errors_suggest_per_instance_for_batch_shaped_context():
    def capped(theta, capacity):
        if np.ndim(capacity) != 0:
            raise ValueError(f"capacity must be a scalar, got shape {np.shape(capacity)}")
        return onehot(theta)

    solver = dt.solver(capped, sense="max", name="capped")
    with pytest.raises(dt.SolverError, match=r"context 'capacity' .* wrap it as capacity=difftools.PerInstance"):
        dt.AIMLE(solver)(torch.randn(5, 3), capacity=torch.ones(5))
    with pytest.raises(dt.SolverError, match=r"wrap it as capacity=difftools.PerInstance"):
        solver(torch.randn(5, 3), capacity=np.ones(5))
    dt.AIMLE(solver)(torch.randn(5, 3), capacity=dt.PerInstance(torch.ones(5)))  # the fix works


def test_grid_costs_whose_path_sums_overflow_float32_are_solved_in_float64():
    from difftools.solvers.grid_shortest_path import GridShortestPath

    base = 0.6 * torch.rand(3, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64) + 0.5
    expected = GridShortestPath()(base)
    huge = (base * 3e38).float()  # every cost finite in float32 (< 3.4e38); any three of them sum to inf
    assert torch.isfinite(huge).all() and not torch.isfinite(huge.sum((-2, -1))).any()
    torch.testing.assert_close(GridShortestPath()(huge), expected.float())
