"""Perturbation distributions for perturb-and-MAP: Gumbel, Sum-of-Gamma and Normal noise.

Each noise object samples on a requested device and dtype from an optional ``torch.Generator``
so that runs are reproducible, and exposes ``log_prob`` where the density has a closed form
(the score-function estimator needs it).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from difftools import _host
from difftools._validation import check_real

__all__ = ["Noise", "Gumbel", "Normal", "SumOfGamma"]

_Shape = torch.Size | tuple[int, ...] | list[int]


def _sampling_dtype(dtype: torch.dtype | None) -> torch.dtype:
    # Half precision logs/exps lose the tails of the noise; sample in float32 and cast after.
    if dtype is None:
        return torch.get_default_dtype()
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


class Noise:
    """Base class of perturbation distributions: ``sample`` and, where it exists, ``log_prob``."""

    def sample(
        self,
        shape: _Shape,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Draw independent samples of the given shape."""
        out = self._sample(torch.Size(shape), generator, device, _sampling_dtype(dtype))
        return out if dtype is None else out.to(dtype)

    def _sample(self, shape, generator, device, dtype) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def log_prob(self, value: Tensor) -> Tensor:
        """Element-wise log density of ``value``."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form log density")

    def score(self, value: Tensor) -> Tensor:
        """Element-wise derivative of the log density, d/dx log p(x) (Berthet et al. 2020)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form score")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))


class Gumbel(Noise):
    """Standard Gumbel(0, 1) noise: Gumbel-perturbed argmax samples exactly from softmax(θ)."""

    def _sample(self, shape, generator, device, dtype):
        # -log(-log U) with U ~ U(0, 1), in place: about 4x faster on CPU than -log(Exp(1)) drawn
        # with exponential_. U = 0 (probability 2^-24 per draw in float32) would give -inf: clamp.
        u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
        return u.clamp_min_(torch.finfo(dtype).tiny).log_().neg_().log_().neg_()

    def log_prob(self, value: Tensor) -> Tensor:
        return -(value + torch.exp(-value))

    def score(self, value: Tensor) -> Tensor:
        return torch.exp(-value) - 1.0


class Normal(Noise):
    """Standard normal N(0, 1) noise (the perturbed optimizers of Berthet et al. 2020)."""

    def _sample(self, shape, generator, device, dtype):
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        return -0.5 * value * value - 0.5 * math.log(2 * math.pi)

    def score(self, value: Tensor) -> Tensor:
        return -value


def _standard_gamma(concentration: float, shape, generator, device, dtype, *, exact: bool | None = None) -> Tensor:
    """Gamma(concentration, 1) samples, reproducible from ``generator`` (torch's own sampler takes none).

    Marsaglia & Tsang (2000) on concentration + 1, boosted back by U^(1/concentration). Two ways
    to run its rejection step, the same proposals and acceptance test:

    * ``exact=True`` (the default where host reads are free, the CPU: ``_host.reads_are_free``):
      one proposal per entry, then new proposals for the rejected entries only, until every entry
      is accepted: exact, about 1.05 proposals per entry.
      Picking the rejected entries reads their number on the host, which costs nothing on the CPU.
    * ``exact=False`` (the default on other devices): a fixed 8 proposals per entry and the first
      accepted one, so there is no data-dependent loop and no host synchronisation. An entry whose
      8 proposals were all rejected (probability below 1e-10 for concentration + 1 ≥ 1) takes the
      proposal's centre d: a bias far below any Monte-Carlo resolution.
    """
    a = concentration + 1.0
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    tiny = torch.finfo(dtype).tiny

    def propose(size):
        # Accept v = (1 + c x)³ > 0 if log u < x²/2 + d (1 − v + log v); in place: this is the hot loop.
        x = torch.randn(size, generator=generator, device=device, dtype=dtype)
        u = torch.rand(size, generator=generator, device=device, dtype=dtype)
        t = x.mul(c).add_(1.0)
        v = t.mul(t).mul_(t)
        bound = v.clamp_min(tiny).log_().sub_(v).add_(1.0).mul_(d).addcmul_(x, x, value=0.5)
        accept = torch.lt(u.log_(), bound).logical_and_(v > 0)
        return v.mul_(d), accept

    if exact is None:
        exact = _host.reads_are_free(device)
    if exact:
        sample, accept = propose(torch.Size(shape))
        flat = sample.view(-1)
        todo = torch.nonzero(~accept.view(-1)).squeeze(1)
        while todo.numel():
            value, accept = propose(todo.shape)
            flat[todo[accept]] = value[accept]
            todo = todo[~accept]
    else:
        proposals = 8
        value, accept = propose((proposals, *shape))
        first = torch.argmax(accept.to(torch.uint8), dim=0, keepdim=True)
        sample = torch.where(accept.any(dim=0), torch.gather(value, 0, first).squeeze(0), d)
    boost = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    return sample.mul_(boost.clamp_min_(tiny).pow_(1.0 / concentration))


class SumOfGamma(Noise):
    """Sum-of-Gamma noise SoG(k, s) of Niepert et al. (2021), for k-subset distributions.

    ε = (1/k) · (Σ_{i=1}^{s} G_i − log s) with G_i ~ Gamma(1/k, rate i/k); summed over k
    independent copies it gives Gumbel noise, so top-k of θ + ε samples a k-subset as exactly
    as perturb-and-MAP allows.
    """

    def __init__(self, k: float, terms: int = 10):
        self.k = check_real(k, "SumOfGamma", "k", lambda v: v > 0, "> 0")
        if (
            isinstance(terms, bool)
            or not isinstance(terms, numbers.Real)
            or not math.isfinite(terms)
            or int(terms) != terms
            or terms < 1
        ):
            raise ValueError(f"SumOfGamma: terms must be a positive integer, got {terms!r}")
        self.terms = int(terms)

    def _sample(self, shape, generator, device, dtype):
        # All s terms in one draw: Gamma(1/k, rate i/k) = StandardGamma(1/k) * k / i, so one
        # [s, *shape] standard-gamma sample, weighted by k/i and summed over the first dim in one
        # matrix-vector product. On the CPU difftools' exact sampler is about twice as fast as torch's
        # (benchmarks/noise_sampling.py) and takes a generator; elsewhere torch's is used unless a
        # generator is given (it takes none), and the sync-free vectorised sampler then.
        terms = (self.terms, *shape)
        if generator is None and not _host.reads_are_free(device):
            gamma = torch._standard_gamma(torch.full(terms, 1.0 / self.k, device=device, dtype=dtype))
        else:
            gamma = _standard_gamma(1.0 / self.k, terms, generator, device, dtype)
        weights = self.k / torch.arange(1, self.terms + 1, device=device, dtype=dtype)
        total = (weights @ gamma.view(self.terms, -1)).view(shape)
        return (total - math.log(self.terms)) / self.k

    def __repr__(self) -> str:
        return f"SumOfGamma(k={self.k:g}, terms={self.terms})"
