"""Time to draw the perturbation noises, as a ratio to Gumbel's, in one process.

What choosing a noise family costs per perturb-and-MAP call: Gumbel (the defaults), Normal, and
Sum-of-Gamma SoG(k) as difftools draws it (with and without a seeded ``torch.Generator``) and, as
the baseline for that sampler, the same SoG(k) drawn with torch's own gamma sampler::

    python -m benchmarks.noise_sampling            # CPU
    python -m benchmarks.noise_sampling --device cuda
    python -m benchmarks.noise_sampling --quick    # fewer rounds

Times are the median of interleaved rounds (every noise once per round, so all see the same load).
"""

from __future__ import annotations

import argparse
import math

from examples.common import HelpFormatter


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.noise_sampling", description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--k", type=float, default=5.0, help="SoG's k (default: PyEPO's 5)")
    return parser


if __name__ == "__main__":  # --help and argument errors are answered before torch is imported
    _parser().parse_args()


import torch

import difftools as dt
from benchmarks.timing import interleaved_medians

SHAPES = [(64, 100), (70, 144), (256, 1000)]  # the overhead benchmark's small case, a Warcraft batch, top-k


def _sog_with_torch_gamma(k: float, shape: tuple[int, ...], device: str, terms: int = 10) -> torch.Tensor:
    """SoG(k) drawn with torch's own gamma sampler (``torch._standard_gamma``): the baseline for ours."""
    gamma = torch._standard_gamma(torch.full((terms, *shape), 1.0 / k, device=device))
    weights = k / torch.arange(1, terms + 1, device=device, dtype=gamma.dtype)
    return ((weights @ gamma.view(terms, -1)).view(shape) - math.log(terms)) / k


def measure(
    shape: tuple[int, ...], device: str, rounds: int, k: float = 5.0, budget: int = 200_000
) -> dict[str, float]:
    """Median milliseconds per draw of each noise of ``shape`` (small shapes repeated to ``budget`` entries)."""
    generator = torch.Generator(device=device).manual_seed(0)
    draws = {
        "gumbel": lambda: dt.Gumbel().sample(shape, device=device),
        "normal": lambda: dt.Normal().sample(shape, device=device),
        f"sog({k:g})": lambda: dt.SumOfGamma(k).sample(shape, device=device),
        f"sog({k:g}), generator": lambda: dt.SumOfGamma(k).sample(shape, generator=generator, device=device),
        f"sog({k:g}), torch's gamma": lambda: _sog_with_torch_gamma(k, shape, device),
    }
    inner = max(1, budget // (shape[0] * shape[1]))
    return {name: 1e3 * t for name, t in interleaved_medians(draws, rounds, inner, device).items()}


def main(argv: list[str] | None = None) -> list[dict]:
    args = _parser().parse_args(argv)
    rounds = 3 if args.quick else 7
    print(
        f"noise sampling, device={args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"median of {rounds} interleaved rounds; ms per draw (× Gumbel's)"
    )
    rows = []
    for shape in SHAPES:
        ms = measure(shape, args.device, rounds, args.k, budget=20_000 if args.quick else 200_000)
        base = ms["gumbel"]
        cells = "  ".join(f"{name} {t:9.3f} ({t / base:6.1f}×)" for name, t in ms.items())
        print(f"{'×'.join(map(str, shape)):>9}  {cells}", flush=True)
        rows.append({"shape": list(shape), "ms": ms})
    return rows


if __name__ == "__main__":
    main()
