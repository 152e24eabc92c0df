"""AIMLE's fast λ controller: hand-computed trace, convergence speed, state; the paper's rule untouched."""

from __future__ import annotations

import math

import pytest
import torch
from difftools.solvers.topk import argmax

import difftools as dt
from examples.synthetic.experiments import steps_to_target
from examples.synthetic.task import estimate_gradient, make_problem

identity = dt.solver(lambda t: t.clone(), sense="max", batched=True, backend="torch", name="identity", discrete=None)


def _step(layer, theta, upstream):
    t = theta.clone().requires_grad_(True)
    (layer(t) * upstream).sum().backward()
    return t.grad


def test_fast_rule_hand_computed_trace():
    """Identity oracle: λ > 0 ⇒ all 3 entries differ, so the batch count is 0 (α = 0) or 3."""
    eta, kappa = 1e-3, dt.AIMLE.FAST_GAIN
    # Eq. 9's count (the identity's MAP state is θ itself, so a count per solution would be 3 / 3).
    layer = dt.AIMLE(identity, controller="fast", step=eta, target_nnz=4.0, initial_alpha=0.0, count="entries")
    theta, upstream = torch.randn(2, 3), torch.randn(2, 3)
    _step(layer, theta, upstream)  # α = 0 ⇒ λ = 0 ⇒ count 0 ⇒ error +1, restart from η
    assert layer.alpha.item() == pytest.approx(eta * math.exp(kappa))
    expected = layer.alpha.item()
    for _ in range(4):  # count 3 < 4 ⇒ error (4 − 3)/4 = 0.25 ⇒ α grows by e^{κ/4} per step
        _step(layer, theta, upstream)
        expected *= math.exp(kappa * 0.25)
        assert layer.alpha.item() == pytest.approx(expected, rel=1e-6)

    layer = dt.AIMLE(identity, controller="fast", initial_alpha=0.3, target_nnz=1.0, count="entries")
    _step(layer, theta, upstream)  # count 3 > 1 ⇒ error clipped at −1
    assert layer.alpha.item() == pytest.approx(0.3 * math.exp(-kappa))


def test_fast_rule_with_zero_target_shrinks_alpha_to_the_floor():
    layer = dt.AIMLE(identity, controller="fast", initial_alpha=0.5, target_nnz=0.0)
    theta, upstream = torch.randn(2, 3), torch.randn(2, 3)
    for _ in range(30):
        _step(layer, theta, upstream)
    assert layer.alpha.item() <= layer.step


def _reference_paper_trace(counts, *, alpha0, ema0, step, decay, target):
    """Eq. 9 and 10 written out independently, in the buffers' float32."""
    alpha, ema = torch.tensor(alpha0), torch.tensor(ema0)
    trace = []
    for m in counts:
        ema = decay * ema + (1.0 - decay) * torch.tensor(m)
        alpha = torch.clamp(alpha + (step if ema <= target else -step), min=0.0)
        trace.append((alpha.item(), ema.item()))
    return trace


def test_paper_rule_is_untouched_exact_trace():
    counts = [0.0, 0.0, 2.0, 1.5, 0.25, 1.0, 3.0, 0.0, 1.0, 0.9]
    for layer in (dt.AIMLE(argmax, step=0.2, controller="paper"), dt.AIMLE(argmax, controller="paper", step=0.2)):
        trace = []
        for m in counts:
            layer._update_controller(torch.tensor(m), 1)  # non-zero count, instances (one process)
            trace.append((layer.alpha.item(), layer.nnz_ema.item()))
        assert trace == _reference_paper_trace(counts, alpha0=0.0, ema0=1.0, step=0.2, decay=0.9, target=1.0)
        # The guarded path (statistics after an all-reduce arrive as tensors) gives the same trace.
        layer = dt.AIMLE(argmax, step=0.2, controller="paper")
        trace = []
        for m in counts:
            layer._update_controller(torch.tensor(m), torch.tensor(1))
            trace.append((layer.alpha.item(), layer.nnz_ema.item()))
        assert trace == _reference_paper_trace(counts, alpha0=0.0, ema0=1.0, step=0.2, decay=0.9, target=1.0)


ALGORITHM_1 = dict(central=True, target_nnz=1.0, step=1e-3, decay=0.9, initial_alpha=0.0, lam_scope="example")


def test_paper_preset_is_algorithm_1_with_every_argument_spelled_out():
    """End to end: same seed ⇒ bit-identical α, ḡ and gradients for controller='paper' and Algorithm 1 in full."""
    theta, b = make_problem(0, 12)
    traces = []
    for kwargs in ({"controller": "paper"}, {"controller": "paper", **ALGORITHM_1}):
        layer = dt.AIMLE(argmax, samples=20, generator=torch.Generator().manual_seed(5), **kwargs)
        trace = []
        for _ in range(25):
            grad = estimate_gradient(layer, theta, b)
            trace.append((layer.alpha.clone(), layer.nnz_ema.clone(), grad))
        traces.append(trace)
    for (a0, e0, g0), (a1, e1, g1) in zip(*traces):
        assert torch.equal(a0, a1) and torch.equal(e0, e1) and torch.equal(g0, g1)


def test_paper_preset_reproduces_algorithm_1_alpha_and_ema_trace_from_observed_counts():
    """α₀ = 0, ḡ₀ = 1, η = 10⁻³, γ = 0.9, c = 1: a real run's trace equals Eq. 9-10 replayed on its counts."""
    theta, b = make_problem(2, 12)
    layer = dt.AIMLE(argmax, samples=50, controller="paper", generator=torch.Generator().manual_seed(1))
    assert layer.alpha.item() == 0.0 and layer.nnz_ema.item() == 1.0
    counts = []
    observe = layer._observe

    def spy(diff, out, grad_f, grad_norm):  # the unscaled MAP differences the controller sees: [S, n] here
        counts.append(torch.count_nonzero(diff).item() / (diff.numel() // diff.shape[-1]))
        observe(diff, out, grad_f, grad_norm)

    layer._observe = spy
    trace = []
    for _ in range(300):  # long enough for α to start moving the counts off zero
        estimate_gradient(layer, theta, b)
        trace.append((layer.alpha.item(), layer.nnz_ema.item()))
    assert max(counts) > 0  # the replay covers non-zero counts, not only the warm-up
    assert trace == _reference_paper_trace(counts, alpha0=0.0, ema0=1.0, step=1e-3, decay=0.9, target=1.0)


def _steps_to_target(controller: str, steps: int) -> int | None:
    theta, b = make_problem(3, 20)
    layer = dt.AIMLE(argmax, samples=200, controller=controller, generator=torch.Generator().manual_seed(0))
    counts = []
    for _ in range(steps):
        before = layer.nnz_ema.item()
        estimate_gradient(layer, theta, b)
        counts.append((layer.nnz_ema.item() - layer.decay * before) / (1 - layer.decay))  # Eq. 9 inverted
    return steps_to_target(counts, layer.target_nnz)


def test_fast_controller_reaches_target_count_in_few_steps_paper_does_not():
    fast = _steps_to_target("fast", 60)
    assert fast is not None and fast <= 40
    assert _steps_to_target("paper", 100) is None  # α ≤ 0.1 after 100 steps of η = 1e-3


def test_steps_to_target_uses_a_window_mean():
    assert steps_to_target([0, 0, 1.0, 1.0], 1.0, window=2) == 4
    assert steps_to_target([0, 2, 1.05, 0.95], 1.0, window=2) == 2
    assert steps_to_target([0, 0, 0], 1.0, window=2) is None


def test_controller_argument_validation_state_dict_and_repr():
    with pytest.raises(ValueError, match="controller must be one of 'fast', 'deterministic', 'paper', 'reference'"):
        dt.AIMLE(argmax, controller="momentum")
    fast, paper = dt.AIMLE(argmax), dt.AIMLE(argmax, controller="paper")
    assert set(fast.state_dict()) == set(paper.state_dict()) == {"alpha", "nnz_ema"}
    theta, b = make_problem(1, 8)
    for _ in range(3):
        estimate_gradient(fast, theta, b)
    restored = dt.AIMLE(argmax, controller="fast")
    restored.load_state_dict(fast.state_dict())
    assert torch.equal(restored.alpha, fast.alpha) and torch.equal(restored.nnz_ema, fast.nnz_ema)
    assert "controller='fast'" in repr(fast) and "controller='paper'" in repr(paper)


def test_reference_preset_is_the_authors_code_strict_comparison_and_batch_lambda():
    layer = dt.AIMLE(argmax, controller="reference")
    assert (layer.central, layer.step, layer.initial_alpha, layer.lam_scope) == (False, 1e-4, 1.0, "batch")
    paper = dt.AIMLE(argmax, controller="paper", initial_alpha=1.0, step=1e-4)
    for each in (layer, paper):
        each._update_controller(torch.tensor(1.0), 1)  # ḡ = 0.9 · 1 + 0.1 · 1 = 1 = c exactly
    assert layer.nnz_ema.item() == paper.nnz_ema.item() == 1.0
    assert paper.alpha.item() == pytest.approx(1.0 + 1e-4)  # Eq. 10: ḡ ≤ c ⇒ up
    assert layer.alpha.item() == pytest.approx(1.0 - 1e-4)  # reference code: ḡ < c fails ⇒ down


def test_lam_scope_batch_is_eq_8_over_the_whole_batch():
    theta = torch.tensor([[3.0, 4.0], [0.0, 1.0]])  # row norms 5, 1; batch norm √26
    grad_f = torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[0.0, 0.0], [2.0, 0.0]]])  # [S=2, B=2, 2]
    per_example, norms = dt.AIMLE(argmax, initial_alpha=0.5)._step(theta, grad_f)
    # Sample 1 of example 0 has a zero gradient: left out of that example's mean.
    assert torch.allclose(per_example.flatten(), torch.tensor([0.5 * 5.0 / 1.0, 0.5 * (1 / 2 + 1 / 2) / 2]))
    # The per-(sample, example) norms of ∇f it took, in float64: the controller counts active pairs from them.
    assert norms.dtype == torch.float64 and norms.flatten().tolist() == [1.0, 2.0, 0.0, 2.0]
    per_batch, none = dt.AIMLE(argmax, initial_alpha=0.5, lam_scope="batch")._step(theta, grad_f)
    assert none is None
    assert per_batch.shape == ()
    assert per_batch.item() == pytest.approx(0.5 * 26**0.5 * 2**0.5 / 9**0.5)
    assert dt.AIMLE(argmax, initial_alpha=0.5, lam_scope="batch")._step(theta, torch.zeros(2, 2, 2))[0].item() == 0.0
    with pytest.raises(ValueError, match="lam_scope must be 'example' or 'batch'"):
        dt.AIMLE(argmax, lam_scope="sample")


def test_explicit_arguments_override_the_preset():
    layer = dt.AIMLE(argmax, controller="reference", central=True, step=0.01, initial_alpha=0.0)
    assert (layer.central, layer.step, layer.alpha.item(), layer.lam_scope) == (True, 0.01, 0.0, "batch")
    for name, preset in dt.estimators.AIMLE_PRESETS.items():
        layer = dt.AIMLE(argmax, controller=name)
        assert layer.central == preset["central"] and layer.target_nnz == preset["target_nnz"]
        assert layer.step == preset["step"] and layer.decay == preset["decay"]
        assert layer.alpha.item() == preset["initial_alpha"] and layer.lam_scope == preset["lam_scope"]


def test_controller_rules_are_objects_a_name_or_an_instance():
    from difftools.estimators import FastRule, PaperRule

    assert isinstance(dt.AIMLE(argmax).rule, FastRule) and dt.AIMLE(argmax).rule.gain == dt.AIMLE.FAST_GAIN
    assert dt.AIMLE(argmax, controller="reference").rule.strict
    # A rule object with its own gain: one step at count 0 with c = 1 multiplies α by e^gain.
    slow = dt.AIMLE(argmax, controller=FastRule(gain=0.25), initial_alpha=1.0)
    slow._update_controller(torch.tensor(0.0), 1)
    assert slow.alpha.item() == pytest.approx(math.exp(0.25), rel=1e-6)
    # The repr shows a rule that is not the named controller's own in full (its gain, its ceiling).
    assert slow.controller == "fast" and "controller=FastRule(gain=0.25, max_alpha=100)" in repr(slow)
    assert "controller='fast'" in repr(dt.AIMLE(argmax, controller=FastRule()))
    assert "controller=FastRule(gain=0.5, max_alpha=10)" in repr(dt.AIMLE(argmax, controller=FastRule(max_alpha=10)))
    # PaperRule(strict=True) passed as an object starts from the "reference" preset, as the name does.
    by_object, by_name = dt.AIMLE(argmax, controller=PaperRule(strict=True)), dt.AIMLE(argmax, controller="reference")
    for setting in ("central", "step", "lam_scope", "initial_alpha"):
        assert getattr(by_object, setting) == getattr(by_name, setting)
    with pytest.raises(ValueError, match="FastRule: gain must be a finite number > 0"):
        FastRule(gain=-1.0)


def test_deterministic_preset_is_map_forward_and_a_ceiling_of_one():
    """No noise (the forward pass is MAP(θ) itself), forward differences, the fast rule with α ≤ 1."""
    from difftools.estimators import DeterministicRule, FastRule

    layer = dt.AIMLE(argmax, controller="deterministic")
    assert layer.noise is None and not layer.central and layer.controller == "deterministic"
    assert isinstance(layer.rule, DeterministicRule) and isinstance(layer.rule, FastRule)
    assert layer.rule.max_alpha == 1.0
    theta = torch.randn(16, 5, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    z = layer(theta)
    assert torch.equal(z, argmax(theta.detach()))
    # A loss whose target never differs from the prediction: the count stays 0 < c, α climbs to 1 and stops.
    for _ in range(50):
        theta.grad = None
        (-(layer(theta) * theta.detach()).sum()).backward()
        assert layer.alpha.item() <= 1.0 and torch.isfinite(theta.grad).all()
    assert layer.alpha.item() == 1.0
    # One step of a loss that moves the target: the gradient is (MAP(θ) − MAP(θ − λ∇f)) / λ, λ = ‖θ‖ / ‖∇f‖.
    fresh = dt.AIMLE(argmax, controller="deterministic")
    upstream = torch.randn(16, 5, generator=torch.Generator().manual_seed(1))
    theta.grad = None
    fresh(theta).backward(upstream)
    lam = theta.detach().norm(dim=-1, keepdim=True) / upstream.norm(dim=-1, keepdim=True)
    expected = (argmax(theta.detach()) - argmax(theta.detach() - lam * upstream)) / lam
    torch.testing.assert_close(theta.grad, expected)
    # Explicit arguments win over the preset, as for every preset.
    noisy = dt.AIMLE(argmax, controller="deterministic", noise=dt.Gumbel(), central=True)
    assert isinstance(noisy.noise, dt.Gumbel) and noisy.central
    assert dt.AIMLE(argmax, controller=DeterministicRule(max_alpha=0.3)).rule.max_alpha == 0.3
    assert "DeterministicRule(gain=0.5, max_alpha=1)" == repr(DeterministicRule())


def test_fast_rule_stops_at_max_alpha_when_the_count_is_out_of_reach():
    """Forward differences without noise, and a loss that only reinforces the forward solution: the
    backward MAP never differs, the count stays 0 < c, and α used to grow by e^0.5 per step to inf
    (λ = inf then takes no step). It stops at max_alpha, finite, and the gradient stays finite."""
    from difftools.estimators import FastRule

    theta = torch.randn(16, 5, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    layer = dt.AIMLE(argmax, central=False, noise=None)
    assert layer.rule.max_alpha == 100.0 and "max_alpha=100" in repr(layer.rule)
    for _ in range(300):  # e^(0.5·300) overflows float32 without the ceiling
        theta.grad = None
        (-(layer(theta) * 2.0).sum()).backward()  # ∇f = −2 on the argmax: θ − λ∇f keeps the same argmax
    assert layer.alpha.item() == 100.0 and layer.nnz_ema.item() < 1e-9  # ḡ decays from 1 towards 0
    assert torch.isfinite(theta.grad).all()
    low = dt.AIMLE(argmax, central=False, noise=None, controller=FastRule(max_alpha=2.0))
    for _ in range(20):
        low(theta).sum().neg().backward()
    assert low.alpha.item() == 2.0
    with pytest.raises(ValueError, match="FastRule: max_alpha must be a finite number > 0"):
        FastRule(max_alpha=0.0)


def test_solution_count_divides_by_the_forward_solution_size():
    """count="solution": c counts changed entries per entry of the forward MAP state (= "entries" for one-hot)."""
    from difftools.solvers.topk import TopK

    torch.manual_seed(0)
    theta, w = torch.randn(8, 10), torch.randn(8, 10)
    seen = {}
    for solver, k in ((argmax, 1), (TopK(3), 3)):
        for count in ("entries", "solution"):
            layer = dt.AIMLE(solver, count=count, samples=4, generator=torch.Generator().manual_seed(0))
            t = theta.clone().requires_grad_()
            (layer(t) * w).sum().backward()
            seen[k, count] = (layer.nnz_ema.item() - 0.9) / 0.1  # this step's mean count (Eq. 9 inverted)
    assert seen[1, "entries"] == pytest.approx(seen[1, "solution"])
    assert seen[3, "entries"] > 0
    assert seen[3, "solution"] == pytest.approx(seen[3, "entries"] / 3)
    with pytest.raises(ValueError, match="count"):
        dt.AIMLE(argmax, count="sample")


@pytest.mark.parametrize("count", ["entries", "solution"])
def test_count_over_active_leaves_out_pairs_without_upstream_gradient(count):
    """Examples whose upstream gradient is 0 change nothing: "active" averages over the others only."""
    theta = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    upstream = torch.randn(4, 6, generator=torch.Generator().manual_seed(1))
    upstream[2:] = 0.0  # two examples whose loss is satisfied
    ema = {}
    for over in ("batch", "active"):
        layer = dt.AIMLE(argmax, noise=None, count=count, count_over=over, initial_alpha=5.0, decay=0.5)
        _step(layer, theta, upstream)
        ema[over] = layer.nnz_ema.item()
    batch_mean = (ema["batch"] - 0.5) / 0.5  # Eq. 9 inverted: ḡ = γ ḡ₀ + (1 − γ) m, ḡ₀ = 1
    assert batch_mean > 0  # α = 5 moves the argmax of the active examples
    assert ema["active"] == pytest.approx(0.5 + 0.5 * batch_mean * 4 / 2)


def test_count_over_active_with_no_active_pair_keeps_the_state():
    layer = dt.AIMLE(argmax, noise=None, count_over="active", initial_alpha=0.7)
    _step(layer, torch.randn(3, 5), torch.zeros(3, 5))
    assert (layer.alpha.item(), layer.nnz_ema.item()) == (pytest.approx(0.7), 1.0)


def test_count_over_rejects_unknown_values():
    with pytest.raises(ValueError, match="count_over must be 'batch' or 'active'"):
        dt.AIMLE(argmax, count_over="examples")
