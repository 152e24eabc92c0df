"""Command line: ``python -m examples.nri {generate,train,evaluate,plot} ...`` (see docs/examples/nri.md)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from examples import run_files
from examples.nri.data import FULL_SIZES, generate
from examples.nri.train import Config, evaluate, train


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m examples.nri", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="regenerate the dataset (bit for bit)")
    gen.add_argument("--timesteps", type=int, choices=(10, 20), default=10)
    for split, size in FULL_SIZES.items():
        gen.add_argument(f"--{split}", type=int, default=size, help=f"samples in {split} (default {size})")
    gen.add_argument("--data-dir", default="data")
    gen.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes generating chunks of samples in parallel, a positive int (default 1); same bytes for any N",
    )

    tr = commands.add_parser("train", help="train (or --resume) a run")
    tr.add_argument("--run-dir", required=True)
    tr.add_argument("--data-dir", default="data")
    tr.add_argument("--device", default="cpu")
    tr.add_argument("--resume", action="store_true", help="continue the run in --run-dir from last.pt")
    tr.add_argument("--overwrite", action="store_true", help="replace the run in --run-dir")
    tr.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    tr.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds; stop at the first validation after this (last.pt stays resumable with --resume)",
    )
    tr.add_argument(
        "--compile",
        action="store_true",
        help="capture the training step with torch.compile (CUDA graphs on CUDA); may change on --resume",
    )
    # Defaults of None: Config's defaults apply, and on --resume only what is given is checked.
    tr.add_argument("--timesteps", type=int, choices=(10, 20))
    tr.add_argument("--estimator", choices=("aimle", "imle"))
    tr.add_argument("--difference", choices=("forward", "central"))
    tr.add_argument("--lr", type=float, help="default: the paper's value for (timesteps, difference)")
    tr.add_argument("--noise-temperature", type=float, help="default: the paper's value")
    tr.add_argument("--imle-lambda", type=float, help="IMLE's fixed step λ (default 10)")
    tr.add_argument(
        "--target-nnz",
        type=float,
        help="AIMLE's target number of non-zero gradient entries per instance, over the 45 pairs (default 1)",
    )
    tr.add_argument(
        "--lam-scope",
        choices=("example", "batch"),
        help="AIMLE's λ from each instance's norms (Eq. 8, default) or from the whole batch's (the reference code)",
    )
    tr.add_argument("--noise", choices=("sog", "gumbel"), help="perturbation: Sum-of-Gamma (k = 10; default) or Gumbel")
    tr.add_argument(
        "--kl-weight", type=float, help="weight of the KL (prior) term in the training loss (default 1: the ELBO)"
    )
    tr.add_argument("--iterations", type=int, help="total iterations (default 50,000)")
    tr.add_argument("--batch-size", type=int, help="default 128")
    tr.add_argument("--validate-every", type=int, help="default 500")
    tr.add_argument("--log-every", type=int, help="default 50")
    tr.add_argument("--eval-batch-size", type=int, help="default 100")
    tr.add_argument("--hidden", type=int, help="hidden units of all MLPs (default 256)")
    tr.add_argument("--prediction-steps", type=int, help="decoder roll-out length in training (default T-1)")
    tr.add_argument(
        "--skip-first",
        action="store_const",
        const=True,
        help="type 0 ('no edge') sends no messages, so only tree edges do (NRI's skip_first; off in the recipe)",
    )
    tr.add_argument("--seed", type=int, help="default 0")
    tr.add_argument("--train-size", type=int, help="use only the first N train samples")
    tr.add_argument("--valid-size", type=int, help="validate on the first N valid samples")

    ev = commands.add_parser("evaluate", help="test ELBO and edge precision/recall at the best checkpoint")
    ev.add_argument("--run-dir", required=True)
    ev.add_argument("--data-dir", default="data", help="default: the run's (from its config.json), else data")
    ev.add_argument("--device", default="cpu")
    ev.add_argument("--test-size", type=int, default=None, help="use only the first N test samples")
    ev.add_argument("--threads", type=int, default=None)

    pl = commands.add_parser("plot", help="PNGs: trajectories with true vs recovered trees, learning curves")
    pl.add_argument("--run-dir", required=True)
    pl.add_argument("--data-dir", default="data", help="default: the run's (from its config.json), else data")
    pl.add_argument("--count", type=int, default=4, help="test samples to draw")
    return parser


_CONFIG_FIELDS = [field.name for field in dataclasses.fields(Config)]


def _run_data_dir(args: argparse.Namespace, explicit: set[str]) -> str:
    """``--data-dir`` if given, else the one the run was trained on (recorded in its config.json)."""
    saved = Path(args.run_dir) / "config.json"
    if "data_dir" in explicit or not saved.exists():
        return args.data_dir
    return json.loads(saved.read_text()).get("data_dir", args.data_dir)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    return run_files.run_cli(lambda: _run(args, run_files.given_options(_parser, argv)), parser.prog)


def _run(args: argparse.Namespace, explicit: set[str]) -> int:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)

    if args.command == "generate":
        sizes = {"train": args.train, "valid": args.valid, "test": args.test}
        for path in generate(args.timesteps, sizes, args.data_dir, workers=args.workers).values():
            print(path)
    elif args.command == "train":
        given = {name: getattr(args, name) for name in _CONFIG_FIELDS if getattr(args, name) is not None}
        data_dir = args.data_dir
        if args.resume:
            saved_path = Path(args.run_dir) / "config.json"
            if not saved_path.exists():
                raise FileNotFoundError(f"train --resume: {saved_path} not found; is {args.run_dir} a run directory?")
            saved = json.loads(saved_path.read_text())
            saved_data_dir = saved.pop("data_dir", None)  # runs from before it was recorded: --data-dir or data/
            if saved_data_dir is not None:
                if "data_dir" in explicit and str(args.data_dir) != saved_data_dir:
                    raise ValueError(
                        f"--resume: {args.run_dir} was trained on --data-dir {saved_data_dir}, not {args.data_dir}; "
                        "drop --data-dir to use the run's"
                    )
                data_dir = saved_data_dir
            config = Config(**{**saved, **given})
        else:
            config = Config(**given)
        best = train(
            config,
            args.run_dir,
            data_dir,
            args.device,
            resume=args.resume,
            time_limit=args.time_limit,
            overwrite=args.overwrite,
            compile=args.compile,
        )
        print(json.dumps(best, indent=2))
    elif args.command == "evaluate":
        data_dir = _run_data_dir(args, explicit)
        print(json.dumps(evaluate(args.run_dir, data_dir, args.device, args.test_size), indent=2))
    elif args.command == "plot":
        # matplotlib is only imported when plotting.
        from examples.nri.plot import plot_learning_curves, plot_trajectories

        run = Path(args.run_dir)
        print(plot_trajectories(run / "best.pt", _run_data_dir(args, explicit), run / "trajectories.png", args.count))
        print(plot_learning_curves(run / "log.jsonl", run / "learning_curves.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
