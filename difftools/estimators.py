"""Finite-difference perturb-and-MAP estimators: AIMLE (adaptive λ) and I-MLE (fixed λ).

Both are presets of :class:`FiniteDifference`, which differs from the shared core only in its
backward: a forward or central difference of MAP states along the downstream gradient, with a
step λ chosen by the subclass.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from difftools.core import PerturbAndMAP, count_nonzero_per_instance, event_norm
from difftools.noise import Gumbel, Noise

__all__ = ["FiniteDifference", "IMLE", "AIMLE"]

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
        if target_noise_temperature is not None and not (
            math.isfinite(target_noise_temperature) and target_noise_temperature >= 0
        ):
            raise ValueError(
                f"{type(self).__name__}: target_noise_temperature must be None or a finite number >= 0, "
                f"got {target_noise_temperature!r}"
            )
        self.central = bool(central)
        self.target_noise_temperature = (
            None if target_noise_temperature is None else float(target_noise_temperature)
        )

    def _forward_impl(self, theta: Tensor, context: dict) -> tuple[Tensor, tuple[Tensor, ...]]:
        samples = self._num_samples()
        eps = self._sample_noise(theta, samples)
        z = self._map(theta + self.noise_temperature * eps, context, samples)
        return z, (eps,)

    def _backward_impl(self, theta, out, state, grad_out, context):
        (eps,) = state
        self._check_grad(grad_out)
        samples = eps.shape[0]
        grad_f = grad_out * samples if samples > 1 else grad_out
        lam = self._step(theta, grad_f)  # [S or 1, *batch, 1...] broadcastable over samples and event
        tau = self.noise_temperature if self.target_noise_temperature is None else self.target_noise_temperature
        base = theta + tau * eps
        shift = lam * grad_f
        if self.central:
            # One solver call for both ends of the difference: [2S, *batch, *event].
            ends = self._map(torch.cat([base + shift, base - shift]), context, 2 * samples)
            diff = ends[:samples] - ends[samples:]
            denom = 2 * lam
        else:
            diff = out - self._map(base - shift, context, samples)
            denom = lam
        self._observe(diff)
        grad = torch.where(denom > 0, diff / torch.where(denom > 0, denom, 1.0), 0.0)
        return grad.mean(0)

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

    def __init__(self, solver: Any, *, lam: float = 10.0, **kwargs: Any):
        super().__init__(solver, **kwargs)
        if not (isinstance(lam, (int, float)) and math.isfinite(lam) and lam > 0):
            raise ValueError(f"IMLE: lam must be a finite number > 0, got {lam!r}")
        self.lam = float(lam)

    def _step(self, theta: Tensor, grad_f: Tensor) -> Tensor:
        return theta.new_tensor(self.lam)

    def _extra_repr_parts(self) -> list[str]:
        return [f"lam={self.lam:g}"] + super()._extra_repr_parts()


class AIMLE(FiniteDifference):
    """Adaptive Implicit MLE (Minervini, Franceschi & Niepert, AAAI 2023, Algorithm 1).

    The step is set per example from the perturbation magnitude (Eq. 8)::

        λ_b = α · mean_s( ‖θ_b‖₂ / ‖∇f_{s,b}‖₂ )

    (samples with a zero downstream gradient are left out of the mean; an example whose
    gradients are all zero gets gradient 0). After each backward pass α is adapted so that the
    average number of non-zero gradient entries per example tracks ``target_nnz`` = c:

        ḡ ← γ ḡ + (1−γ) · mean_{s,b} ‖g_{s,b}‖₀          (Eq. 9, a count, not a fraction)
        α ← max(α + η if ḡ ≤ c else α − η, 0)            (Eq. 10)

    with γ = ``decay`` and η = ``step``. α and ḡ are buffers (saved by ``state_dict``, moved by
    ``.to()``); the update runs on θ's device without host synchronisation. Under
    ``torch.distributed`` with ``sync=True`` the non-zero counts are all-reduced first, so every
    rank holds the α a single process would compute on the whole batch.

    **Controllers.** ``controller="paper"`` (the default) is Eq. 10 above. Because α moves by a
    fixed η per step it needs a long warm-up: from α = 0 it takes α*/η steps to reach the α* that
    gives ``target_nnz`` (about 500 steps for α* ≈ 0.5), the limitation the paper itself names.
    ``controller="fast"`` updates α multiplicatively, i.e. additively in log space::

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
    a few percent of α. ḡ is still updated by Eq. 9 for monitoring. Both controllers keep the
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
        central: bool = True,
        noise: Noise | None = _DEFAULT,  # type: ignore[assignment]
        noise_temperature: float = 1.0,
        target_noise_temperature: float | None = None,
        target_nnz: float = 1.0,
        step: float = 1e-3,
        decay: float = 0.9,
        initial_alpha: float = 0.0,
        controller: str = "paper",
        generator: torch.Generator | None = None,
        sync: bool = True,
        check_finite: bool = True,
    ):
        super().__init__(
            solver,
            samples=samples,
            central=central,
            noise=noise,
            noise_temperature=noise_temperature,
            target_noise_temperature=target_noise_temperature,
            generator=generator,
            check_finite=check_finite,
        )
        for arg, value, ok in (
            ("target_nnz", target_nnz, target_nnz >= 0),
            ("step", step, step > 0),
            ("decay", decay, 0 < decay <= 1),
            ("initial_alpha", initial_alpha, initial_alpha >= 0),
        ):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and ok):
                raise ValueError(f"AIMLE: invalid {arg}={value!r}")
        if controller not in ("paper", "fast"):
            raise ValueError(f"AIMLE: controller must be 'paper' or 'fast', got {controller!r}")
        self.controller = controller
        self.target_nnz = float(target_nnz)
        self.step = float(step)
        self.decay = float(decay)
        self.sync = sync
        self.register_buffer("alpha", torch.tensor(float(initial_alpha)))
        # Algorithm 1 starts the moving average of the gradient count at 1.
        self.register_buffer("nnz_ema", torch.tensor(1.0))

    def _step(self, theta: Tensor, grad_f: Tensor) -> Tensor:
        event_dim = self.solver.event_dim
        grad_norm = event_norm(grad_f, event_dim)  # [S, *batch, 1...]
        theta_norm = event_norm(theta, event_dim).unsqueeze(0)
        nonzero = grad_norm > 0
        ratio = torch.where(nonzero, theta_norm / torch.where(nonzero, grad_norm, 1.0), 0.0)
        count = nonzero.sum(0, keepdim=True).clamp_min(1)
        return self.alpha.to(theta.dtype) * ratio.sum(0, keepdim=True) / count

    def _observe(self, diff: Tensor) -> None:
        nnz = count_nonzero_per_instance(diff, self.solver.event_dim)
        stats = torch.stack([nnz.sum(), nnz.new_tensor(nnz.numel())]).to(self.nnz_ema.dtype)
        if self.sync and dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats)
        with torch.no_grad():
            self._update_controller(stats[0] / stats[1])

    def _update_controller(self, mean_nnz: Tensor) -> None:
        """Eq. 9, then Eq. 10 or the fast log-space rule: in-place buffer updates, no host sync."""
        ema = self.decay * self.nnz_ema + (1.0 - self.decay) * mean_nnz
        self.nnz_ema.copy_(ema)
        if self.controller == "fast":
            scale = self.target_nnz if self.target_nnz > 0 else 1.0
            error = ((self.target_nnz - mean_nnz) / scale).clamp(-1.0, 1.0)
            self.alpha.copy_(self.alpha.clamp_min(self.step) * torch.exp(self.FAST_GAIN * error))
            return
        delta = torch.where(ema <= self.target_nnz, self.step, -self.step)
        self.alpha.copy_((self.alpha + delta).clamp_min(0.0))

    def _extra_repr_parts(self) -> list[str]:
        parts = [f"target_nnz={self.target_nnz:g}", f"step={self.step:g}", f"decay={self.decay:g}"]
        if self.controller != "paper":
            parts.append(f"controller={self.controller!r}")
        return parts + super()._extra_repr_parts()
