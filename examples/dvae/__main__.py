"""Command line: ``python -m examples.dvae run [options]`` -> per-epoch CSV, Fig. 5-8 PNGs, a summary table."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from examples import common
from examples.common import Row, band_plot, read_csv, save_figure, subplots, summarise, write_csv

# torch, the data and the model are imported by the commands that use them, so that `--help` answers at once.


def _aimle_s1(name: str) -> bool:
    return name.startswith("AIMLE") and "S=1)" in name or name == "AIMLE (central, S=1, fast)"


# Each paper figure: (title, which rows it shows); Gumbel-softmax exists for K = 1 only.
FIGURES = {
    "fig5": ("AIMLE vs IMLE", lambda r: _aimle_s1(r["method"]) or r["method"].startswith("IMLE")),
    "fig6": ("AIMLE vs Gumbel-softmax",
             lambda r: r["k"] == 1 and (_aimle_s1(r["method"]) or r["method"] == "Gumbel-softmax")),
    "fig7": ("AIMLE vs STE", lambda r: _aimle_s1(r["method"]) or r["method"] == "STE"),
    "fig8": ("AIMLE with S samples",
             lambda r: r["method"].startswith("AIMLE") and "fast" not in r["method"] and "preset" not in r["method"]),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.dvae", description=__doc__,
                                formatter_class=common.HelpFormatter)
    p.add_argument("command", choices=["run", "plot"], help="run: train and plot; plot: re-plot from --csv files")
    p.add_argument("--csv", type=Path, nargs="+", default=[], help="(plot) dvae.csv files of earlier runs")
    p.add_argument("--dataset", choices=["digits", "mnist"], default="digits",
                   help="digits: scikit-learn's 8x8 digits, resized; mnist: IDX files in --data-dir")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder with MNIST IDX files (--dataset mnist) (default: none)")
    p.add_argument("--image-size", type=int, default=28, help="side the 8x8 digits are resized to (8: unchanged)")
    p.add_argument("--k", type=int, nargs="+", default=[1, 10], help="subset sizes K")
    p.add_argument("--epochs", type=int, default=100, help="epochs per run")
    p.add_argument("--seeds", type=int, default=1, help="seeds per (K, method)")
    p.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed, first-seed + 1, ...")
    p.add_argument("--samples", type=int, nargs="+", default=[1, 5, 10], help="AIMLE sample counts S")
    p.add_argument("--lambdas", type=float, nargs="+", default=[1.0, 10.0, 100.0], help="IMLE λ grid")
    p.add_argument("--k-noise", choices=["sog", "gumbel"], default="sog",
                   help="perturbation for K > 1 (the paper: Sum-of-Gamma; Gumbel is ~40x cheaper to sample)")
    p.add_argument("--only", nargs="+", default=None,
                   help="run only methods whose name contains one of these (default: all)")
    p.add_argument("--limit", type=int, default=None, help="use at most this many training examples (default: all)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    p.add_argument("--out", type=Path, default=Path("results/dvae"), help="output folder")
    return p


def main(argv: Sequence[str] | None = None, threads: int | None = None) -> dict[str, Path]:
    """Train every (K, method, seed), write ``dvae.csv`` and the figures; returns the paths written.

    ``threads`` sets torch's CPU threads (the command line uses one).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    return common.run_cli(lambda: _run(args), parser.prog, threads=threads)


def _run(args: argparse.Namespace) -> dict[str, Path]:
    if args.quick:
        args.k, args.epochs, args.seeds, args.limit = [1], 1, 1, 200
        args.samples, args.lambdas = [1], [10.0]
        args.only = args.only or ["S=1)", "fast", "λ=10", "STE", "Gumbel"]
    for name in ("epochs", "seeds"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.command == "plot":
        if not args.csv:
            raise ValueError("plot needs --csv with the dvae.csv files of earlier runs")
        return report([r for path in args.csv for r in read_csv(path)], args.out, write=False)
    from examples.dvae.data import load_dataset
    from examples.dvae.model import methods, train

    train_x, val_x, test_x = load_dataset(args.dataset, args.data_dir, image_size=args.image_size)
    if args.limit is not None:
        train_x = train_x[: args.limit]
    data = (train_x, val_x, test_x)
    plan = [(k, m) for k in args.k for m in methods(k, tuple(args.samples), tuple(args.lambdas))
            if args.only is None or any(s in m.name for s in args.only)]
    rows: list[Row] = []
    with tqdm(total=len(plan) * args.seeds * args.epochs, desc="dvae", unit="epoch") as bar:
        for k, method in plan:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                rows += train(method, k, data, epochs=args.epochs, seed=seed, k_noise=args.k_noise, progress=bar)
    return report(rows, args.out)


def report(rows: Sequence[Row], out: Path, write: bool = True) -> dict[str, Path]:
    """Write the CSV (unless re-plotting), one PNG per paper figure, and print the summary table."""
    written = {"csv": write_csv(rows, out / "dvae.csv")} if write else {}
    for fig, (title, keep) in FIGURES.items():
        sub = [r for r in rows if keep(r)]
        if sub:
            written[fig] = plot(sub, out / f"{fig}.png", title)
    print(summary(rows))
    for kind, path in written.items():
        print(f"wrote {kind}: {path}")
    return written


def plot(rows: Sequence[Row], path: Path, title: str) -> Path:
    """Test loss per epoch, one panel per K (mean ± s.e. over seeds)."""
    ks = sorted({r["k"] for r in rows}, reverse=True)
    fig, axes = subplots(len(ks), 1, figsize=(7.5, 4 * len(ks)), squeeze=False)
    for ax, k in zip(axes[:, 0], ks):
        sub = [r for r in rows if r["k"] == k]
        band_plot(ax, sub, x="epoch", y="test_loss", series="method",
                  style=lambda name: {"marker": None, "linewidth": 2.2 if name.startswith("AIMLE") else 1.2})
        ax.set_title(f"{title}, K = {k}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("test loss (BCE + KL, nats)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def summary(rows: Sequence[Row]) -> str:
    """Markdown table: final-epoch test loss per (K, method), and the IMLE λ chosen on validation."""
    last = max(r["epoch"] for r in rows)
    final = [r for r in rows if r["epoch"] == last]
    test = summarise(final, ("k", "method"), "test_loss")
    val = summarise(final, ("k", "method"), "val_loss")
    lines = [f"| K | method | test loss at epoch {last} | validation loss |", "|---|---|---|---|"]
    for (k, method), (mean, se, _) in sorted(test.items(), key=lambda kv: (-kv[0][0], kv[1][0])):
        lines.append(f"| {k} | {method} | {mean:.2f} ± {se:.2f} | {val[(k, method)][0]:.2f} |")
    for k in sorted({r["k"] for r in final}, reverse=True):
        for direction in ("forward", "central"):
            imle = {m: v for (kk, m), v in val.items() if kk == k and m.startswith(f"IMLE ({direction}")}
            if imle:
                best = min(imle, key=lambda m: imle[m][0])
                lines.append(f"\nK = {k}: IMLE ({direction}) chosen on validation: {best}, "
                             f"test loss {test[(k, best)][0]:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main(sys.argv[1:], threads=1)
