"""Score-function estimators over the perturbation density: ScoreFunction (REINFORCE) and Perturbed (its mean)."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from difftools._validation import check_bool, check_positive
from difftools.core import PerturbAndMAP, event_sum
from difftools.deprecation import renamed_keyword
from difftools.noise import Gumbel, Noise, Normal
from difftools.output_checks import solver_repr

__all__ = ["ScoreFunction", "Perturbed"]


class ScoreFunction(PerturbAndMAP):
    """REINFORCE over the perturbation density (Williams 1992); works for any solver.

    Forward: ``z_s = MAP(θ + σ ε_s)`` with ε_s ~ ν i.i.d. (``noise``) and σ = ``noise_temperature``
    (> 0, the core's name for the noise scale, as in AIMLE and IMLE); the output is
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
    step; unbiased (for the f above) but with variance that grows as σ shrinks. ``generator`` and
    ``check_finite`` are the core's (:class:`~difftools.core.PerturbAndMAP`). The keyword ``sigma``
    is the deprecated name of ``noise_temperature`` (removed in the next release).
    """

    def __init__(
        self,
        solver: Any,
        *,
        noise_temperature: float = 1.0,
        samples: int | None = 1,
        noise: Noise = Gumbel(),
        baseline: bool = True,
        **core: Any,
    ):
        name = type(self).__name__
        noise_temperature = renamed_keyword(name, core, "sigma", "noise_temperature", noise_temperature, 1.0)
        check_positive(noise_temperature, name, "noise_temperature")
        super().__init__(solver, samples=samples, noise=noise, noise_temperature=noise_temperature, **core)
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
        """Deprecated name of ``noise_temperature`` (removed in the next release)."""
        warnings.warn(
            f"{type(self).__name__}.sigma is deprecated and will be removed in the next release; "
            "read noise_temperature instead",
            DeprecationWarning,
            stacklevel=2,
        )
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
            f"solver={solver_repr(self.solver)}, noise_temperature={self.noise_temperature:g}, samples={self.samples}, "
            f"noise={self.noise!r}, baseline={self.baseline}"
        )


class Perturbed(ScoreFunction):
    """Perturbed optimizer (Berthet et al., NeurIPS 2020): the smoothed map ŷ_σ(θ) = E[MAP(θ + σZ)].

    Forward, with σ = ``noise_temperature`` (> 0; ``sigma`` is its deprecated name): the Monte-Carlo
    mean ``(1/S) Σ_s MAP(θ + σ Z_s)``, shape ``[*batch, *event]`` (no sample dimension). Backward:
    the Jacobian of ŷ_σ from the perturbation's score,

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
        noise_temperature: float = 1.0,
        samples: int | None = 1,
        noise: Noise = Normal(),
        baseline: bool = False,
        **core: Any,
    ):
        noise_temperature = renamed_keyword(
            type(self).__name__, core, "sigma", "noise_temperature", noise_temperature, 1.0
        )
        super().__init__(
            solver, noise_temperature=noise_temperature, samples=samples, noise=noise, baseline=baseline, **core
        )

    def _forward_impl(self, theta: Tensor, context: dict) -> tuple[Tensor, tuple[Tensor, ...]]:
        eps, z = self._perturb_and_map(theta, context)
        return z.mean(0), (eps, z)

    def _backward_impl(self, theta, out, state, grad_out, context):
        eps, z = state
        self._check_grad(grad_out)
        # The mean's gradient reaches each sample divided by S.
        return self._score_gradient(z, eps, grad_out / eps.shape[0])
