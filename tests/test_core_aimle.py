"""AIMLE's controller (Eq. 9-10), sense handling, context forwarding and module state."""

from __future__ import annotations

import pytest
import torch

import difftools as dt
from difftools.core import event_norm

identity = dt.solver(lambda t: t.clone(), sense="max", batched=True, backend="torch", name="identity", discrete=None)
constant = dt.solver(lambda t: torch.zeros_like(t), sense="max", batched=True, backend="torch", name="constant")


def _step(layer, theta, upstream=None):
    t = theta.clone().requires_grad_(True)
    z = layer(t)
    upstream = torch.ones_like(z) if upstream is None else upstream
    (z * upstream).sum().backward()
    return t.grad


def test_alpha_rises_while_gradients_are_all_zero():
    layer = dt.AIMLE(constant, step=0.01, controller="paper")
    for i in range(1, 6):
        _step(layer, torch.randn(4, 3))
        assert layer.alpha.item() == pytest.approx(0.01 * i)
        assert layer.nnz_ema.item() == pytest.approx(0.9**i)  # ḡ decays from 1 towards 0


def test_hand_computed_trace_of_eq_9_and_10():
    """Identity oracle: λ > 0 ⇒ every entry of the difference is non-zero (3 per example)."""
    layer = dt.AIMLE(identity, initial_alpha=0.05, step=0.1, decay=0.5, target_nnz=1.0, controller="paper")
    expected = [
        # (α used in this step, nnz mean, ḡ after, α after)
        (0.05, 3.0, 0.5 * 1.0 + 0.5 * 3.0, 0.0),  # ḡ = 2 > 1 ⇒ α − η, clamped at 0
        (0.00, 0.0, 0.5 * 2.0, 0.1),  # λ = 0 ⇒ no non-zeros; ḡ = 1 ≤ 1 ⇒ α + η
        (0.10, 3.0, 0.5 * 1.0 + 0.5 * 3.0, 0.0),
        (0.00, 0.0, 1.0, 0.1),
    ]
    for alpha_before, _, ema_after, alpha_after in expected:
        assert layer.alpha.item() == pytest.approx(alpha_before)
        _step(layer, torch.randn(2, 3), torch.randn(2, 3))
        assert layer.nnz_ema.item() == pytest.approx(ema_after)
        assert layer.alpha.item() == pytest.approx(alpha_after)
        assert layer.alpha.item() >= 0


def test_alpha_falls_when_nnz_exceeds_target_and_never_below_zero():
    layer = dt.AIMLE(identity, initial_alpha=0.5, step=0.1, controller="paper")
    alphas = []
    for _ in range(12):
        _step(layer, torch.randn(2, 5), torch.randn(2, 5))
        alphas.append(layer.alpha.item())
    assert alphas[0] == pytest.approx(0.4)
    assert min(alphas) >= 0.0
    assert alphas[4] == pytest.approx(0.0, abs=1e-7)


def test_nnz_is_a_count_averaged_over_samples_and_examples():
    """Forward difference with samples: mean over (sample, example) of ‖g‖₀ (not a fraction)."""
    layer = dt.AIMLE(
        identity, samples=3, central=False, initial_alpha=1.0, decay=0.5, target_nnz=100, count="entries"
    )
    _step(layer, torch.randn(2, 7), torch.randn(3, 2, 7))
    assert layer.nnz_ema.item() == pytest.approx(0.5 * 1.0 + 0.5 * 7.0)


def test_solution_count_is_per_instance_for_vector_and_scalar_events():
    """count='solution': changed entries / the forward solution's non-zero entries, per instance, then the mean."""
    seen = []

    def spy(layer):
        layer._update_controller = lambda nonzero, instances: seen.append((float(nonzero), int(instances)))
        return layer

    # Vector events [3 instances, 4]: solution sizes 2, 1, 0 (counted as 1); changed entries 1, 3, 2.
    out = torch.tensor([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    diff = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [1.0, -1.0, 1.0, 0.0], [0.0, 0.0, -1.0, 1.0]]])
    grad_f = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, -2.0]]])
    norms = event_norm(grad_f, 1, keep_float64=True)  # what _step hands over (per-example λ)
    spy(dt.AIMLE("argmax", count_over="active"))._observe(diff, out, grad_f, None)
    spy(dt.AIMLE("argmax", count_over="active"))._observe(diff, out, grad_f, norms)
    spy(dt.AIMLE("argmax", count_over="batch"))._observe(diff, out, grad_f, norms)
    # active: the middle ∇f is 0, counted from ∇f itself or from its norms
    assert seen == [(1 / 2 + 3 / 1 + 2 / 1, 2)] * 2 + [(1 / 2 + 3 / 1 + 2 / 1, 3)]
    # Scalar events (event_dim = 0): each entry is one instance; a changed entry is one changed solution.
    seen.clear()
    threshold = dt.solver(lambda t: (t > 0).float(), sense="max", batched=True, backend="torch", event_dim=0)
    out, diff = torch.tensor([[1.0, 1.0, 1.0, 0.0]]), torch.tensor([[1.0, 0.0, 0.0, -1.0]])
    spy(dt.AIMLE(threshold, count_over="batch"))._observe(diff, out, torch.ones(1, 4), None)
    assert seen == [(2.0, 4)]  # mean 0.5 (it was 2/3 over 4: the whole batch's solution taken as one)


class _Argmin:
    sense = "min"
    event_dim = 1

    def __call__(self, w):
        return torch.zeros_like(w).scatter_(-1, w.argmin(-1, keepdim=True), 1.0)


@pytest.mark.parametrize("estimator", [dt.AIMLE, dt.IMLE])
@pytest.mark.parametrize("central", [True, False])
def test_min_sense_gives_negated_gradient_of_max_sense(estimator, central):
    kwargs = dict(initial_alpha=0.7) if estimator is dt.AIMLE else dict(lam=2.0)
    w = torch.randn(5, 6)
    upstream = torch.randn(4, 5, 6)

    def run(solver, theta):
        layer = estimator(solver, samples=4, central=central, generator=torch.Generator().manual_seed(3), **kwargs)
        t = theta.clone().requires_grad_(True)
        z = layer(t)
        (z * upstream).sum().backward()
        return z.detach(), t.grad

    z_min, g_min = run(_Argmin(), w)
    z_max, g_max = run("argmax", -w)
    torch.testing.assert_close(z_min, z_max)
    torch.testing.assert_close(g_min, -g_max, rtol=0, atol=0)


class _Recorder:
    """Masked argmax whose allowed positions come from per-instance context; records calls."""

    sense = "max"
    event_dim = 1

    def __init__(self):
        self.calls = []

    def __call__(self, theta, *, allowed, scale):
        self.calls.append((tuple(theta.shape), allowed.shape, scale))
        masked = torch.where(allowed.bool(), theta, torch.tensor(-torch.inf))
        return torch.zeros_like(theta).scatter_(-1, masked.argmax(-1, keepdim=True), 1.0)


@pytest.mark.parametrize("central", [True, False])
@pytest.mark.parametrize("samples", [None, 3])
def test_context_reaches_solver_in_forward_and_backward(central, samples):
    rec = _Recorder()
    allowed = torch.eye(4)  # instance i may only choose position i
    layer = dt.AIMLE(rec, samples=samples, central=central, initial_alpha=1.0)
    theta = torch.randn(4, 4, requires_grad=True)
    z = layer(theta, allowed=dt.PerInstance(allowed), scale=7)
    expected = allowed if samples is None else allowed.expand(samples, 4, 4)
    torch.testing.assert_close(z, expected)
    (z * torch.randn_like(z)).sum().backward()
    s = 1 if samples is None else samples
    fwd = (s, 4, 4)  # the core always lays samples first (S = 1 without samples)
    bwd = (2 * s, 4, 4) if central else fwd
    assert rec.calls == [(fwd, fwd, 7), (bwd, bwd, 7)]


def test_per_instance_list_context_with_samples_through_numpy_solver():
    seen = []

    @dt.solver(sense="max", event_dim=1)
    def pick(theta, *, target):
        seen.append(target)
        z = theta * 0
        z[target] = 1
        return z

    layer = dt.AIMLE(pick, samples=2, initial_alpha=1.0)
    theta = torch.randn(3, 5, requires_grad=True)
    z = layer(theta, target=dt.PerInstance([4, 0, 2]))
    assert z.shape == (2, 3, 5)
    assert z[:, 0, 4].eq(1).all() and z[:, 1, 0].eq(1).all() and z[:, 2, 2].eq(1).all()
    z.sum().backward()
    assert seen == [4, 0, 2] * 2 + [4, 0, 2] * 4  # forward: S·B calls; central backward: 2S·B


def test_per_instance_context_must_match_batch():
    layer = dt.AIMLE(_Recorder())
    with pytest.raises(ValueError, match="per-instance context 'allowed'"):
        layer(torch.randn(4, 4), allowed=dt.PerInstance(torch.ones(3, 4)), scale=1)


def test_state_dict_round_trip_restores_alpha_and_ema():
    layer = dt.AIMLE(identity, initial_alpha=0.2, step=0.05)
    for _ in range(3):
        _step(layer, torch.randn(2, 3), torch.randn(2, 3))
    state = layer.state_dict()
    assert set(state) == {"alpha", "nnz_ema"}
    fresh = dt.AIMLE(identity)
    fresh.load_state_dict(state)
    assert fresh.alpha.item() == layer.alpha.item()
    assert fresh.nnz_ema.item() == layer.nnz_ema.item()


def test_float64_module_and_input():
    layer = dt.AIMLE("argmax", initial_alpha=0.5).to(torch.float64)
    assert layer.alpha.dtype == torch.float64 and layer.nnz_ema.dtype == torch.float64
    theta = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    z = layer(theta)
    assert z.dtype == torch.float64
    (z * torch.randn(3, 4, dtype=torch.float64)).sum().backward()
    assert theta.grad.dtype == torch.float64


def test_output_shapes_and_batch_dims():
    layer = dt.AIMLE(dt.get_solver("topk", k=2))
    assert layer(torch.randn(7)).shape == (7,)
    assert layer(torch.randn(2, 3, 7)).shape == (2, 3, 7)
    layer.samples = 5
    assert layer(torch.randn(2, 3, 7)).shape == (5, 2, 3, 7)


def test_generator_makes_runs_reproducible():
    theta = torch.randn(8, 10)
    outs = [dt.AIMLE("argmax", samples=4, generator=torch.Generator().manual_seed(11))(theta) for _ in range(2)]
    torch.testing.assert_close(outs[0], outs[1])


def test_repr_is_informative():
    text = repr(dt.AIMLE(dt.get_solver("topk", k=3), samples=10, central=False))
    for part in ("AIMLE", "TopK(k=3)", "samples=10", "central=False", "target_nnz=1", "Gumbel()"):
        assert part in text
    assert "lam=0.5" in repr(dt.IMLE("argmax", lam=0.5))


@pytest.mark.cuda
def test_cuda_forward_backward_and_buffers_stay_on_device():
    layer = dt.AIMLE(dt.get_solver("topk", k=3), samples=4, initial_alpha=0.5).cuda()
    theta = torch.randn(16, 50, device="cuda", requires_grad=True)
    z = layer(theta)
    (z * torch.randn_like(z)).sum().backward()
    assert z.device.type == "cuda" and theta.grad.device.type == "cuda"
    assert layer.alpha.device.type == "cuda"


@pytest.mark.cuda
@pytest.mark.parametrize("central", [True, False])
@pytest.mark.parametrize("estimator", [dt.AIMLE, dt.IMLE])
def test_no_host_synchronisation_on_cuda(estimator, central):
    """With the finite-value checks off, forward and backward never wait for the GPU."""
    layer = estimator(dt.get_solver("topk", k=3), samples=4, central=central, check_finite=False).cuda()
    theta = torch.randn(32, 100, device="cuda", requires_grad=True)
    upstream = torch.randn(4, 32, 100, device="cuda")
    layer(theta).backward(upstream)  # warm-up: lazy CUDA initialisation may synchronise
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        layer(theta).backward(upstream)
    finally:
        torch.cuda.set_sync_debug_mode("default")
