"""How AIMLE's α moves after each backward: Eq. 10 of the paper (:class:`PaperRule`) and :class:`FastRule`.

A rule is a small object with one method, :meth:`AlphaRule.next_alpha`; AIMLE keeps the state
(α and the moving count ḡ, as buffers) and calls it. The built-in rules also give the same update
on host scalars (:meth:`AlphaRule.next_alpha_on_host`), which AIMLE runs on the CPU. The
derivation of the fast rule is on the concepts page (``docs/concepts.md``, "How α is adapted").
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from difftools._validation import check_positive

__all__ = ["FAST_GAIN", "AlphaRule", "DeterministicRule", "FastRule", "PaperRule"]

# κ, the fast rule's default gain: a step changes α by at most a factor e^κ ≈ 1.65.
FAST_GAIN = 0.5


class AlphaRule:
    """Base of the α update rules. ``preset`` names the :data:`~difftools.AIMLE_PRESETS` entry it starts from."""

    name: str = ""
    preset: str = ""

    # Whether next_alpha_on_host is this class's own next_alpha on host scalars: set per class below.
    has_host_form: bool = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        # A host form counts only where it was written with (or after) the tensor form it mirrors:
        # a subclass that changes next_alpha alone must not inherit its parent's host form.
        def owner(name: str) -> type:
            return next(c for c in cls.__mro__ if name in c.__dict__)

        host = owner("next_alpha_on_host")
        cls.has_host_form = host is not AlphaRule and issubclass(host, owner("next_alpha"))

    def next_alpha(self, alpha: Tensor, ema: Tensor, count: Tensor, *, target: float, step: float) -> Tensor:
        """The next α from α, the updated moving count ḡ (Eq. 9) and this step's mean count.

        Tensor operations only (no host synchronisation); ``target`` is c, ``step`` is η.
        """
        raise NotImplementedError

    def next_alpha_on_host(
        self, alpha: np.floating, ema: np.floating, count: np.floating, *, target: float, step: float
    ) -> np.floating:
        """:meth:`next_alpha` on NumPy scalars of the state's dtype (``np.float32`` or ``np.float64``).

        Optional. On the CPU reading the step's count costs nothing, and a dozen scalar tensor
        operations cost about 50 µs a step (a third of AIMLE's fixed cost around a small solver);
        NumPy scalars round after every operation as those tensor operations do, so a host form
        written operation for operation gives the same α (transcendental functions may differ in
        the last bit, as they do between devices). A rule without one runs :meth:`next_alpha`.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class PaperRule(AlphaRule):
    """Eq. 10: ``α ← max(α + η if ḡ ≤ c else α − η, 0)``; ``strict=True`` raises α only while ḡ < c.

    ``strict=False`` is Algorithm 1 of the paper (``controller="paper"``); ``strict=True`` is the
    authors' code, torch-adaptive-imle (``controller="reference"``).
    """

    def __init__(self, strict: bool = False):
        self.strict = bool(strict)
        self.name = self.preset = "reference" if self.strict else "paper"

    def next_alpha(self, alpha: Tensor, ema: Tensor, count: Tensor, *, target: float, step: float) -> Tensor:
        below = ema < target if self.strict else ema <= target
        return (alpha + torch.where(below, step, -step)).clamp_min(0.0)

    def next_alpha_on_host(self, alpha, ema, count, *, target, step):
        scalar = type(alpha)
        bound = scalar(target)
        below = ema < bound if self.strict else ema <= bound
        # torch.where of two Python floats is a float32 tensor, whatever the state's dtype.
        moved = alpha + scalar(np.float32(step if below else -step))
        return max(moved, scalar(0.0))

    def __repr__(self) -> str:
        return f"PaperRule(strict={self.strict})"


class FastRule(AlphaRule):
    """``α ← min(max(α, η) · exp(κ · clip((c − m) / c, −1, 1)), α_max)``, m this batch's mean count.

    Multiplicative (additive in log α) and driven by the current count rather than the lagging ḡ,
    it reaches the target in about 15 steps where Eq. 10 needs hundreds (``controller="fast"``).
    κ is ``gain``; α_max is ``max_alpha``.

    Why a ceiling: the count can be out of reach. A forward difference without noise changes at
    most the cells where the prediction and MAP(θ − λ∇f) differ, and once the prediction is close
    to the target that is fewer than c whatever λ is; α then grew by e^κ every step, overflowed to
    inf within a few hundred steps, and λ = inf takes no step: training stopped (Warcraft, forward,
    no noise). Past α ≈ 100 the step λ∇f is a hundred times ‖θ‖, so the perturbed MAP no longer
    depends on θ and a larger α changes nothing but the gradient's scale.
    """

    name = preset = "fast"

    def __init__(self, gain: float = FAST_GAIN, max_alpha: float = 100.0):
        self.gain = check_positive(gain, "FastRule", "gain")
        self.max_alpha = check_positive(max_alpha, "FastRule", "max_alpha")

    def next_alpha(self, alpha: Tensor, ema: Tensor, count: Tensor, *, target: float, step: float) -> Tensor:
        scale = target if target > 0 else 1.0
        factor = ((target - count) / scale).clamp_(-1.0, 1.0).mul_(self.gain).exp_()
        return (alpha.clamp_min(step) * factor).clamp_max_(self.max_alpha)

    def next_alpha_on_host(self, alpha, ema, count, *, target, step):
        scalar = type(alpha)
        scale = target if target > 0 else 1.0
        error = min(max((scalar(target) - count) / scalar(scale), scalar(-1.0)), scalar(1.0))
        # exp correctly rounded from float64: torch's float32 exp differs from it in the last bit
        # for about 1 argument in 150 (a relative 6e-8 on α).
        factor = scalar(math.exp(error * scalar(self.gain)))
        return min(max(alpha, scalar(step)) * factor, scalar(self.max_alpha))

    def __repr__(self) -> str:
        return f"FastRule(gain={self.gain:g}, max_alpha={self.max_alpha:g})"


class DeterministicRule(FastRule):
    """The fast rule with the ceiling α ≤ 1: the rule of ``controller="deterministic"``.

    That preset has no noise and forward differences, so the count is out of reach as soon as
    predictions are close to their targets and α sits at its ceiling: λ = ‖θ‖ / ‖∇f‖ per example,
    a step λ∇f as large as θ itself, lowered only while the target differs by more than c
    solutions. A ceiling of 1 was the best of 0.3, 1, 3, 10 and 100 on PyEPO's shortest path and
    knapsack and on Warcraft (``docs/aimle-defaults.md``).
    """

    name = preset = "deterministic"

    def __init__(self, gain: float = FAST_GAIN, max_alpha: float = 1.0):
        super().__init__(gain=gain, max_alpha=max_alpha)

    def __repr__(self) -> str:
        return f"DeterministicRule(gain={self.gain:g}, max_alpha={self.max_alpha:g})"
