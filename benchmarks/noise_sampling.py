"""Time to draw the perturbation noises, as a ratio to Gumbel's, in one process.

What choosing a noise family costs per perturb-and-MAP call: Gumbel (the defaults), Normal, and
Sum-of-Gamma SoG(k) with torch's own gamma sampler and with a seeded ``torch.Generator`` (the
vectorised rejection sampler that makes seeded runs reproducible)::

    python -m benchmarks.noise_sampling            # CPU
    python -m benchmarks.noise_sampling --device cuda
    python -m benchmarks.noise_sampling --quick    # fewer rounds

Times are the median of interleaved rounds (every noise once per round, so all see the same load).
"""

from __future__ import annotations

import argparse

import torch

import difftools as dt
from benchmarks.timing import interleaved_medians

SHAPES = [(64, 100), (70, 144), (256, 1000)]  # the overhead benchmark's small case, a Warcraft batch, top-k


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
    }
    inner = max(1, budget // (shape[0] * shape[1]))
    return {name: 1e3 * t for name, t in interleaved_medians(draws, rounds, inner, device).items()}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--k", type=float, default=5.0, help="SoG's k (default: PyEPO's 5)")
    args = parser.parse_args(argv)
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
