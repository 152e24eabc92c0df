"""Command line of the Warcraft example: ``python -m examples.warcraft [generate|train|evaluate|plot]``.

Without a command it runs the quick demo: generate a small 12×12 set (if not cached), train
AIMLE for a few epochs, print the test metrics and write the plots.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

from examples import common
from examples.warcraft.config import METHODS, PRECISIONS, TrainConfig
from examples.warcraft.data import DEFAULT_COUNTS, SIZES, generate, load_split

# torch, matplotlib and the training code are imported by the commands that use them, so that
# `--help` answers at once.

QUICK_COUNTS = {"train": 2000, "val": 200, "test": 200}
QUICK_DATA = "data/quick"
QUICK_RUN = "runs/warcraft-quick"
QUICK_EPOCHS = 4
# AIMLE settings of the demo and the `full` command (docs/examples/warcraft.md): AIMLE's preset for training
# through a solver on its decisions (no noise, forward differences, α ≤ 1), the best AIMLE setting measured
# here and on PyEPO's tasks (docs/aimle-defaults.md); the default preset's Gumbel noise at temperature 1
# swamps the small predicted costs early in training.
QUICK_AIMLE = {"aimle_controller": "deterministic"}


def _generate(args: argparse.Namespace) -> None:
    counts = {"train": args.train, "val": args.val, "test": args.test}
    out = generate(args.data_dir, args.size, counts, seed=args.seed, workers=args.workers)
    print(f"wrote {sum(counts.values())} maps to {out}")


def _precision(precision: str, device: str) -> str:
    """``--precision`` as fp32 or bf16; for ``auto`` it says which was chosen, and why."""
    if precision != "auto":
        return precision
    from examples.warcraft.train import resolve_precision

    chosen = resolve_precision(precision, device)
    why = "native bfloat16 arithmetic" if chosen == "bf16" else "no native bfloat16 arithmetic: bf16 would be emulated"
    print(f"--precision auto: {chosen} on {device} ({why})")
    return chosen


def _config(args: argparse.Namespace) -> TrainConfig:
    difference = "forward" if args.forward else "central" if args.central else None
    return TrainConfig(
        data_dir=args.data_dir,
        size=args.size,
        method=args.method,
        difference=difference,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        milestones=args.milestones,
        seed=args.seed,
        device=args.device,
        out_dir=args.out_dir,
        train_maps=args.train_maps,
        lam=args.lam,
        noise=args.noise,
        noise_temperature=_noise_temperature(args),
        samples=args.samples,
        target_nnz=args.target_nnz,
        aimle_step=args.aimle_step,
        aimle_controller=args.controller,
        lam_scope=args.lam_scope,
        aimle_count=args.aimle_count,
        aimle_count_over=args.aimle_count_over,
        initial_alpha=args.initial_alpha,
        max_alpha=args.max_alpha,
        solver_executor=args.solver_executor,
        scheduler_address=args.scheduler,
        precision=_precision(args.precision, args.device),
        ddp=args.ddp,
        progress=not args.no_progress,
    )


# Command-line options that name a TrainConfig field other than their own.
_OPTION_FIELDS = {
    "forward": "difference",
    "central": "difference",
    "controller": "aimle_controller",
    "scheduler": "scheduler_address",
    "no_progress": "progress",
    "sigma": "noise_temperature",  # deprecated spelling (removed in the next release)
}


def _noise_temperature(args: argparse.Namespace) -> float:
    """``--noise-temperature``, or the deprecated ``--sigma`` (perturbed-fy's old name for it) if given."""
    if args.sigma is None:
        return args.noise_temperature
    if "noise_temperature" in args.given:
        raise ValueError("--sigma is the deprecated name of --noise-temperature: give only --noise-temperature")
    warnings.warn(
        "--sigma is deprecated and will be removed in the next release; use --noise-temperature "
        "(the noise scale of every method)",
        DeprecationWarning,
        stacklevel=2,
    )
    return args.sigma


def _train(args: argparse.Namespace) -> None:
    from examples.warcraft.train import train

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    given = {_OPTION_FIELDS.get(name, name) for name in args.given} & fields
    train(_config(args), resume=args.resume, overwrite=args.overwrite, given=given)


def _evaluate(args: argparse.Namespace) -> None:
    from examples.warcraft.train import evaluate_run, format_table

    result = evaluate_run(args.run_dir, args.split, args.data_dir, args.device, which=args.checkpoint)
    print(format_table([result]))
    print(json.dumps(result, indent=2))


def _plot(args: argparse.Namespace) -> list[Path]:
    from examples.warcraft.metrics import optimal_cost
    from examples.warcraft.plots import plot_costs, plot_learning_curves, plot_paths
    from examples.warcraft.train import LOG, run_predictions

    run = Path(args.run_dir)
    out = Path(args.out_dir) if args.out_dir else run / "plots"
    checkpoint, split_data, maps, costs, paths = run_predictions(run, args.split, args.data_dir, args.device, limit=8)
    optimal = optimal_cost(paths, maps.paths, maps.weights).numpy()
    images = split_data.maps[: len(maps)]
    history = common.read_log(run / LOG)
    label = TrainConfig.from_saved(checkpoint["config"]).label
    written = [
        plot_paths(images, maps.paths.numpy(), paths.numpy(), optimal, out / "paths.png"),
        plot_costs(images, maps.weights.numpy(), costs.numpy(), out / "costs.png"),
        plot_learning_curves(history, out / "learning_curves.png", title=label),
    ]
    for path in written:
        print(f"wrote {path}")
    return written


def _cached_maps(data_dir: str, size: int, counts: dict[str, int], replace_other_data: bool) -> None:
    """Use the maps in ``data_dir`` if they have ``counts``, else generate them (seed 0).

    Maps that are missing are generated. Maps of other sizes (or unreadable ones) are replaced only
    with ``replace_other_data`` (the demo's own cache); otherwise they are an error, so that a
    user's data set is never overwritten.
    """
    try:
        for split, n in counts.items():
            if len(load_split(data_dir, size, split)) != n:
                raise ValueError(f"the {split} split in {data_dir} does not have the expected {n} maps")
        print(f"using the cached {size}x{size} maps in {data_dir}")
    except (FileNotFoundError, ValueError) as error:
        if isinstance(error, ValueError) and not replace_other_data:
            raise
        generate(data_dir, size, counts, seed=0)


def _quick(args: argparse.Namespace) -> None:
    """The demo: small data, a few AIMLE epochs, a results table and plots."""
    from examples.warcraft.train import evaluate_run, format_table, train

    started = time.perf_counter()
    _cached_maps(args.data_dir, 12, QUICK_COUNTS, replace_other_data=True)
    config = TrainConfig(
        data_dir=args.data_dir,
        size=12,
        method="aimle",
        epochs=args.epochs,
        out_dir=args.out_dir,
        device=args.device,
        **QUICK_AIMLE,
    )
    print(
        f"training {config.label} on {QUICK_COUNTS['train']} maps for {config.epochs} epochs "
        f"(batch {config.batch_size})"
    )
    if Path(args.out_dir, "checkpoint.pt").exists():
        print(f"replacing the previous demo run in {args.out_dir}")
    train(config, overwrite=True)  # the demo's own directory: re-running the demo replaces it
    result = evaluate_run(args.out_dir, "test", device=args.device)
    print(f"\ntest metrics on {result['maps']} generated 12x12 maps:\n")
    print(format_table([result]))
    plot_args = argparse.Namespace(run_dir=args.out_dir, split="test", data_dir=None, device=args.device, out_dir=None)
    _plot(plot_args)
    print(f"\ndone in {time.perf_counter() - started:.0f}s; full recipe: see docs/examples/warcraft.md")


def _full(args: argparse.Namespace) -> None:
    """The papers' full recipe for one method and seed: data (generated once), training, test metrics."""
    from examples.warcraft.train import evaluate_run, format_table, train

    started = time.perf_counter()
    _cached_maps(args.data_dir, args.size, DEFAULT_COUNTS, replace_other_data=False)
    out_dir = args.out_dir or f"runs/warcraft-full/{args.size}x{args.size}/{args.method}-s{args.seed}"
    settings = QUICK_AIMLE if args.method.startswith("aimle") else {}
    config = TrainConfig(
        data_dir=args.data_dir,
        size=args.size,
        method=args.method,
        seed=args.seed,
        epochs=args.epochs,
        device=args.device,
        out_dir=out_dir,
        precision=_precision(args.precision, args.device),
        progress=not args.no_progress,
        **settings,
    )
    # Re-running the command continues an interrupted run (same settings by construction).
    resume = Path(out_dir, "checkpoint.pt").exists()
    train(config, resume=resume, given={"method", "seed", "size", "data_dir", *settings})
    result = evaluate_run(out_dir, "test", device=args.device)
    best = evaluate_run(out_dir, "test", device=args.device, which="best")
    best["method"] += f" (best validation epoch {best['epochs']})"
    print(f"\ntest metrics on {result['maps']} generated {args.size}x{args.size} maps:\n")
    print(format_table([result, best]))
    print(f"\n{out_dir}: {time.perf_counter() - started:.0f}s in this command")


def _report(args: argparse.Namespace) -> None:
    """One table (mean ± std over seeds) and one learning-curve figure for the runs under a directory."""
    from examples.warcraft.report import archive_runs, collect_runs, summary_table, write_report

    runs = collect_runs(args.runs_dir, evaluate_missing=True, device=args.device)
    if args.archive:
        for path in archive_runs(runs, args.archive):
            print(f"archived {path}")
    print(summary_table(runs))
    for path in write_report(runs, args.out_dir, args.name, title=args.title):
        print(f"wrote {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.warcraft",
        description="Warcraft shortest paths: generate data, train, evaluate, plot. "
        "Without a command: a quick AIMLE demo on a small generated 12x12 set.",
        formatter_class=common.HelpFormatter,
    )
    parser.set_defaults(func=_quick, data_dir=QUICK_DATA, out_dir=QUICK_RUN, epochs=QUICK_EPOCHS, device="cpu")
    sub = parser.add_subparsers(dest="command")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, formatter_class=common.HelpFormatter)

    p = command("generate", "write procedural maps in the original file layout")
    p.add_argument("--size", type=int, default=12, choices=SIZES, help="grid size K")
    for split, n in DEFAULT_COUNTS.items():
        p.add_argument(f"--{split}", type=int, default=n, help=f"number of {split} maps")
    p.add_argument("--seed", type=int, default=0, help="seed of the maps")
    p.add_argument("--data-dir", default="data", help="root; maps go to DIR/warcraft_shortest_path_oneskin/KxK/")
    p.add_argument("--workers", type=int, default=None, help="processes (default: min(2, CPU count))")
    p.set_defaults(func=_generate)

    p = command("train", "train a model (papers' recipe by default)")
    p.add_argument("--method", default="aimle", choices=METHODS, help="gradient estimator or loss")
    p.add_argument("--forward", action="store_true", help="forward differences (AIMLE / I-MLE)")
    p.add_argument("--central", action="store_true", help="central differences (AIMLE / I-MLE)")
    p.add_argument("--data-dir", default="data", help="root of the maps (see generate)")
    p.add_argument("--size", type=int, default=12, choices=SIZES, help="grid size K")
    p.add_argument("--out-dir", default="runs/warcraft", help="checkpoint and log directory")
    p.add_argument("--epochs", type=int, default=50, help="epochs in all")
    p.add_argument("--batch-size", type=int, default=70, help="maps per step, over all processes")
    p.add_argument("--lr", type=float, default=5e-4, help="Adam's learning rate")
    p.add_argument(
        "--milestones", type=int, nargs="*", default=[30, 40], help="epochs where the lr is multiplied by 0.1"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the model, data order and noise")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--train-maps", type=int, default=None, help="use only the first N training maps (default: all)")
    p.add_argument("--lam", type=float, default=20.0, help="λ of I-MLE and Blackbox")
    p.add_argument(
        "--noise",
        default=None,
        choices=["gumbel", "sum-of-gamma", "none"],
        help="AIMLE / I-MLE noise (default: the method's: Gumbel; AIMLE's controller preset's)",
    )
    p.add_argument(
        "--noise-temperature", type=float, default=1.0, help="noise scale (AIMLE / I-MLE noise, perturbed-fy's σ)"
    )
    p.add_argument("--samples", type=int, default=None, help="perturbation samples per map")
    # AIMLE's own arguments: None (not given) leaves them to dt.AIMLE's defaults.
    p.add_argument("--target-nnz", type=float, default=None, help="AIMLE's count target c (default: AIMLE's)")
    p.add_argument("--aimle-step", type=float, default=None, help="AIMLE's update step η (default: AIMLE's)")
    p.add_argument(
        "--controller",
        choices=("fast", "deterministic", "paper", "reference"),
        default=None,
        help="AIMLE's α rule and preset: fast, deterministic (no noise, forward, α ≤ 1), paper (Algorithm 1) or "
        "reference (default: AIMLE's)",
    )
    p.add_argument(
        "--lam-scope",
        choices=("example", "batch"),
        default=None,
        help="AIMLE's λ per example (Eq. 8) or one per batch (the reference code; default: AIMLE's)",
    )
    p.add_argument(
        "--aimle-count",
        choices=("entries", "solution"),
        default=None,
        help="what AIMLE's c counts: non-zero entries (Eq. 9) or entries ÷ the MAP state's (default: AIMLE's)",
    )
    p.add_argument(
        "--aimle-count-over",
        choices=("batch", "active"),
        default=None,
        help="AIMLE's mean count over all maps (Eq. 9) or those with a non-zero loss gradient (default: AIMLE's)",
    )
    p.add_argument("--initial-alpha", type=float, default=None, help="AIMLE's α₀ (default: AIMLE's)")
    p.add_argument(
        "--max-alpha", type=float, default=None, help="the fast rule's ceiling on α (default: the controller's)"
    )
    p.add_argument("--sigma", type=float, default=None, help="deprecated: use --noise-temperature")
    p.add_argument("--resume", action="store_true", help="continue the run in --out-dir from its checkpoint")
    p.add_argument("--overwrite", action="store_true", help="replace the run in --out-dir (its checkpoint and log)")
    p.add_argument("--ddp", action="store_true", help="DistributedDataParallel (launch with torchrun)")
    p.add_argument(
        "--solver-executor",
        default="none",
        choices=["none", "dask"],
        help="none: the batched solver in this process; dask: the reference Dijkstra per map on a dask cluster",
    )
    p.add_argument("--scheduler", default=None, help="dask scheduler address of --solver-executor dask (default: none)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--precision",
        choices=("auto", *PRECISIONS),
        default="fp32",
        help="bf16: bfloat16 autocast of the network (CPU and CUDA); the solver and the loss stay fp32; "
        "auto: bf16 where the device has native bfloat16 arithmetic (AVX-512 BF16 or AMX, a CUDA GPU), else fp32",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    p = command(
        "full", "the papers' full recipe for one method: generate the default split once, train 50 epochs, evaluate"
    )
    p.add_argument("--method", default="aimle", choices=METHODS, help="gradient estimator or loss")
    p.add_argument("--seed", type=int, default=0, help="seed of the model, data order and noise")
    p.add_argument("--size", type=int, default=12, choices=SIZES, help="grid size K")
    p.add_argument("--data-dir", default="data", help="root of the maps (generated there if missing)")
    p.add_argument("--out-dir", default=None, help="default runs/warcraft-full/KxK/METHOD-sSEED")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--precision",
        choices=("auto", *PRECISIONS),
        default="auto",
        help="bf16: autocast of the network only; auto (default): bf16 where the device has native bfloat16 "
        "arithmetic, else fp32 (an emulated bf16 is about 9x slower)",
    )
    p.add_argument("--epochs", type=int, default=50, help="epochs in all (the recipe's)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_full)

    p = command("report", "a table over seeds and one learning-curve figure for a folder of runs")
    p.add_argument(
        "--runs-dir",
        nargs="+",
        default=["runs/warcraft-full/12x12"],
        help="folders whose subfolders are runs (training runs or archived ones)",
    )
    p.add_argument(
        "--archive",
        default=None,
        metavar="DIR",
        help="also copy each training run's config, log and test metrics (no weights) to DIR/RUN (default: no copy)",
    )
    p.add_argument("--out-dir", default="runs/warcraft-full/report", help="where the table, JSON and PNG go")
    p.add_argument("--name", default="full_12x12", help="file name stem of the outputs")
    p.add_argument("--title", default="", help="figure title (default: none)")
    p.add_argument("--device", default="cpu", help="for evaluating runs without test metrics")
    p.set_defaults(func=_report)

    p = command("evaluate", "all metrics of a trained run on a split")
    p.add_argument("--run-dir", default="runs/warcraft", help="the run's --out-dir")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="the maps to evaluate on")
    p.add_argument("--data-dir", default=None, help="default: the run's data directory")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--checkpoint", choices=("last", "best"), default="last", help="last epoch, or best validation accuracy"
    )
    p.set_defaults(func=_evaluate)

    p = command("plot", "PNGs: paths over maps, cost maps, learning curves")
    p.add_argument("--run-dir", default="runs/warcraft", help="the run's --out-dir")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="the maps to draw")
    p.add_argument("--data-dir", default=None, help="default: the run's data directory")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--out-dir", default=None, help="default: RUN_DIR/plots")
    p.set_defaults(func=_plot)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "forward", False) and getattr(args, "central", False):
        parser.error("choose one of --forward and --central")
    args.given = common.given_options(build_parser, argv)
    common.run_cli(lambda: args.func(args), parser.prog, threads=getattr(args, "threads", None))


if __name__ == "__main__":
    main(sys.argv[1:])
