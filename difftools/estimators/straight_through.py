"""The straight-through estimator: MAP forward (optionally perturbed), identity backward."""

from __future__ import annotations

from difftools.core import PerturbAndMAP

__all__ = ["STE"]


class STE(PerturbAndMAP):
    """Straight-through estimator: MAP forward (optionally perturbed), identity backward.

    Forward: ``z_s = MAP(θ + τ ε_s)`` with τ = ``noise_temperature`` (no noise by default, so
    ``z = MAP(θ)``). Backward: the solver is treated as the identity in max form, so the gradient
    for θ is the downstream gradient, averaged over samples as in :class:`FiniteDifference`
    (``(1/S) Σ_s S·dy_s = Σ_s dy_s``). For a ``"min"`` solver the solution falls as costs rise, so
    the gradient for the costs is −dy: the "negative identity" of Sahoo et al. (ICLR 2023).
    Straight-through after Bengio, Léonard & Courville (2013). One solver call per step and no
    hyper-parameter, but biased: it ignores the solver entirely in the backward. Its arguments are
    the core's (:class:`~difftools.core.PerturbAndMAP`).
    """

    def _backward_impl(self, theta, out, state, grad_out, context):
        self._check_grad(grad_out)
        return grad_out.sum(0)
