"""Runners for the synthetic figures: cosine similarity (and sparsity) of each estimator's gradient.

Every runner returns plain rows (dicts) that ``__main__`` writes to CSV and plots. Estimators
without state (IMLE, STE, SFE) are evaluated on all seeds at once (θ ``[seeds, n]``, chunked so
that a call holds at most ``CHUNK_ELEMENTS`` sample entries); AIMLE keeps one controller per seed,
warmed up on that seed's problem as in the paper's code, so it runs seed by seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

import torch
from difftools.solvers.topk import argmax
from torch import Tensor
from tqdm import tqdm

from difftools import AIMLE, Gumbel
from examples.common import Method, Row
from examples.synthetic.task import cosine, estimate_gradient, exact_gradient, make_problem, sfe_gradient, sparsity

CHUNK_ELEMENTS = 1 << 22

__all__ = [
    "aimle_gradient",
    "controller_rows",
    "fig3_rows",
    "lambda_sweep_rows",
    "reference_rows",
    "steps_to_target",
    "warm_aimle",
]


def _generator(*parts: object) -> torch.Generator:
    """A generator seeded by a stable hash of ``parts`` (independent streams per experiment cell)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:7], "little"))


def _problems(n: int, seeds: int) -> tuple[Tensor, Tensor, Tensor]:
    pairs = [make_problem(seed, n) for seed in range(seeds)]
    theta = torch.stack([p[0] for p in pairs])
    b = torch.stack([p[1] for p in pairs])
    return theta, b, exact_gradient(theta, b)


def _batched(fn: Callable[[Tensor, Tensor], Tensor], theta: Tensor, b: Tensor, samples: int) -> Tensor:
    """Apply ``fn`` to chunks of the seed dim so that ``samples × chunk × n`` stays bounded."""
    chunk = max(1, CHUNK_ELEMENTS // (samples * theta.shape[-1]))
    return torch.cat([fn(theta[i : i + chunk], b[i : i + chunk]) for i in range(0, theta.shape[0], chunk)])


def _estimator(method: Method, generator: torch.Generator, **options):
    """``method`` over ``argmax``, without the finite-θ check (the problems are finite by construction)."""
    return method.estimator(argmax, generator=generator, check_finite=False, **options)


def _stateless(method: str, samples: int, generator: torch.Generator, lam: float | None = None):
    """The gradient function of a stateless estimator: ``(θ, b) -> gradient`` for a batch of seeds."""
    if method == "SFE":
        return lambda theta, b: sfe_gradient(theta, b, samples, generator)
    if method == "STE":
        est = _estimator(Method(method, "ste", samples=samples), generator, noise=Gumbel())
    elif method in ("IMLE (forward)", "IMLE (central)"):
        est = _estimator(Method(method, "imle", samples=samples, central=method.endswith("(central)"), lam=lam),
                         generator)
    else:
        raise ValueError(f"unknown stateless method {method!r}")
    return lambda theta, b: estimate_gradient(est, theta, b)


def _aimle(samples: int, central: bool, controller: str, generator: torch.Generator) -> AIMLE:
    method = Method("AIMLE", "aimle", samples=samples, central=central, controller=controller)
    return _estimator(method, generator)


def warm_aimle(
    theta: Tensor, b: Tensor, *, central: bool, samples: int, steps: int, controller: str, generator: torch.Generator
) -> AIMLE:
    """An AIMLE layer after ``steps`` backward passes on one problem (θ, b ``[n]``): its α is adapted."""
    est = _aimle(samples, central, controller, generator)
    for _ in range(steps):
        estimate_gradient(est, theta, b)
    return est


def aimle_gradient(warmed: AIMLE, theta: Tensor, b: Tensor, samples: int, generator: torch.Generator) -> Tensor:
    """One gradient with ``samples`` samples from a copy of a warmed-up layer (the copy's α is used)."""
    est = _aimle(samples, warmed.central, warmed.controller, generator)
    est.load_state_dict(warmed.state_dict())
    return estimate_gradient(est, theta, b)


def _aimle_rows(
    n: int, seeds: int, samples_grid: Sequence[int], *, warmup: int, warmup_samples: int, controller: str,
    progress: tqdm | None, extra: dict,
) -> list[Row]:
    """AIMLE (forward, central) per seed: warm up with min(S, warmup_samples) samples, then measure with S."""
    theta, b, exact = _problems(n, seeds)
    rows = []
    for seed in range(seeds):
        for central in (False, True):
            method = f"AIMLE ({'central' if central else 'forward'}{', fast' if controller == 'fast' else ''})"
            warmed: dict[int, AIMLE] = {}
            for samples in samples_grid:
                ws = min(samples, warmup_samples)
                if ws not in warmed:
                    warmed[ws] = warm_aimle(theta[seed], b[seed], central=central, samples=ws, steps=warmup,
                                            controller=controller, generator=_generator("warm", n, seed, central, ws))
                grad = aimle_gradient(warmed[ws], theta[seed], b[seed], samples, _generator("aimle", n, seed, central,
                                                                                             samples))
                rows.append(dict(extra, n=n, method=method, samples=samples, seed=seed,
                                 cosine=float(cosine(grad, exact[seed])), sparsity=float(sparsity(grad)),
                                 alpha=float(warmed[ws].alpha)))
            if progress is not None:
                progress.update(1)
    return rows


def _stateless_rows(n: int, seeds: int, method: str, samples: int, lam: float | None, extra: dict) -> list[Row]:
    theta, b, exact = _problems(n, seeds)
    fn = _stateless(method, samples, _generator(method, n, samples, lam), lam)
    grad = _batched(fn, theta, b, samples)
    cos, sp = cosine(grad, exact), sparsity(grad)
    return [
        dict(extra, n=n, method=method, samples=samples, seed=seed, lam="" if lam is None else lam,
             cosine=float(cos[seed]), sparsity=float(sp[seed]))
        for seed in range(seeds)
    ]


def fig3_rows(
    ns: Iterable[int], samples_grid: Sequence[int], seeds: int, *, lambdas: Sequence[float], warmup: int,
    warmup_samples: int, controller: str = "paper",
) -> list[Row]:
    """Fig. 3: cosine similarity against the number of samples S for every estimator, per n."""
    ns = list(ns)
    rows: list[Row] = []
    cells = [(n, m, s, lam) for n in ns for s in samples_grid
             for m, lam in [("STE", None), ("SFE", None)]
             + [(f"IMLE ({v})", lam) for lam in lambdas for v in ("forward", "central")]]
    with tqdm(total=len(cells) + 2 * seeds * len(ns), desc="fig3", unit="cell") as bar:
        for n, method, samples, lam in cells:
            rows += _stateless_rows(n, seeds, method, samples, lam, {"figure": "fig3"})
            bar.update(1)
        for n in ns:
            rows += _aimle_rows(n, seeds, samples_grid, warmup=warmup, warmup_samples=warmup_samples,
                                controller=controller, progress=bar, extra={"figure": "fig3"})
    return rows


def lambda_sweep_rows(n: int, samples: int, seeds: int, lambdas: Sequence[float], figure: str) -> list[Row]:
    """IMLE (forward, central) with a fixed λ for each λ of the grid: cosine and sparsity (Fig. 1, 4)."""
    rows: list[Row] = []
    for lam in tqdm(lambdas, desc=f"{figure} λ grid", unit="λ"):
        for method in ("IMLE (forward)", "IMLE (central)"):
            rows += _stateless_rows(n, seeds, method, samples, float(lam), {"figure": figure})
    return rows


def reference_rows(
    n: int, samples: int, seeds: int, figure: str, *, controllers: Sequence[str] = (), warmup: int = 0,
    warmup_samples: int = 1000,
) -> list[Row]:
    """STE, SFE and warmed-up AIMLE with each of ``controllers`` at one S: the lines of Fig. 1 and 4."""
    rows: list[Row] = []
    for method in ("STE", "SFE"):
        rows += _stateless_rows(n, seeds, method, samples, None, {"figure": figure})
    for controller in controllers:
        rows += _aimle_rows(n, seeds, [samples], warmup=warmup, warmup_samples=warmup_samples,
                            controller=controller, progress=None, extra={"figure": figure})
    return rows


def steps_to_target(counts: Sequence[float], target: float, window: int = 10, tolerance: float = 0.1) -> int | None:
    """First step t (1-based) at which the mean non-zero count over steps t−window+1..t is within
    ``tolerance``·target of ``target``; None if it never is."""
    for t in range(window, len(counts) + 1):
        if abs(sum(counts[t - window : t]) / window - target) <= tolerance * target:
            return t
    return None


def controller_rows(
    n: int, samples_grid: Sequence[int], seeds: int, checkpoints: Sequence[int], reps: int, central: bool = True
) -> tuple[list[Row], list[Row]]:
    """Paper vs fast controller on one problem per seed, warmed with S samples.

    Returns (measurements, trace). Measurements: cosine of ``reps`` fresh gradients and α at each
    warm-up checkpoint, taken on a copy of the layer so they do not disturb the trajectory, plus
    the seed's steps to reach the target count (:func:`steps_to_target`). Trace: α and the
    batch's mean non-zero count at every step, averaged over seeds.
    """
    theta, b, exact = _problems(n, seeds)
    checkpoints = sorted(set(checkpoints))
    last = checkpoints[-1]
    rows: list[Row] = []
    trace: list[Row] = []
    with tqdm(total=seeds * len(samples_grid) * 2 * last, desc="controller", unit="step") as bar:
        for samples in samples_grid:
            for controller in ("paper", "fast"):
                alpha_sum = [0.0] * (last + 1)
                count_sum = [0.0] * (last + 1)
                for seed in range(seeds):
                    est = warm_aimle(theta[seed], b[seed], central=central, samples=samples, steps=0,
                                     controller=controller, generator=_generator("ctrl", n, seed, samples, controller))
                    counts: list[float] = []
                    measured: list[Row] = []
                    for step in range(last + 1):
                        if step > 0:
                            ema_before = float(est.nnz_ema)
                            estimate_gradient(est, theta[seed], b[seed])
                            # Eq. 9 inverted: the batch's mean count from two consecutive EMA values.
                            counts.append((float(est.nnz_ema) - est.decay * ema_before) / (1.0 - est.decay))
                            count_sum[step] += counts[-1]
                            bar.update(1)
                        alpha_sum[step] += float(est.alpha)
                        if step not in checkpoints:
                            continue
                        for rep in range(reps):
                            g = _generator("ctrl-measure", n, seed, samples, controller, step, rep)
                            grad = aimle_gradient(est, theta[seed], b[seed], samples, g)
                            measured.append(dict(figure="controller", n=n, controller=controller, samples=samples,
                                                 step=step, seed=seed, rep=rep,
                                                 cosine=float(cosine(grad, exact[seed])), alpha=float(est.alpha)))
                    reached = steps_to_target(counts, est.target_nnz)
                    rows += [dict(r, steps_to_target="" if reached is None else reached) for r in measured]
                trace += [dict(controller=controller, samples=samples, step=step, alpha=alpha_sum[step] / seeds,
                               nnz=count_sum[step] / seeds if step else "") for step in range(last + 1)]
    return rows, trace
