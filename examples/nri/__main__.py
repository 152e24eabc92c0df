"""Command line: ``python -m examples.nri {generate,train,evaluate,plot} ...`` (see docs/examples/nri.md)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from examples import common
from examples.nri.config import CONTROLLERS, FULL_SIZES, NOISE_NAMES, Config

# torch, matplotlib and the training code are imported by the commands that use them, so that
# `--help` answers at once.

_DEFAULTS = Config()


def _default(name: str) -> str:
    """``(default: V)`` with Config's default of ``name``."""
    return f"(default: {getattr(_DEFAULTS, name)})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m examples.nri", description=__doc__, formatter_class=common.HelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, formatter_class=common.HelpFormatter)

    gen = command("generate", "regenerate the dataset (bit for bit)")
    gen.add_argument("--timesteps", type=int, choices=(10, 20), default=10, help="frames per trajectory")
    for split, size in FULL_SIZES.items():
        gen.add_argument(f"--{split}", type=int, default=size, help=f"samples in {split}")
    gen.add_argument("--data-dir", default="data", help="where the .npy files go")
    gen.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes generating chunks of samples in parallel, a positive int; same bytes for any N",
    )

    tr = command("train", "train (or --resume) a run")
    tr.add_argument("--run-dir", required=True, help="the run directory")
    tr.add_argument("--data-dir", default="data", help="the dataset (on --resume: the run's)")
    tr.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    tr.add_argument("--resume", action="store_true", help="continue the run in --run-dir from last.pt")
    tr.add_argument("--overwrite", action="store_true", help="replace the run in --run-dir")
    tr.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    tr.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds; stop at the first validation after this (last.pt stays resumable with --resume) "
        "(default: no limit)",
    )
    tr.add_argument(
        "--compile",
        action="store_true",
        help="capture the training step with torch.compile (CUDA graphs on CUDA); may change on --resume",
    )
    # Defaults of None: Config's defaults apply (shown in the help), and on --resume only what is given is checked.
    tr.add_argument("--timesteps", type=int, choices=(10, 20), help=f"frames per trajectory {_default('timesteps')}")
    tr.add_argument("--estimator", choices=("aimle", "imle"), help=f"gradient estimator {_default('estimator')}")
    tr.add_argument("--difference", choices=("forward", "central"), help=f"finite difference {_default('difference')}")
    tr.add_argument("--lr", type=float, help="learning rate (default: the paper's value for (timesteps, difference))")
    tr.add_argument("--noise-temperature", type=float, help="noise scale (default: the paper's value)")
    tr.add_argument("--imle-lambda", type=float, help=f"IMLE's fixed step λ {_default('imle_lambda')}")
    tr.add_argument(
        "--target-nnz",
        type=float,
        help=f"AIMLE's target number of non-zero gradient entries per instance, of 45 {_default('target_nnz')}",
    )
    tr.add_argument(
        "--lam-scope",
        choices=("example", "batch"),
        help="AIMLE's λ from each instance's norms (Eq. 8) or from the whole batch's (the reference code) "
        f"{_default('lam_scope')}",
    )
    tr.add_argument(
        "--controller",
        choices=CONTROLLERS,
        help="AIMLE's α rule: Algorithm 1 (α₀ = 0, c in entries), AIMLE's defaults (α₀ = 1, c per solution) or "
        f"its deterministic preset (α ≤ 1; with --noise none) {_default('controller')}",
    )
    tr.add_argument(
        "--noise",
        choices=NOISE_NAMES,
        help=f"perturbation: Sum-of-Gamma (k = 10), Gumbel or none (a deterministic tree) {_default('noise')}",
    )
    tr.add_argument(
        "--kl-weight", type=float, help=f"weight of the KL (prior) term in the loss; 1: ELBO {_default('kl_weight')}"
    )
    tr.add_argument("--iterations", type=int, help=f"total iterations {_default('iterations')}")
    tr.add_argument("--batch-size", type=int, help=f"samples per iteration {_default('batch_size')}")
    tr.add_argument("--validate-every", type=int, help=f"iterations between validations {_default('validate_every')}")
    tr.add_argument("--log-every", type=int, help=f"iterations between train records {_default('log_every')}")
    tr.add_argument("--eval-batch-size", type=int, help=f"samples per evaluation batch {_default('eval_batch_size')}")
    tr.add_argument("--hidden", type=int, help=f"hidden units of all MLPs {_default('hidden')}")
    tr.add_argument("--prediction-steps", type=int, help="decoder roll-out length in training (default: T-1)")
    tr.add_argument(
        "--skip-first",
        action="store_const",
        const=True,
        help="type 0 ('no edge') sends no messages, so only tree edges do (NRI's skip_first; off in the recipe) "
        "(default: off)",
    )
    tr.add_argument("--seed", type=int, help=f"seed of the model and the noise {_default('seed')}")
    tr.add_argument("--train-size", type=int, help="use only the first N train samples (default: all)")
    tr.add_argument("--valid-size", type=int, help="validate on the first N valid samples (default: all)")

    ev = command("evaluate", "test ELBO and edge precision/recall at the best checkpoint")
    ev.add_argument("--run-dir", required=True, help="the run directory")
    ev.add_argument("--data-dir", default="data", help="default: the run's (from its config.json), else data")
    ev.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    ev.add_argument("--test-size", type=int, default=None, help="use only the first N test samples (default: all)")
    ev.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")

    pl = command("plot", "PNGs: trajectories with true vs recovered trees, learning curves")
    pl.add_argument("--run-dir", required=True, help="the run directory")
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
    explicit = common.given_options(_parser, argv)
    return common.run_cli(lambda: _run(args, explicit), parser.prog, threads=getattr(args, "threads", None))


def _run(args: argparse.Namespace, explicit: set[str]) -> int:
    from examples.nri.data import generate
    from examples.nri.train import evaluate, train

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
