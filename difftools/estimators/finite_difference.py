"""Finite differences of MAP states along the downstream gradient: FiniteDifference, IMLE and Blackbox."""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import _get_current_dispatch_mode

from difftools import _host
from difftools._validation import check_bool, check_non_negative, check_real
from difftools.core import PerturbAndMAP
from difftools.noise import Gumbel, Noise
from difftools.output_checks import solver_repr

__all__ = ["FiniteDifference", "IMLE", "Blackbox"]


@functools.cache
def _finite_step_bounds(dtype: torch.dtype) -> tuple[float, float]:
    """The smallest and largest positive λ of ``dtype`` whose reciprocal is finite in it."""
    high = torch.finfo(dtype).max
    low = torch.tensor(1.0 / high, dtype=dtype)
    while not torch.isfinite(low.reciprocal()):  # 1/max rounds to a subnormal: step up to the first good one
        low = torch.nextafter(low, torch.tensor(1.0, dtype=dtype))
    while torch.isfinite(torch.nextafter(low, torch.tensor(0.0, dtype=dtype)).reciprocal()):
        low = torch.nextafter(low, torch.tensor(0.0, dtype=dtype))
    return float(low), high


_SIGNS: dict[tuple[torch.dtype, torch.device, int], Tensor] = {}
_is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)  # torch >= 2.3


def _plain_mode() -> bool:
    """Whether tensors made now are ordinary eager tensors: no dispatch mode (fake, meta), no compiling."""
    return not _is_compiling() and _get_current_dispatch_mode() is None


def _central_signs(dtype: torch.dtype, device: torch.device, dim: int) -> Tensor:
    """``[+1, −1]`` shaped ``[2, 1, ...]`` (``dim`` trailing ones): the two ends of a central difference.

    Kept per (dtype, device, dim), which saves a host-to-tensor copy per step, but only as an
    ordinary eager tensor: one made under a fake-tensor mode, while compiling or in inference mode
    would break the eager steps that reuse it, and under such modes a fresh one is made each time.
    """
    key = (dtype, device, dim)
    plain = _plain_mode()
    if plain and key in _SIGNS:
        return _SIGNS[key]
    signs = torch.tensor([1.0, -1.0], dtype=dtype, device=device).view(2, *(1,) * dim)
    if plain and type(signs) is Tensor and not signs.is_inference():
        _SIGNS[key] = signs
    return signs


def _usable_steps(lam: Tensor) -> Tensor | None:
    """Where λ and 1/λ are finite and positive, as a mask; None when that holds everywhere.

    A λ that is not finite, or whose reciprocal is not (0, the smallest subnormals), takes no step:
    its gradient is 0 instead of 0·inf = NaN, and no perturbed point is ±inf. On the CPU, where a
    read waits for nothing, λ's smallest and largest values decide on the host (one reduction,
    and no masking in the common case); elsewhere λ clamped to the dtype's bounds equals λ only
    inside them (NaN equals nothing): two kernels, with no host synchronisation.
    """
    low, high = _finite_step_bounds(lam.dtype)
    if lam.numel() and _host.reads_are_free(lam.device):
        smallest, largest = torch.aminmax(lam)
        if low <= smallest.item() and largest.item() <= high:  # False for NaN
            return None
    return lam.clamp(low, high) == lam


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

    ``samples``, ``noise_temperature``, ``generator`` and ``check_finite`` are the core's
    (:class:`~difftools.core.PerturbAndMAP`); ``noise`` defaults to Gumbel here.
    """

    def __init__(
        self,
        solver: Any,
        *,
        central: bool = False,
        noise: Noise | None = Gumbel(),
        target_noise_temperature: float | None = None,
        **core: Any,
    ):
        super().__init__(solver, noise=noise, **core)
        name = type(self).__name__
        if target_noise_temperature is not None:
            check_non_negative(target_noise_temperature, name, "target_noise_temperature")
        self.central = check_bool(central, name, "central")
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
        if not self.central and hasattr(self.solver, "decided"):
            # A solver that answers each call from one of two sources (difftools.cached: pool or real
            # solver) says which through `last_solved`. The forward difference subtracts the backward's
            # answer from this call's, so both must come from the same source: keep this decision.
            return z, (target, torch.tensor(bool(self.solver.last_solved)))
        return z, (target,)

    def _backward_impl(self, theta, out, state, grad_out, context):
        target, *decision = state
        samples = target.shape[0]
        grad_f = grad_out * samples if samples > 1 else grad_out
        # λ [S or 1, *batch, 1...], broadcastable over samples and event, and the per-pair norms of ∇f
        # the step was taken from, if any: they also tell whether ∇f is finite (before any solver call).
        lam, grad_norm = self._step(theta, grad_f)
        self._check_grad(grad_out, grad_norm)
        # steps: where λ takes its step, or None where every λ does (a fixed λ is checked in _step).
        steps = None if self._fixed_step else _usable_steps(lam)
        if steps is not None:
            lam = torch.where(steps, lam, 0.0)
        shift = lam * grad_f
        if self.central:
            # Both ends of the difference in one tensor and one solver call, [2S, *batch, *event]: one
            # kernel writes θ+τ'ε ± λ∇f (no concatenation copy). ±1 times the shift is exact, so the
            # points are what target + shift and target − shift give, fused or not.
            signs = _central_signs(shift.dtype, shift.device, shift.dim())
            points = torch.addcmul(target, signs, shift).flatten(0, 1)
            # The forward's call on the same solver was checked against its discrete set (a solver
            # returning scores does so on every call): the backward's calls are not checked again.
            ends = self._map(points, context, 2 * samples, check_discrete=False)
            diff = ends[:samples] - ends[samples:]
        else:
            paired = self.solver.decided(bool(decision[0])) if decision else contextlib.nullcontext()
            with paired:
                diff = out - self._map(target - shift, context, samples, check_discrete=False)
        # 1/(2λ) or 1/λ where λ > 0 (0.5/λ, not 1/(2λ): 2λ may overflow where 1/λ is finite) and 0
        # where λ = 0 (no step taken, so no gradient — never NaN).
        # (reciprocal() then × 0.5 is what Tensor.__rdiv__ computes for 0.5 / λ, without its Python frame.)
        reciprocal = lam.reciprocal()
        inverse = reciprocal.mul_(0.5) if self.central else reciprocal
        if steps is not None:
            inverse = torch.where(steps, inverse, 0.0)
        # The controller counts only the changes that become gradient entries. Where λ = 0 both MAP
        # points coincide, except in the forward difference towards another temperature's target.
        moved_target = not self.central and self.target_noise_temperature is not None
        self._observe(diff * (inverse > 0) if moved_target else diff, out, grad_f, grad_norm)
        if samples == 1:  # no mean over one sample: saves a full pass
            return (diff * inverse).squeeze(0)
        return (diff * inverse).mean(0)

    # Whether _step returns a λ already known to have a finite reciprocal (IMLE's fixed λ).
    _fixed_step = False

    def _step(self, theta: Tensor, grad_f: Tensor) -> tuple[Tensor, Tensor | None]:
        """λ, and the norms of ∇f per (sample, instance) in float64 (``core.event_norm``) if it took them, else None."""
        raise NotImplementedError

    def _observe(self, diff: Tensor, out: Tensor, grad_f: Tensor, grad_norm: Tensor | None) -> None:
        """Hook for the adaptive controller: the unscaled MAP differences, the forward's MAP states, ∇f and
        :meth:`_step`'s norms of ∇f."""

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
        # 1/λ must be finite too: the gradient divides by λ.
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
        return theta.new_full((), self.lam), None  # a fill on θ's device: no host-to-device copy

    def _extra_repr_parts(self) -> list[str]:
        return [f"lam={self.lam:g}"] + super()._extra_repr_parts()




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
        return f"solver={solver_repr(self.solver)}, lam={self.lam:g}"
