"""Command line: ``python -m examples.synthetic fig1|fig3|fig4|controller [options]`` -> CSV + PNG."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from examples.common import HelpFormatter, run_cli, write_csv

# torch, matplotlib and the experiments are imported by the commands that use them, so that `--help`
# answers at once.

SAMPLES = (1, 10, 100, 1_000, 10_000, 100_000)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.synthetic", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("command", choices=["fig1", "fig3", "fig4", "controller"], help="the figure to compute")
    p.add_argument("--n", type=int, nargs="+", default=None,
                   help="numbers of categories (default: 10 20 30 50 for fig3, 50 otherwise)")
    p.add_argument("--seeds", type=int, default=32, help="problems (θ, b) per cell")
    p.add_argument("--max-samples", type=int, default=100_000, help="cap on every sample count S")
    p.add_argument("--samples", type=int, nargs="+", default=None,
                   help="S for fig1/fig4 (default 1000) or the controller (default 100 1000)")
    p.add_argument("--reference-samples", type=int, default=100_000, help="S of STE and SFE in fig1")
    p.add_argument("--lambdas", type=float, nargs="+", default=None,
                   help="IMLE λ grid (default: fig1 1e-3..10 log-spaced; fig3 0.1 1 10; fig4 0.05..5)")
    p.add_argument("--warmup", type=int, default=100, help="AIMLE backward passes before measuring")
    p.add_argument("--warmup-samples", type=int, default=1000,
                   help="S used for AIMLE's warm-up when the measured S is larger (fig3)")
    p.add_argument("--controller", choices=["paper", "fast"], default="paper",
                   help="AIMLE's λ controller in fig3 (fig4 shows both)")
    p.add_argument("--steps", type=int, nargs="+", default=[0, 10, 20, 50, 100, 200, 500, 1000],
                   help="warm-up checkpoints of the controller comparison")
    p.add_argument("--reps", type=int, default=4, help="gradients measured per checkpoint (controller)")
    p.add_argument("--quick", action="store_true",
                   help="a seconds-long smoke run: 4 seeds, S <= 1000, short grids")
    p.add_argument("--out", type=Path, default=Path("results/synthetic"), help="output folder")
    return p


def main(argv: Sequence[str] | None = None, threads: int | None = None) -> dict[str, Path]:
    """Run one command; returns the paths written (CSV, PNG). ``threads`` sets torch's CPU threads."""
    parser = _parser()
    args = parser.parse_args(argv)
    return run_cli(lambda: _run(args), parser.prog, threads=threads)


def _run(args: argparse.Namespace) -> dict[str, Path]:
    from examples.synthetic import experiments, plots
    from examples.synthetic.plots import series_label

    if args.quick:
        args.seeds = min(args.seeds, 4)
        args.max_samples = min(args.max_samples, 1000)
        args.steps = [s for s in args.steps if s <= 50] or [0]
        args.warmup = min(args.warmup, 20)
        args.reps = 1
    for name in ("seeds", "max_samples", "reference_samples", "warmup_samples", "reps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise ValueError(f"--warmup must be >= 0, got {args.warmup}")
    cap = args.max_samples
    out: Path = args.out
    written: dict[str, Path] = {}

    if args.command == "fig3":
        ns = args.n or ([10, 50] if args.quick else [10, 20, 30, 50])
        grid = [s for s in SAMPLES if s <= cap]
        lambdas = args.lambdas or [0.1, 1.0, 10.0]
        rows = experiments.fig3_rows(ns, grid, args.seeds, lambdas=lambdas, warmup=args.warmup,
                                     warmup_samples=args.warmup_samples, controller=args.controller)
        written["csv"] = write_csv(rows, out / "fig3.csv")
        written["png"] = plots.plot_fig3(rows, out / "fig3.png")
        for n in ns:
            print(f"\nFig. 3, n = {n}: cosine similarity (mean ± s.e. over {args.seeds} seeds)")
            sub = [dict(r, method=series_label(r)) for r in rows if r["n"] == n]
            print(plots.table(sub, "method", "samples", "cosine"))
    elif args.command in ("fig1", "fig4"):
        n = (args.n or [50])[0]
        samples = min((args.samples or [1000])[0], cap)
        if args.command == "fig1":
            lambdas = args.lambdas or [10.0 ** (k / 4) for k in range(-12, 5)]
            ref_samples = min(args.reference_samples, cap)
            rows = experiments.lambda_sweep_rows(n, samples, args.seeds, lambdas, "fig1")
            rows += experiments.reference_rows(n, ref_samples, args.seeds, "fig1")
            written["png"] = plots.plot_fig1(rows, out / "fig1.png", samples, ref_samples)
        else:
            # Linear as in the paper's Fig. 4, finer below 1 where IMLE peaks on this task.
            lambdas = args.lambdas or [0.05 * k for k in range(1, 20)] + [0.25 * k for k in range(4, 21)]
            rows = experiments.lambda_sweep_rows(n, samples, args.seeds, lambdas, "fig4")
            rows += experiments.reference_rows(n, samples, args.seeds, "fig4", controllers=("paper", "fast"),
                                               warmup=args.warmup, warmup_samples=args.warmup_samples)
            written["png"] = plots.plot_fig4(rows, out / "fig4.png", samples)
        written["csv"] = write_csv(rows, out / f"{args.command}.csv")
        sweep = [r for r in rows if r["method"].startswith("IMLE")]
        print(f"\n{args.command}: IMLE with S = {samples}, n = {n}: cosine / sparsity % (mean ± s.e.)")
        print(plots.table(sweep, "lam", "method", "cosine"))
        print(plots.table(sweep, "lam", "method", "sparsity", fmt="{:.1f}"))
        others = [r for r in rows if not r["method"].startswith("IMLE")]
        print(plots.table(others, "method", "samples", "cosine"))
    else:
        n = (args.n or [50])[0]
        grid = [min(s, cap) for s in (args.samples or ([100] if args.quick else [100, 1000]))]
        rows, trace = experiments.controller_rows(n, grid, args.seeds, args.steps, args.reps)
        written["csv"] = write_csv(rows, out / "controller.csv")
        written["trace"] = write_csv(trace, out / "controller_trace.csv")
        written["png"] = plots.plot_controller(rows, trace, out / "controller.png")
        for samples in grid:
            sub = [r for r in rows if r["samples"] == samples]
            print(f"\nAIMLE (central), S = {samples}, n = {n}: cosine after each number of warm-up steps")
            print(plots.table(sub, "controller", "step", "cosine"))
            first = [r for r in sub if r["step"] == sub[0]["step"] and r["rep"] == 0]
            print(plots.table([r for r in first if r["steps_to_target"] != ""], "controller", "samples",
                              "steps_to_target", fmt="{:.1f}"))
    for kind, path in written.items():
        print(f"wrote {kind}: {path}")
    return written


if __name__ == "__main__":
    main(sys.argv[1:], threads=1)
