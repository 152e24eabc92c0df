"""AIMLE: I-MLE whose step λ adapts to a target number of non-zero gradient entries (Minervini et al. 2023).

The α update is a small rule object (:mod:`difftools.estimators.alpha_rules`); the derivations
of Eq. 8-10 and of the fast rule are on the concepts page (``docs/concepts.md``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from difftools import _host
from difftools._validation import check_non_negative, check_positive, check_real
from difftools.core import LARGE, event_norm
from difftools.distributed.data_parallel import summed_over_ranks
from difftools.estimators.alpha_rules import FAST_GAIN, AlphaRule, DeterministicRule, FastRule, PaperRule
from difftools.estimators.finite_difference import FiniteDifference

__all__ = ["AIMLE", "AIMLE_PRESETS", "AIMLE_RULES"]

# The settings each AIMLE controller starts from; an argument passed explicitly overrides its entry.
# "paper" is Algorithm 1 of Minervini et al. (2023) exactly; "reference" the authors' code
# (torch-adaptive-imle's AdaptiveTargetDistribution defaults with symmetric_perturbation=False);
# "fast", the default, was chosen by measurement (docs/aimle-defaults.md, benchmarks/aimle_study.py);
# "deterministic" is the measured best for training through a solver on its decisions (no sampling).
# "noise" is the noise left to the preset when none is passed: "gumbel" (Gumbel(0, 1)) or None.
AIMLE_PRESETS: dict[str, dict[str, Any]] = {
    "fast": {
        "central": True,
        "target_nnz": 1.0,
        "step": 1e-3,
        "decay": 0.9,
        "initial_alpha": 1.0,
        "lam_scope": "example",
        "count": "solution",
        "count_over": "active",
        "noise": "gumbel",
    },
    "deterministic": {
        "central": False,
        "target_nnz": 1.0,
        "step": 1e-3,
        "decay": 0.9,
        "initial_alpha": 1.0,
        "lam_scope": "example",
        "count": "solution",
        "count_over": "active",
        "noise": None,
    },
    "paper": {
        "central": True,
        "target_nnz": 1.0,
        "step": 1e-3,
        "decay": 0.9,
        "initial_alpha": 0.0,
        "lam_scope": "example",
        "count": "entries",
        "count_over": "batch",
        "noise": "gumbel",
    },
    "reference": {
        "central": False,
        "target_nnz": 1.0,
        "step": 1e-4,
        "decay": 0.9,
        "initial_alpha": 1.0,
        "lam_scope": "batch",
        "count": "entries",
        "count_over": "batch",
        "noise": "gumbel",
    },
}

# The α rule of each controller name.
AIMLE_RULES: dict[str, AlphaRule] = {
    "fast": FastRule(),
    "deterministic": DeterministicRule(),
    "paper": PaperRule(),
    "reference": PaperRule(strict=True),
}


# The state dtypes whose tensor arithmetic NumPy scalars reproduce: IEEE binary32 and binary64,
# rounded after every operation (the controller's host path; other dtypes keep the tensor path).
_HOST_SCALARS = {torch.float32: np.float32, torch.float64: np.float64}


def _nonzero_entries(x: Tensor, dims: tuple[int, ...]) -> Tensor:
    """The non-zero (and NaN) entries of ``x`` over ``dims``, per instance: the count of Eq. 9.

    ``x.bool().sum(dims)`` (int64): the same count as count_nonzero over dims in two kernels where
    that runs four. From :data:`~difftools.core.LARGE` entries on, a float32 ord-0 norm (exact
    below 2^24 entries an instance): it reads x once, with no boolean temporary, where the integer
    reduction costs about 7x as much on the CPU.
    """
    if x.numel() < LARGE or math.prod(x.shape[d] for d in dims) >= 1 << 24:
        return x.bool().sum(dims)
    return torch.linalg.vector_norm(x, ord=0, dim=dims, dtype=x.dtype if x.dtype == torch.float64 else torch.float32)


def _active_pairs(grad_f: Tensor, dims: tuple[int, ...]) -> Tensor:
    """The (sample, example) pairs whose ∇f has a non-zero (or NaN) entry over ``dims``, as an int64 tensor.

    ``any`` then a sum: two kernels, the fewest for small tensors; from
    :data:`~difftools.core.LARGE` entries on, :func:`_nonzero_entries` reads ∇f about twice as fast.
    """
    if not dims:
        return torch.count_nonzero(grad_f)
    if grad_f.numel() < LARGE:
        return grad_f.any(dim=dims).sum()
    return torch.count_nonzero(_nonzero_entries(grad_f, dims))


class AIMLE(FiniteDifference):
    """Adaptive Implicit MLE (Minervini, Franceschi & Niepert, AAAI 2023, Algorithm 1).

    I-MLE (:class:`~difftools.IMLE`) with the step set per example from the perturbation size,
    ``λ_b = α · mean_s(‖θ_b‖ / ‖∇f_{s,b}‖)`` (Eq. 8), and α adapted after every backward so that
    the mean number of non-zero gradient entries per example tracks ``target_nnz`` (Eq. 9-10).
    α and the moving count ḡ are buffers (``state_dict``, ``.to()``), updated on θ's device with
    no host synchronisation; under ``torch.distributed`` with ``sync=True`` the counts are
    all-reduced, so every rank holds the α a single process would compute on the whole batch.

    Args:
        controller: the α rule and the preset (:data:`AIMLE_PRESETS`) that arguments left at None
            take: ``"fast"`` (default, chosen by measurement: ``docs/aimle-defaults.md``),
            ``"deterministic"`` (no noise, forward differences, α ≤ 1: for training through a
            solver on its decisions, the best AIMLE setting measured on PyEPO's tasks and
            Warcraft), ``"paper"`` (Algorithm 1 exactly) or ``"reference"`` (the authors' code);
            or an :class:`~difftools.estimators.AlphaRule`, whose ``preset`` names its preset.
        central: central differences (else forward).
        target_nnz: c, the target number of non-zero gradient entries per example.
        step: η, α's step (Eq. 10) and, for the fast rule, its floor.
        decay: γ of the moving count ḡ (Eq. 9).
        initial_alpha: α₀.
        lam_scope: ``"example"`` (Eq. 8 per example) or ``"batch"`` (one λ for the batch).
        count: what c counts per sample and example: ``"entries"``, the non-zero entries of the
            MAP difference (Eq. 9, the paper's and the reference code's), or ``"solution"`` (the
            default), that number divided by the non-zero entries of the forward MAP state (at
            least 1), so that c = 1 means "a difference as large as a solution" for any solver:
            for argmax the two are the same, for a path of 16 cells c = 1 per solution is c = 16
            entries.
        count_over: which (sample, example) pairs the mean count averages over: ``"batch"``, all
            of them (Eq. 9), or ``"active"`` (the default), those whose upstream gradient is not
            zero. An example whose loss is already satisfied (a Hamming loss on a correct path) gets
            no perturbation and changes nothing, whatever α is; counted as 0 it pulls α up without
            bound once most of the batch is right.
        sync: all-reduce the counts under ``torch.distributed``.
        **finite_difference: ``samples``, ``noise`` (Gumbel; None for ``"deterministic"``), ``noise_temperature``,
            ``target_noise_temperature``, ``generator``, ``check_finite``
            (:class:`~difftools.estimators.FiniteDifference`).

    The derivation of each rule, and why the fast rule converges, is on the concepts page
    (``docs/concepts.md``, "How α is adapted").
    """

    FAST_GAIN = FAST_GAIN  # κ of the fast rule, as it was named before the rules became objects

    alpha: Tensor
    nnz_ema: Tensor

    def __init__(
        self,
        solver: Any,
        *,
        controller: str | AlphaRule = "fast",
        central: bool | None = None,
        target_nnz: float | None = None,
        step: float | None = None,
        decay: float | None = None,
        initial_alpha: float | None = None,
        lam_scope: str | None = None,
        count: str | None = None,
        count_over: str | None = None,
        sync: bool = True,
        **finite_difference: Any,
    ):
        if isinstance(controller, AlphaRule):
            rule = controller
        elif isinstance(controller, str) and controller in AIMLE_RULES:
            rule = AIMLE_RULES[controller]
        else:
            names = ", ".join(map(repr, AIMLE_PRESETS))
            raise ValueError(f"AIMLE: controller must be one of {names} or an AlphaRule, got {controller!r}")
        if rule.preset not in AIMLE_PRESETS:
            raise ValueError(f"AIMLE: the rule's preset must be one of {', '.join(AIMLE_PRESETS)}, got {rule.preset!r}")
        given = dict(
            central=central,
            target_nnz=target_nnz,
            step=step,
            decay=decay,
            initial_alpha=initial_alpha,
            lam_scope=lam_scope,
            count=count,
            count_over=count_over,
        )
        preset = AIMLE_PRESETS[rule.preset]
        settings = {k: preset[k] if v is None else v for k, v in given.items()}
        if "noise" not in finite_difference and preset["noise"] is None:  # else FiniteDifference's Gumbel
            finite_difference["noise"] = None
        super().__init__(solver, central=settings["central"], **finite_difference)
        self.rule = rule
        self.controller = rule.name
        self.target_nnz = check_non_negative(settings["target_nnz"], "AIMLE", "target_nnz")
        self.step = check_positive(settings["step"], "AIMLE", "step")
        self.decay = check_real(settings["decay"], "AIMLE", "decay", lambda v: 0 < v <= 1, "in (0, 1]")
        self.initial_alpha = check_non_negative(settings["initial_alpha"], "AIMLE", "initial_alpha")
        if settings["lam_scope"] not in ("example", "batch"):
            raise ValueError(f"AIMLE: lam_scope must be 'example' or 'batch', got {settings['lam_scope']!r}")
        self.lam_scope = settings["lam_scope"]
        if settings["count"] not in ("entries", "solution"):
            raise ValueError(f"AIMLE: count must be 'entries' or 'solution', got {settings['count']!r}")
        self.count = settings["count"]
        if settings["count_over"] not in ("batch", "active"):
            raise ValueError(f"AIMLE: count_over must be 'batch' or 'active', got {settings['count_over']!r}")
        self.count_over = settings["count_over"]
        if not isinstance(sync, bool):
            raise TypeError(f"AIMLE: sync must be a bool, got {sync!r}")
        self.sync = sync
        self.register_buffer("alpha", torch.tensor(self.initial_alpha))
        # Algorithm 1 starts the moving average of the gradient count at 1.
        self.register_buffer("nnz_ema", torch.tensor(1.0))

    def _step(self, theta: Tensor, grad_f: Tensor) -> tuple[Tensor, Tensor | None]:
        if self.lam_scope == "batch":
            # One λ for the whole batch (the reference code, PyEPO): Eq. 8 with both norms taken over
            # the batch, θ counted once per sample, so that equal ∇f_s give α ‖θ‖ / ‖∇f‖.
            grad_norm = torch.linalg.vector_norm(grad_f)
            theta_norm = torch.linalg.vector_norm(theta) * math.sqrt(grad_f.shape[0])
            nonzero = grad_norm > 0
            return self.alpha.to(theta.dtype) * torch.where(
                nonzero, theta_norm / torch.where(nonzero, grad_norm, 1.0), 0.0
            ), None
        event_dim = self.solver.event_dim
        grad_norm = event_norm(grad_f, event_dim, keep_float64=True)  # [S, *batch, 1...]
        theta_norm = event_norm(theta, event_dim, keep_float64=True)  # [*batch, 1...]: broadcasts over S
        if grad_f.shape[0] == 1:
            # One sample: no mean over samples. Where ∇f = 0 the ratio is inf (NaN if θ = 0 too) and λ
            # with it: FiniteDifference takes no step for a λ without a finite reciprocal (gradient 0,
            # as the step of a zero ∇f must be), so no mask is needed here.
            return self.alpha.to(theta.dtype) * (theta_norm / grad_norm).to(theta.dtype), grad_norm
        # The float64 norms are returned: cast to θ's dtype, a huge finite ∇f's norm may overflow.
        theta_low, grad_low = theta_norm.to(theta.dtype), grad_norm.to(theta.dtype)
        nonzero = grad_low > 0
        ratio = torch.where(nonzero, theta_low / torch.where(nonzero, grad_low, 1.0), 0.0)
        count = nonzero.sum(0, keepdim=True).clamp_min(1)
        return self.alpha.to(theta.dtype) * ratio.sum(0, keepdim=True) / count, grad_norm

    def _observe(self, diff: Tensor, out: Tensor, grad_f: Tensor, grad_norm: Tensor | None) -> None:
        # Called from the backward, which already runs under torch.no_grad (core._PerturbAndMAPFunction).
        event_dim = self.solver.event_dim
        dims = tuple(range(diff.dim() - event_dim, diff.dim()))
        instances: Tensor | int
        if self.count_over == "active":  # (sample, example) pairs with ∇f ≠ 0, as a tensor: no host sync
            # Eq. 8's norm of ∇f (float64; |∇f| for scalar events) is 0 exactly where all its entries
            # are (no float32 square underflows in float64; NaN and inf stay non-zero): one count over
            # those few values.
            instances = _active_pairs(grad_f, dims) if grad_norm is None else torch.count_nonzero(grad_norm)
        else:
            instances = math.prod(diff.shape[: diff.dim() - event_dim])
        # Inactive pairs need no mask: their shift λ ∇f is 0, so both MAP points and the difference coincide.
        # With scalar events (no dims) a solution has one entry and its size counts as 1 (the clamp
        # below), so both counts are the changed entries; sum(()) would reduce the whole batch instead.
        if self.count == "entries" or not dims:
            nonzero = torch.count_nonzero(diff)
        else:  # per (sample, example): changed entries per entry of the forward solution
            nonzero = (_nonzero_entries(diff, dims) / _nonzero_entries(out, dims).clamp_min_(1)).sum()
        nonzero, instances = summed_over_ranks(nonzero, instances, enabled=self.sync)
        if isinstance(instances, Tensor) or instances > 0:
            self._update_controller(nonzero, instances)

    def _update_controller(self, nonzero: Tensor, instances: Tensor | int) -> None:
        """Eq. 9, then the rule's α update, in place: from host scalars on the CPU, with no host sync elsewhere.

        ``nonzero`` / ``instances``: non-zero entries and instances of this step (``instances`` a
        tensor after an all-reduce); a step without instances (an empty batch on every rank)
        leaves α and ḡ unchanged.
        """
        # In the state's dtype: a float64 instance count (after an all-reduce of fractional counts)
        # would otherwise promote the update and round differently from a single process.
        alpha_buffer, ema_buffer = self.alpha, self.nnz_ema  # one nn.Module attribute lookup each
        dtype = ema_buffer.dtype
        scalar = _HOST_SCALARS.get(dtype)
        if scalar is not None and self.rule.has_host_form and _host.reads_are_free(ema_buffer.device):
            self._update_on_host(nonzero, instances, scalar, alpha_buffer, ema_buffer)
            return
        count = instances
        if isinstance(instances, Tensor):
            count = instances.clamp_min(1)
            # An integer count divides exactly as its float32 cast would; a fractional float64 one is cast.
            count = count.to(dtype) if count.is_floating_point() else count
        mean_nnz = nonzero.to(dtype) / count
        ema = self.decay * ema_buffer + (1.0 - self.decay) * mean_nnz
        alpha = self.rule.next_alpha(alpha_buffer, ema, mean_nnz, target=self.target_nnz, step=self.step)
        if isinstance(instances, Tensor):
            # Counted over active pairs or after an all-reduce: keep the state where no pair was seen,
            # written straight into the buffers (no copy).
            seen = instances > 0
            torch.where(seen, ema, ema_buffer, out=ema_buffer)
            torch.where(seen, alpha, alpha_buffer, out=alpha_buffer)
        else:
            ema_buffer.copy_(ema)
            alpha_buffer.copy_(alpha)

    def _update_on_host(
        self, nonzero: Tensor, instances: Tensor | int, scalar: type, alpha_buffer: Tensor, ema_buffer: Tensor
    ) -> None:
        """:meth:`_update_controller` on host scalars (the CPU): the same operations, each rounded as the tensors' are.

        Reading the counts waits for nothing on the CPU, and four scalar reads and two fills replace about
        fifteen scalar tensor operations (about 40 µs of a small step's 150 µs fixed cost,
        ``benchmarks/estimator_overhead.py``). The rule's exp may differ in the last bit
        (:meth:`~difftools.estimators.AlphaRule.next_alpha_on_host`).
        """
        seen = instances.item() if isinstance(instances, Tensor) else instances
        if seen <= 0:  # no pair seen (all-reduced or active counts): the state stays
            return
        mean_nnz = scalar(nonzero.item()) / scalar(max(seen, 1))
        ema = scalar(self.decay) * scalar(ema_buffer.item()) + scalar(1.0 - self.decay) * mean_nnz
        alpha = self.rule.next_alpha_on_host(
            scalar(alpha_buffer.item()), ema, mean_nnz, target=self.target_nnz, step=self.step
        )
        ema_buffer.fill_(float(ema))
        alpha_buffer.fill_(float(alpha))

    def _extra_repr_parts(self) -> list[str]:
        # A rule object other than the named controller's own (another ceiling, gain) is shown whole.
        named = repr(self.rule) == repr(AIMLE_RULES.get(self.controller))
        parts = [
            f"controller={self.controller!r}" if named else f"controller={self.rule!r}",
            f"target_nnz={self.target_nnz:g}",
            f"step={self.step:g}",
            f"decay={self.decay:g}",
            f"initial_alpha={self.initial_alpha:g}",
        ]
        if self.lam_scope != "example":
            parts.append(f"lam_scope={self.lam_scope!r}")
        parts += [f"count={self.count!r}", f"count_over={self.count_over!r}"]  # always: the presets differ
        return parts + super()._extra_repr_parts()
