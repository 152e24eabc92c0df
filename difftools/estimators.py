"""The estimators, all presets or small siblings of the one perturb-and-MAP core.

* Finite differences of MAP states along the downstream gradient (:class:`FiniteDifference`):
  :class:`AIMLE` (adaptive λ), :class:`IMLE` (fixed λ) and :class:`Blackbox` (no noise).
* Score-function estimators over the perturbation density: :class:`ScoreFunction` (one output per
  sample) and :class:`Perturbed` (the Monte-Carlo mean, Berthet et al. 2020).
* :class:`STE`: straight-through, the identity backward.

Losses built on these live in :mod:`difftools.losses`.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from difftools._validation import check_bool, check_real
from difftools.caching import CachedSolver
from difftools.core import PerturbAndMAP, _solver_repr, event_norm, event_sum
from difftools.noise import Gumbel, Noise, Normal

__all__ = ["FiniteDifference", "IMLE", "AIMLE", "AIMLE_PRESETS", "Blackbox", "STE", "ScoreFunction", "Perturbed"]

_DEFAULT = object()


class FiniteDifference(PerturbAndMAP):
    """Perturb-and-MAP forward, finite-difference backward (Niepert et al. 2021, Eq. 2).

    Forward: ``z_s = MAP(θ + τ ε_s)``. Backward, with ``∇f_s`` the downstream gradient of sample
    ``s`` and the SAME noise ``ε_s`` (common random numbers)::

        forward difference:  g_s = (z_s − MAP(θ + τ' ε_s − λ ∇f_s)) / λ
        central difference:  g_s = (MAP(θ + τ' ε_s + λ ∇f_s) − MAP(θ + τ' ε_s − λ ∇f_s)) / (2λ)

    and the gradient returned for θ is the average ``(1/S) Σ_s g_s`` (Algorithm 1). τ' is the
    target noise temperature (τ unless set). With ``samples=S`` the output is ``[S, ...]`` and
    the loss is expected to average over samples, as any Monte-Carlo estimate does; so the
    per-sample gradient of the paper is ``∇f_s = S · dy_s`` where ``dy_s`` is what autograd
    delivers. Where λ = 0 the gradient is 0, never NaN.
    """

    def __init__(
        self,
        solver: Any,
        *,
        samples: int | None = None,
        central: bool = False,
        noise: Noise | None = _DEFAULT,  # type: ignore[assignment]
        noise_temperature: float = 1.0,
        target_noise_temperature: float | None = None,
        generator: torch.Generator | None = None,
        check_finite: bool = True,
    ):
        super().__init__(
            solver,
            samples=samples,
            noise=Gumbel() if noise is _DEFAULT else noise,
            noise_temperature=noise_temperature,
            generator=generator,
            check_finite=check_finite,
        )
        if target_noise_temperature is not None:
            check_real(
                target_noise_temperature, type(self).__name__, "target_noise_temperature", lambda v: v >= 0, ">= 0"
            )
        self.central = check_bool(central, type(self).__name__, "central")
        self.target_noise_temperature = (
            None if target_noise_temperature is None else float(target_noise_temperature)
        )

    def _forward_impl(self, theta: Tensor, context: dict) -> tuple[Tensor, tuple[Tensor, ...]]:
        samples = self._num_samples()
        eps = self._sample_noise(theta, samples)
        perturbed = torch.add(theta, eps, alpha=self.noise_temperature)
        z = self._map(perturbed, context, samples)
        # The backward needs only the target point θ + τ'ε (common random numbers): keep that.
        tau = self.target_noise_temperature
        target = perturbed if tau is None else torch.add(theta, eps, alpha=tau)
        if not self.central and isinstance(self.solver, CachedSolver):
            # The forward difference subtracts the backward's answer from this call's: both must come
            # from the pool or both from the solver, so keep this call's decision for the backward.
            return z, (target, torch.tensor(self.solver.last_solved))
        return z, (target,)

    def _backward_impl(self, theta, out, state, grad_out, context):
        target, *decision = state
        self._check_grad(grad_out)
        samples = target.shape[0]
        grad_f = grad_out * samples if samples > 1 else grad_out
        lam = self._step(theta, grad_f)  # [S or 1, *batch, 1...] broadcastable over samples and event
        if not self._fixed_step:
            # A λ whose reciprocal is not finite in θ's dtype (0, subnormal, or overflowed to inf) takes
            # no step: its gradient is 0 instead of 0·inf = NaN, and no perturbed point is ±inf.
            lam = torch.where(torch.isfinite(lam.reciprocal()) & torch.isfinite(lam), lam, 0.0)
        shift = lam * grad_f
        if self.central:
            # Both ends of the difference in one tensor and one solver call: [2S, *batch, *event],
            # written in place (no concatenation copy).
            points = shift.new_empty((2 * samples, *shift.shape[1:]))
            torch.add(target, shift, out=points[:samples])
            torch.sub(target, shift, out=points[samples:])
            ends = self._map(points, context, 2 * samples)
            diff = ends[:samples] - ends[samples:]
        else:
            paired = self.solver.decided(bool(decision[0])) if decision else contextlib.nullcontext()
            with paired:
                diff = out - self._map(target - shift, context, samples)
        # 1/(2λ) or 1/λ where λ > 0 (0.5/λ, not 1/(2λ): 2λ may overflow where 1/λ is finite) and 0
        # where λ = 0 (no step taken, so no gradient — never NaN).
        inverse = torch.where(lam > 0, (0.5 if self.central else 1.0) / lam, 0.0)
        # The controller counts only the changes that become gradient entries. Where λ = 0 both MAP
        # points coincide, except in the forward difference towards another temperature's target.
        moved_target = not self.central and self.target_noise_temperature is not None
        self._observe(diff * (inverse > 0) if moved_target else diff)
        if samples == 1:  # no mean over one sample: saves a full pass (and returns a fresh tensor, not a view)
            return diff[0] * inverse.squeeze(0)
        return (diff * inverse).mean(0)

    # Whether _step returns a λ already known to have a finite reciprocal (IMLE's fixed λ).
    _fixed_step = False

    def _step(self, theta: Tensor, grad_f: Tensor) -> Tensor:
        raise NotImplementedError

    def _observe(self, diff: Tensor) -> None:
        """Hook for the adaptive controller: sees the unscaled MAP differences."""

    def _extra_repr_parts(self) -> list[str]:
        parts = [f"central={self.central}"]
        if self.target_noise_temperature is not None:
            parts.append(f"target_noise_temperature={self.target_noise_temperature:g}")
        return parts


class IMLE(FiniteDifference):
    """Implicit MLE with a fixed step λ (Niepert, Minervini & Franceschi, NeurIPS 2021).

    ``g = (z − MAP(θ + ε − λ ∇f)) / λ`` (forward) or the central version divided by 2λ; see
    :class:`FiniteDifference`. Small λ gives sparse, nearly unbiased gradients; large λ dense
    but biased ones -- :class:`AIMLE` picks λ for you.
    """

    # λ is a Python float, checked against θ's dtype in _step: no device-side guard is needed.
    _fixed_step = True

    def __init__(self, solver: Any, *, lam: float = 10.0, **kwargs: Any):
        super().__init__(solver, **kwargs)
        self.lam = check_real(lam, type(self).__name__, "lam", lambda v: v > 0 and math.isfinite(1.0 / v), "> 0")

    def _step(self, theta: Tensor, grad_f: Tensor) -> Tensor:
        finfo = torch.finfo(theta.dtype)
        if not finfo.tiny <= self.lam <= finfo.max or self.lam * finfo.max < 1.0:
            # Host-side check of a Python float: no synchronisation. 1/λ would be inf (or λ 0).
            raise ValueError(
                f"{type(self).__name__}: lam={self.lam:g} cannot be used with θ of dtype {theta.dtype}: 1/λ is not "
                f"finite there (usable: {max(finfo.tiny, 1.0 / finfo.max):.3g} <= lam <= {finfo.max:.3g}); use a "
                "larger lam or float64 θ"
            )
        return theta.new_full((), self.lam)  # a fill on θ's device: no host-to-device copy

    def _extra_repr_parts(self) -> list[str]:
        return [f"lam={self.lam:g}"] + super()._extra_repr_parts()


# The settings each AIMLE controller starts from; an argument passed explicitly overrides its entry.
# "paper" is Algorithm 1 of Minervini et al. (2023) exactly; "reference" the authors' code
# (torch-adaptive-imle's AdaptiveTargetDistribution defaults with symmetric_perturbation=False);
# "fast", the default, was chosen by measurement (docs/aimle-defaults.md, benchmarks/aimle_study.py).
AIMLE_PRESETS: dict[str, dict[str, Any]] = {
    "fast": {
        "central": True,
        "target_nnz": 1.0,
        "step": 1e-3,
        "decay": 0.9,
        "initial_alpha": 1.0,
        "lam_scope": "example",
    },
    "paper": {
        "central": True,
        "target_nnz": 1.0,
        "step": 1e-3,
        "decay": 0.9,
        "initial_alpha": 0.0,
        "lam_scope": "example",
    },
    "reference": {
        "central": False,
        "target_nnz": 1.0,
        "step": 1e-4,
        "decay": 0.9,
        "initial_alpha": 1.0,
        "lam_scope": "batch",
    },
}


class AIMLE(FiniteDifference):
    """Adaptive Implicit MLE (Minervini, Franceschi & Niepert, AAAI 2023, Algorithm 1).

    The step is set per example (``lam_scope="example"``) from the perturbation magnitude (Eq. 8)::

        λ_b = α · mean_s( ‖θ_b‖₂ / ‖∇f_{s,b}‖₂ )

    (samples with a zero downstream gradient are left out of the mean; an example whose
    gradients are all zero gets gradient 0). After each backward pass α is adapted so that the
    average number of non-zero gradient entries per example tracks ``target_nnz`` = c:

        ḡ ← γ ḡ + (1−γ) · mean_{s,b} ‖g_{s,b}‖₀          (Eq. 9, a count, not a fraction)
        α ← max(α + η if ḡ ≤ c else α − η, 0)            (Eq. 10)

    with γ = ``decay`` and η = ``step``. α and ḡ are buffers (saved by ``state_dict``, moved by
    ``.to()``); the update runs on θ's device without host synchronisation. Under
    ``torch.distributed`` with ``sync=True`` the non-zero counts and the number of examples are
    all-reduced first (one small collective per backward, inside it), so every rank holds the α
    and ḡ a single process would compute on the concatenated batch (see ``docs/scaling-out.md``);
    without an initialised process group there is no collective.

    **Controllers and presets.** ``controller`` picks the α update *and* the preset that the
    arguments left at ``None`` (``central``, ``target_nnz``, ``step``, ``decay``,
    ``initial_alpha``, ``lam_scope``) take from :data:`AIMLE_PRESETS`; an argument passed
    explicitly always wins. ``controller="fast"`` is the default (chosen by measurement:
    ``docs/aimle-defaults.md``). ``controller="paper"`` is Algorithm 1 exactly: Eq. 8 per
    example, Eq. 9, Eq. 10, α₀ = 0, ḡ₀ = 1, η = 10⁻³, γ = 0.9, c = 1, central differences.
    Because α moves by a fixed η per step it needs a long warm-up: from α = 0 it takes α*/η
    steps to reach the α* that gives ``target_nnz`` (about 500 steps for α* ≈ 0.5), the
    limitation the paper itself names. ``controller="reference"`` is the authors' code
    (torch-adaptive-imle, ``AdaptiveTargetDistribution`` defaults): Eq. 10 with a strict ``ḡ < c``,
    α₀ = 1, η = 10⁻⁴, forward differences and one λ per batch (``lam_scope="batch"``: Eq. 8 with
    both norms over the whole batch, ``λ = α √S ‖θ‖ / ‖∇f‖``). ``controller="fast"`` updates α
    multiplicatively, i.e. additively in log space::

        α ← max(α, η) · exp(κ · clip((c − m_t) / c, −1, 1)),     κ = FAST_GAIN = 0.5

    where m_t is the mean non-zero count of the *current* batch (the quantity averaged in Eq. 9;
    with c = 0 the error is −m_t). Why this works: for small λ the probability that the two MAP
    states differ grows linearly in λ ∝ α, so log E[m] ≈ log α + const and the ideal (Newton)
    step in log α is log(c / m); κ(1 − m/c) is its first-order form, damped by κ < 1. It is a
    Robbins–Monro stochastic approximation of the root of E[m(α)] = c in log α: the update has
    zero mean exactly where the expected count equals c, whatever the noise of m_t. The raw
    batch count is used rather than ḡ because ḡ lags by about 1/(1−γ) steps, and a
    multiplicative rule driven by a lagging signal overshoots and oscillates. The clip bounds a
    step to a factor e^κ ≈ 1.65, so climbing from η = 1e-3 to α ≈ 0.5 takes ⌈ln(500)/κ⌉ = 13
    steps; η stays the resolution of α and the restart point (α = 0 is a fixed point of any
    multiplicative rule). Near the root the log-α fluctuations have standard deviation about
    σ_m · √(κ/2) for a relative count noise σ_m (≈ 0.1 with 100 samples of one instance), i.e.
    a few percent of α. ḡ is still updated by Eq. 9 for monitoring. All controllers keep the
    same buffers, ``state_dict`` and all-reduced statistics.
    """

    FAST_GAIN = 0.5

    alpha: Tensor
    nnz_ema: Tensor

    def __init__(
        self,
        solver: Any,
        *,
        samples: int | None = None,
        central: bool | None = None,
        noise: Noise | None = _DEFAULT,  # type: ignore[assignment]
        noise_temperature: float = 1.0,
        target_noise_temperature: float | None = None,
        target_nnz: float | None = None,
        step: float | None = None,
        decay: float | None = None,
        initial_alpha: float | None = None,
        controller: str = "fast",
        lam_scope: str | None = None,
        generator: torch.Generator | None = None,
        sync: bool = True,
        check_finite: bool = True,
    ):
        if controller not in AIMLE_PRESETS:
            names = ", ".join(map(repr, AIMLE_PRESETS))
            raise ValueError(f"AIMLE: controller must be one of {names}, got {controller!r}")
        # Arguments left at None take the controller's preset (see AIMLE_PRESETS and docs/aimle-defaults.md).
        given = dict(
            central=central,
            target_nnz=target_nnz,
            step=step,
            decay=decay,
            initial_alpha=initial_alpha,
            lam_scope=lam_scope,
        )
        settings = {k: AIMLE_PRESETS[controller][k] if v is None else v for k, v in given.items()}
        target_nnz, step, decay = settings["target_nnz"], settings["step"], settings["decay"]
        initial_alpha, lam_scope = settings["initial_alpha"], settings["lam_scope"]
        super().__init__(
            solver,
            samples=samples,
            central=settings["central"],
            noise=noise,
            noise_temperature=noise_temperature,
            target_noise_temperature=target_noise_temperature,
            generator=generator,
            check_finite=check_finite,
        )
        for arg, value, ok, expected in (
            ("target_nnz", target_nnz, lambda v: v >= 0, ">= 0"),
            ("step", step, lambda v: v > 0, "> 0"),
            ("decay", decay, lambda v: 0 < v <= 1, "in (0, 1]"),
            ("initial_alpha", initial_alpha, lambda v: v >= 0, ">= 0"),
        ):
            check_real(value, "AIMLE", arg, ok, expected)
        if lam_scope not in ("example", "batch"):
            raise ValueError(f"AIMLE: lam_scope must be 'example' or 'batch', got {lam_scope!r}")
        self.controller = controller
        self.lam_scope = lam_scope
        self.target_nnz = float(target_nnz)
        self.step = float(step)
        self.decay = float(decay)
        self.initial_alpha = float(initial_alpha)
        if not isinstance(sync, bool):
            raise TypeError(f"AIMLE: sync must be a bool, got {sync!r}")
        self.sync = sync
        self.register_buffer("alpha", torch.tensor(float(initial_alpha)))
        # Algorithm 1 starts the moving average of the gradient count at 1.
        self.register_buffer("nnz_ema", torch.tensor(1.0))

    def _step(self, theta: Tensor, grad_f: Tensor) -> Tensor:
        if self.lam_scope == "batch":
            # One λ for the whole batch (the reference code, PyEPO): Eq. 8 with both norms taken over
            # the batch, θ counted once per sample, so that equal ∇f_s give α ‖θ‖ / ‖∇f‖.
            grad_norm = torch.linalg.vector_norm(grad_f)
            theta_norm = torch.linalg.vector_norm(theta) * math.sqrt(grad_f.shape[0])
            nonzero = grad_norm > 0
            return self.alpha.to(theta.dtype) * torch.where(
                nonzero, theta_norm / torch.where(nonzero, grad_norm, 1.0), 0.0
            )
        event_dim = self.solver.event_dim
        grad_norm = event_norm(grad_f, event_dim)  # [S, *batch, 1...]
        theta_norm = event_norm(theta, event_dim).unsqueeze(0)
        nonzero = grad_norm > 0
        if grad_f.shape[0] == 1:
            # One sample: no mean over samples. ‖θ‖/0 (inf or NaN) only appears where `where` drops it.
            return self.alpha.to(theta.dtype) * torch.where(nonzero, theta_norm / grad_norm, 0.0)
        ratio = torch.where(nonzero, theta_norm / torch.where(nonzero, grad_norm, 1.0), 0.0)
        count = nonzero.sum(0, keepdim=True).clamp_min(1)
        return self.alpha.to(theta.dtype) * ratio.sum(0, keepdim=True) / count

    def _observe(self, diff: Tensor) -> None:
        instances = math.prod(diff.shape[: diff.dim() - self.solver.event_dim])
        nonzero = torch.count_nonzero(diff)
        with torch.no_grad():
            if self.sync and dist.is_available() and dist.is_initialized():
                # [non-zeros, instances] as exact integers (a half-precision sum would round), in ONE
                # tensor so that a single all-reduce gives every rank the global batch's statistics.
                # Runs inside backward, like SyncBatchNorm's collectives: every rank must
                # backpropagate through the layer equally often (as DDP itself requires).
                stats = torch.stack([nonzero, diff.new_full((), instances, dtype=torch.int64)])
                dist.all_reduce(stats)
                self._update_controller(stats[0], stats[1])
            elif instances > 0:
                # One process: the instance count is known here, so no device-side guard is needed.
                self._update_controller(nonzero, instances)

    def _update_controller(self, nonzero: Tensor, instances: Tensor | int) -> None:
        """Eq. 9, then Eq. 10 or the fast log-space rule: in-place buffer updates, no host sync.

        ``nonzero`` / ``instances``: non-zero entries and instances of this step (``instances`` a
        tensor after an all-reduce); a step without instances (an empty batch on every rank)
        leaves α and ḡ unchanged.
        """
        seen = instances > 0 if isinstance(instances, Tensor) else None
        count = instances.clamp_min(1) if isinstance(instances, Tensor) else instances
        mean_nnz = nonzero.to(self.nnz_ema.dtype) / count

        def keep_unseen(new: Tensor, old: Tensor) -> Tensor:
            return new if seen is None else torch.where(seen, new, old)

        # One process (seen is None): results go straight into the buffers (out=, in place), the
        # same arithmetic in the same order as the guarded path, so the traces are bit-identical.
        if seen is None:
            ema = torch.add(self.nnz_ema * self.decay, mean_nnz * (1.0 - self.decay), out=self.nnz_ema)
        else:
            ema = self.decay * self.nnz_ema + (1.0 - self.decay) * mean_nnz
            self.nnz_ema.copy_(keep_unseen(ema, self.nnz_ema))
        if self.controller == "fast":
            scale = self.target_nnz if self.target_nnz > 0 else 1.0
            gain = ((self.target_nnz - mean_nnz) / scale).clamp_(-1.0, 1.0).mul_(self.FAST_GAIN).exp_()
            if seen is None:
                torch.mul(self.alpha.clamp_min(self.step), gain, out=self.alpha)
            else:
                self.alpha.copy_(keep_unseen(self.alpha.clamp_min(self.step) * gain, self.alpha))
            return
        # Eq. 10 raises α while ḡ ≤ c; the reference code raises it only while ḡ < c.
        below = ema < self.target_nnz if self.controller == "reference" else ema <= self.target_nnz
        delta = torch.where(below, self.step, -self.step)
        if seen is None:
            torch.add(self.alpha, delta, out=self.alpha).clamp_min_(0.0)
        else:
            self.alpha.copy_(keep_unseen((self.alpha + delta).clamp_min(0.0), self.alpha))

    def _extra_repr_parts(self) -> list[str]:
        parts = [
            f"controller={self.controller!r}",
            f"target_nnz={self.target_nnz:g}",
            f"step={self.step:g}",
            f"decay={self.decay:g}",
            f"initial_alpha={self.initial_alpha:g}",
        ]
        if self.lam_scope != "example":
            parts.append(f"lam_scope={self.lam_scope!r}")
        return parts + super()._extra_repr_parts()


class Blackbox(IMLE):
    """Blackbox differentiation of combinatorial solvers (Vlastelica et al., ICLR 2020).

    No noise; the backward makes one extra solver call on the parameters moved against the
    downstream gradient and divides the change of solution by λ. In max form::

        g = (MAP(θ) − MAP(θ − λ ∇f)) / λ

    which for a ``"min"`` solver with costs w is the paper's ``∇_w f_λ = −(y(w) − y(w + λ ∇f)) / λ``
    (the core flips the sign, once). It is :class:`IMLE` with no noise and the forward difference:
    the gradient of a piecewise-linear interpolation of f∘MAP whose width λ trades informativeness
    (large λ) against faithfulness to f (small λ). Two solver calls per step; deterministic.
    """

    def __init__(self, solver: Any, *, lam: float = 20.0, check_finite: bool = True):
        super().__init__(solver, lam=lam, noise=None, central=False, check_finite=check_finite)

    def extra_repr(self) -> str:
        return f"solver={_solver_repr(self.solver)}, lam={self.lam:g}"


class STE(PerturbAndMAP):
    """Straight-through estimator: MAP forward (optionally perturbed), identity backward.

    Forward: ``z_s = MAP(θ + τ ε_s)`` with τ = ``noise_temperature`` (no noise by default, so
    ``z = MAP(θ)``). Backward: the solver is treated as the identity in max form, so the gradient
    for θ is the downstream gradient, averaged over samples as in :class:`FiniteDifference`
    (``(1/S) Σ_s S·dy_s = Σ_s dy_s``). For a ``"min"`` solver the solution falls as costs rise, so
    the gradient for the costs is −dy: the "negative identity" of Sahoo et al. (ICLR 2023).
    Straight-through after Bengio, Léonard & Courville (2013). One solver call per step and no
    hyper-parameter, but biased: it ignores the solver entirely in the backward.
    """

    def __init__(
        self,
        solver: Any,
        *,
        noise: Noise | None = None,
        noise_temperature: float = 1.0,
        samples: int | None = None,
        generator: torch.Generator | None = None,
        check_finite: bool = True,
    ):
        super().__init__(
            solver,
            samples=samples,
            noise=noise,
            noise_temperature=noise_temperature,
            generator=generator,
            check_finite=check_finite,
        )

    def _backward_impl(self, theta, out, state, grad_out, context):
        self._check_grad(grad_out)
        return grad_out.sum(0)


class ScoreFunction(PerturbAndMAP):
    """REINFORCE over the perturbation density (Williams 1992); works for any solver.

    Forward: ``z_s = MAP(θ + σ ε_s)`` with ε_s ~ ν i.i.d. (``noise``); the output is
    ``[S, *batch, *event]``. The solver is never differentiated, only ν's score ∇log ν is used:
    with ``u = θ + σε`` as the random variable, whose density ``ν((u − θ)/σ)/σᵈ`` carries all
    the dependence on θ,

        ∇_θ E[f(MAP(θ + σε))] = E[ f(MAP(θ + σε)) · (−∇log ν(ε)) ] / σ.

    **Which f.** A layer does not see f, only the downstream gradient ``dy_s`` of each sample, so
    the value of sample s is taken as ``f_s = S·⟨dy_s, z_s⟩`` (the loss is expected to average over
    samples; see :class:`FiniteDifference`). This equals f(z_s) up to a constant, and the estimator
    is unbiased, whenever f is affine in z (regrets, linear objectives, :func:`~difftools.losses.hamming_loss`)
    and for ``‖z − y‖²`` when every solution is 0/1 with the same number of ones (argmax, top-k,
    spanning trees). For other f it is the score-function gradient of f linearised at each sample.

    **Baseline.** With ``baseline=True`` and S ≥ 2 each f_s is reduced by the mean of the other
    samples' values (the leave-one-out baseline of Kool, van Hoof & Welling 2019), which is
    independent of ε_s and so keeps the estimate unbiased while removing most of its variance.
    With a single sample there is nothing to leave out and no baseline is used.

    The gradient returned is ``(1/S) Σ_s (f_s − b_s) · (−∇log ν(ε_s)) / σ``. One solver call per
    step; unbiased (for the f above) but with variance that grows as σ shrinks.
    """

    def __init__(
        self,
        solver: Any,
        *,
        sigma: float = 1.0,
        samples: int | None = 1,
        noise: Noise = _DEFAULT,  # type: ignore[assignment]
        baseline: bool = True,
        generator: torch.Generator | None = None,
        check_finite: bool = True,
    ):
        name = type(self).__name__
        check_real(sigma, name, "sigma", lambda v: v > 0, "> 0")
        super().__init__(
            solver,
            samples=samples,
            noise=Gumbel() if noise is _DEFAULT else noise,
            noise_temperature=sigma,
            generator=generator,
            check_finite=check_finite,
        )
        if self.noise is None:
            raise TypeError(
                f"{name}: noise must be a distribution with a closed-form score (Gumbel(), Normal()), got None"
            )
        try:
            self.noise.score(torch.zeros(1))
        except NotImplementedError:
            raise TypeError(
                f"{name}: noise {self.noise!r} has no closed-form score; use Gumbel() or Normal()"
            ) from None
        self.baseline = check_bool(baseline, name, "baseline")

    @property
    def sigma(self) -> float:
        """The perturbation scale σ."""
        return self.noise_temperature

    def _backward_impl(self, theta, out, state, grad_out, context):
        (eps,) = state
        self._check_grad(grad_out)
        return self._score_gradient(out, eps, grad_out)

    def _score_gradient(self, z: Tensor, eps: Tensor, dy: Tensor) -> Tensor:
        """``Σ_s (⟨dy_s, z_s⟩ − b_s) · (−∇log ν(ε_s)) / σ`` for ``z``, ``eps`` ``[S, *batch, *event]``.

        ``dy_s`` already carries the 1/S of the sample average, so ``⟨dy_s, z_s⟩ = f_s / S``.
        """
        samples = eps.shape[0]
        event_dim = self.solver.event_dim
        value = event_sum(dy * z, event_dim)  # [S, *batch]
        if self.baseline and samples > 1:
            value = value - (value.sum(0, keepdim=True) - value) / (samples - 1)
        weight = value.reshape(*value.shape, *(1,) * event_dim)
        return (weight * -self.noise.score(eps)).sum(0) / self.noise_temperature

    def extra_repr(self) -> str:
        return (
            f"solver={_solver_repr(self.solver)}, sigma={self.sigma:g}, samples={self.samples}, "
            f"noise={self.noise!r}, baseline={self.baseline}"
        )


class Perturbed(ScoreFunction):
    """Perturbed optimizer (Berthet et al., NeurIPS 2020): the smoothed map ŷ_σ(θ) = E[MAP(θ + σZ)].

    Forward: the Monte-Carlo mean ``(1/S) Σ_s MAP(θ + σ Z_s)``, shape ``[*batch, *event]`` (no
    sample dimension). Backward: the Jacobian of ŷ_σ from the perturbation's score,

        J ŷ_σ(θ) = E[ MAP(θ + σZ) (−∇log ν(Z))ᵀ ] / σ      (= E[MAP(θ + σZ) Zᵀ] / σ for Gaussian Z),

    estimated with the same samples as the forward, i.e. a :class:`ScoreFunction` whose output is
    the sample mean. ``baseline=True`` (needs samples ≥ 2 to act) subtracts the leave-one-out mean
    as a control variate. With Gumbel noise on ``argmax``, ŷ_σ(θ) = softmax(θ/σ). Pair it with
    :class:`~difftools.losses.FenchelYoungLoss` to train without any backward through the solver.
    One solver call per step; no extra call in the backward.
    """

    _returns_samples = False

    def __init__(
        self,
        solver: Any,
        *,
        sigma: float = 1.0,
        samples: int | None = 1,
        noise: Noise = _DEFAULT,  # type: ignore[assignment]
        baseline: bool = False,
        generator: torch.Generator | None = None,
        check_finite: bool = True,
    ):
        super().__init__(
            solver,
            sigma=sigma,
            samples=samples,
            noise=Normal() if noise is _DEFAULT else noise,
            baseline=baseline,
            generator=generator,
            check_finite=check_finite,
        )

    def _forward_impl(self, theta: Tensor, context: dict) -> tuple[Tensor, tuple[Tensor, ...]]:
        eps, z = self._perturb_and_map(theta, context)
        return z.mean(0), (eps, z)

    def _backward_impl(self, theta, out, state, grad_out, context):
        eps, z = state
        self._check_grad(grad_out)
        # The mean's gradient reaches each sample divided by S.
        return self._score_gradient(z, eps, grad_out / eps.shape[0])
