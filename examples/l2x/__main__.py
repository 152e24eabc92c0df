"""Command line: ``python -m examples.l2x run [options]`` -> per-run CSV, a Markdown table and a bar plot."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from examples.common import HelpFormatter, Row, read_csv, run_cli, save_figure, subplots, summarise, write_csv
from examples.l2x.data import DATASETS, make_dataset

# torch and the model are imported by the commands that use them, so that `--help` answers at once.


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m examples.l2x", description=__doc__,
                                formatter_class=HelpFormatter)
    p.add_argument("command", choices=["run", "plot"], help="run: train and report; plot: re-plot from --csv")
    p.add_argument("--csv", type=Path, default=None, help="(plot) the l2x.csv of an earlier run (default: none)")
    p.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(DATASETS), help="data sets")
    p.add_argument("--train-size", type=int, default=5000, help="size of the training set")
    p.add_argument("--test-size", type=int, default=1000, help="size of the validation and of the test set")
    p.add_argument("--epochs", type=int, default=20, help="epochs per run")
    p.add_argument("--seeds", type=int, default=3, help="seeds per (data set, method); each has its own data")
    p.add_argument("--lambdas", type=float, nargs="+", default=[1.0, 10.0, 100.0], help="IMLE λ grid")
    p.add_argument("--temperature", type=float, default=0.5, help="temperature of L2X and SoftSub relaxations")
    p.add_argument("--noise", choices=["gumbel", "sum-of-gamma"], default="gumbel",
                   help="perturbation of AIMLE, IMLE and STE: Gumbel(0, 1) per entry or SoG(k)")
    p.add_argument("--only", nargs="+", default=None,
                   help="run only methods whose name contains one of these (default: all)")
    p.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    p.add_argument("--out", type=Path, default=Path("results/l2x"), help="output folder")
    return p


def main(argv: Sequence[str] | None = None, threads: int | None = None) -> dict[str, Path]:
    """Train every (dataset, method, seed); write ``l2x.csv``, ``l2x.png`` and print the table.

    ``plot`` re-draws the table and the figure from the ``--csv`` of an earlier run. ``threads``
    sets torch's CPU threads (the command line uses one).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    return run_cli(lambda: _run(args), parser.prog, threads=threads)


def _run(args: argparse.Namespace) -> dict[str, Path]:
    if args.command == "plot":
        if args.csv is None:
            raise ValueError("plot needs --csv, the l2x.csv of an earlier run")
        rows = read_csv(args.csv)
        print(table(rows))
        return {"png": plot(rows, args.out / "l2x.png")}
    if args.quick:
        args.train_size, args.test_size, args.epochs, args.seeds, args.lambdas = 300, 200, 1, 1, [10.0]
    for name in ("train_size", "test_size", "epochs", "seeds"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    from examples.l2x.model import methods, train

    plan = [m for m in methods(tuple(args.lambdas)) if args.only is None or any(s in m.name for s in args.only)]
    rows: list[Row] = []
    with tqdm(total=len(args.datasets) * len(plan) * args.seeds * args.epochs, desc="l2x", unit="epoch") as bar:
        for name in args.datasets:
            for seed in range(args.seeds):
                # Fresh data per seed; the same data for every method of a seed.
                splits = tuple(make_dataset(name, n, 3 * seed + i)
                               for i, n in enumerate((args.train_size, args.test_size, args.test_size)))
                for method in plan:
                    rows.append(train(method, name, splits, epochs=args.epochs, seed=seed,
                                      temperature=args.temperature, noise=args.noise, progress=bar))
    written = {"csv": write_csv(rows, args.out / "l2x.csv"), "png": plot(rows, args.out / "l2x.png")}
    print(table(rows))
    for kind, path in written.items():
        print(f"wrote {kind}: {path}")
    return written


def _with_selected_imle(rows: Sequence[Row], show_value: bool = True) -> list[Row]:
    """Rows plus "IMLE (forward/central, λ chosen)": per dataset, the λ with the best mean validation loss."""
    val = summarise(rows, ("dataset", "method"), "val_cross_entropy")
    out = list(rows)
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for direction in ("forward", "central"):
            grid = {m: v[0] for (d, m), v in val.items() if d == dataset and m.startswith(f"IMLE ({direction}")}
            if grid:
                best = min(grid, key=grid.get)
                label = f"λ chosen: {best.split('λ=')[1]}" if show_value else "λ chosen on validation)"
                out += [dict(r, method=f"IMLE ({direction}, {label}") for r in rows
                        if r["dataset"] == dataset and r["method"] == best]
    return out


def table(rows: Sequence[Row]) -> str:
    """Markdown table per dataset: subset precision, test cross-entropy and post-hoc accuracy (mean ± s.e.)."""
    rows = _with_selected_imle(rows)
    metrics = [("test_precision", "subset precision %", "{:.1f}"), ("test_cross_entropy", "test CE", "{:.3f}"),
               ("test_accuracy", "post-hoc accuracy %", "{:.1f}")]
    stats = {m: summarise(rows, ("dataset", "method"), m) for m, _, _ in metrics}
    lines = ["| dataset (k) | method | " + " | ".join(h for _, h, _ in metrics) + " |", "|---|---|---|---|---|"]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    for dataset, method in sorted(stats["test_precision"], key=lambda key: datasets.index(key[0])):
        k = next(r["k"] for r in rows if r["dataset"] == dataset)
        cells = [f"{fmt.format(stats[m][(dataset, method)][0])} ± {fmt.format(stats[m][(dataset, method)][1])}"
                 for m, _, fmt in metrics]
        lines.append(f"| {dataset} ({k}) | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: Sequence[Row], path: Path) -> Path:
    """Subset precision per dataset and method (bars: mean, whiskers: ± s.e.)."""
    rows = _with_selected_imle(rows, show_value=False)
    shown = [m for m in dict.fromkeys(r["method"] for r in rows) if not ("λ=" in m and "chosen" not in m)]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    stats = summarise(rows, ("dataset", "method"), "test_precision")
    fig, ax = subplots(figsize=(max(7, 2.4 * len(datasets)), 5.5))
    width = 0.8 / len(shown)
    for i, method in enumerate(shown):
        xs = [d + (i - (len(shown) - 1) / 2) * width for d in range(len(datasets))]
        vals = [stats.get((ds, method), (float("nan"), 0.0, 0)) for ds in datasets]
        ax.bar(xs, [v[0] for v in vals], width, yerr=[v[1] for v in vals], label=method, capsize=2)
    ax.set_xticks(range(len(datasets)), datasets)
    ax.set_ylabel("subset precision on test (%)")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    return save_figure(fig, path)


if __name__ == "__main__":
    main(sys.argv[1:], threads=1)
