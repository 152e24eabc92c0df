"""The study behind AIMLE's defaults: each design choice measured on the same small task set.

Tasks: the synthetic fidelity task of ``examples.synthetic`` (cosine similarity to the exact
gradient after 20 and 100 warm-up steps, S = 10, 100, 1000, against I-MLE at its best λ) and the
shortest-path and knapsack benchmarks of :mod:`benchmarks.vs_pyepo` (normalised test regret
after 10 epochs, exact fast solvers, difftools only)::

    python -m benchmarks.aimle_study synthetic      # a few minutes on one core
    python -m benchmarks.aimle_study pyepo          # about 15 minutes on one core (needs PyEPO)
    python -m benchmarks.aimle_study pyepo --quick  # 1 seed, 3 epochs

Each configuration is a set of :class:`~difftools.AIMLE` arguments plus ``count``: what the
controller's count c counts (``"sample"``: non-zero entries per sample and example, the paper's
Eq. 9 and difftools' rule; ``"example"``: non-zero entries of each example's gradient averaged
over samples; ``"entry"``: the fraction of non-zero entries, PyEPO's rule). The last two are
implemented here, as a subclass, only for the study.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from typing import Any

from examples.common import HelpFormatter


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.aimle_study", description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("study", choices=["synthetic", "pyepo"], help="the task set to run")
    parser.add_argument("--quick", action="store_true", help="fewer seeds and epochs (a smoke run)")
    parser.add_argument("--out", help="write the rows as JSON here")
    parser.add_argument("--problems", nargs="+", default=["sp", "ks"], help="PyEPO problems (pyepo study)")
    parser.add_argument("--only", nargs="*", help="configuration names to run (default: all)")
    return parser


if __name__ == "__main__":  # --help and argument errors are answered before torch is imported
    _parser().parse_args()


import torch
from difftools.solvers.topk import argmax
from torch import Tensor

import difftools as dt
from difftools.estimators import FastRule
from examples.synthetic.task import cosine, estimate_gradient, exact_gradient, make_problem

__all__ = ["CountingAIMLE", "make_aimle", "SYNTHETIC_CONFIGS", "PYEPO_CONFIGS", "synthetic_study", "pyepo_study"]


class CountingAIMLE(dt.AIMLE):
    """AIMLE whose controller counts non-zeros per example (over samples) or per entry (a fraction).

    ``mode`` is the study's own count; it is kept apart from AIMLE's ``count`` attribute (``"entries"``
    or ``"solution"``), which ``mode="sample"`` leaves in charge.
    """

    def __init__(self, solver: Any, *, mode: str = "sample", **kwargs: Any):
        super().__init__(solver, **kwargs)
        if mode not in ("sample", "example", "entry", "nonzero"):
            raise ValueError(f"CountingAIMLE: mode must be 'sample', 'example', 'entry' or 'nonzero', got {mode!r}")
        self.mode = mode

    def _observe(self, diff: Tensor, out: Tensor, grad_f: Tensor, grad_norm: Tensor | None) -> None:
        if self.mode == "sample":
            return super()._observe(diff, out, grad_f, grad_norm)
        event = self.solver.event_dim
        instances = math.prod(diff.shape[1 : diff.dim() - event])
        if self.mode == "nonzero":  # the fraction of (sample, example) pairs with any non-zero entry
            flat = diff.reshape(diff.shape[0] * instances, -1)
            with torch.no_grad():
                self._update_controller(torch.count_nonzero((flat != 0).any(1)), flat.shape[0])
            return
        if self.mode == "example":  # entries where any sample's difference is non-zero
            nonzero = torch.count_nonzero((diff != 0).any(0))
        else:  # the fraction of non-zero entries, summed per instance (÷ instances in the update)
            nonzero = torch.count_nonzero(diff) / (diff.shape[0] * math.prod(diff.shape[diff.dim() - event :]))
        with torch.no_grad():
            self._update_controller(nonzero, instances)


def make_aimle(solver: Any, config: dict[str, Any], **extra: Any) -> dt.AIMLE:
    """An AIMLE layer from a study configuration (``name`` is not an AIMLE argument).

    ``count`` is ``"sample"`` (AIMLE's Eq. 9 count, the default), ``"solution"`` (AIMLE's own
    ``count="solution"``) or one of the study's counts (:class:`CountingAIMLE`'s ``mode``).
    """
    kwargs = {k: v for k, v in config.items() if k not in ("name", "count", "max_alpha")}
    kwargs.update(extra)
    if "max_alpha" in config:  # the fast rule with another ceiling
        kwargs["controller"] = FastRule(max_alpha=config["max_alpha"])
    # Rows without these keys were measured before AIMLE had them, i.e. with Eq. 9's count over the batch.
    kwargs.setdefault("count_over", "batch")
    count = config.get("count", "sample")
    if count == "sample":
        return dt.AIMLE(solver, count="entries", **kwargs)
    if count == "solution":
        return dt.AIMLE(solver, count="solution", **kwargs)
    return CountingAIMLE(solver, mode=count, count="entries", **kwargs)


# ----------------------------------------------------------------------------------- synthetic
SYNTHETIC_CONFIGS: list[dict[str, Any]] = [
    {"name": "paper (Algorithm 1)", "controller": "paper"},
    {"name": "paper, α₀ = 1", "controller": "paper", "initial_alpha": 1.0},
    {"name": "fast", "controller": "fast", "initial_alpha": 0.0},
    {"name": "fast, forward", "controller": "fast", "initial_alpha": 0.0, "central": False},
    {"name": "fast, α₀ = 1", "controller": "fast", "initial_alpha": 1.0},
    {"name": "fast, λ per batch", "controller": "fast", "initial_alpha": 0.0, "lam_scope": "batch"},
    {"name": "fast, count per example", "controller": "fast", "initial_alpha": 0.0, "count": "example"},
    {
        "name": "fast, count per entry (c = 1/n)",
        "controller": "fast",
        "initial_alpha": 0.0,
        "count": "entry",
        "target_nnz": 0.02,
    },
    {"name": "fast, Normal noise", "controller": "fast", "initial_alpha": 0.0, "noise": dt.Normal()},
    {"name": "fast, c = 2", "controller": "fast", "initial_alpha": 0.0, "target_nnz": 2.0},
    {"name": "fast, P(g ≠ 0) = 0.9", "controller": "fast", "initial_alpha": 0.0, "count": "nonzero", "target_nnz": 0.9},
    {"name": "fast, c = 0.5", "controller": "fast", "initial_alpha": 0.0, "target_nnz": 0.5},
    # For argmax the count per solution (÷ 1 non-zero) is the count per sample: these rows stand for both.
    {"name": "fast, α₀ = 1, c = 0.75", "controller": "fast", "target_nnz": 0.75},
    {"name": "fast, α₀ = 1, forward", "controller": "fast", "central": False},
    {"name": "fast, α₀ = 1, forward, c = 0.5", "controller": "fast", "central": False, "target_nnz": 0.5},
    # Fourteenth session: the preset for decisions (no noise) on a sampling task, i.e. a noise-free default.
    {"name": "controller='deterministic'", "controller": "deterministic", "count": "solution", "count_over": "active"},
]


def synthetic_study(
    seeds: int = 16,
    n: int = 50,
    samples_grid: tuple[int, ...] = (10, 100, 1000),
    checkpoints=(20, 100),
    configs: list[dict[str, Any]] | None = None,
) -> list[dict]:
    """Cosine similarity after each warm-up checkpoint, per configuration and S (one layer per seed)."""
    rows = []
    problems = [make_problem(seed, n) for seed in range(seeds)]
    exact = [exact_gradient(t, b) for t, b in problems]
    for config in configs or SYNTHETIC_CONFIGS:
        for samples in samples_grid:
            cos: dict[int, list[float]] = {c: [] for c in checkpoints}
            alphas: dict[int, list[float]] = {c: [] for c in checkpoints}
            start = time.perf_counter()
            for seed, (theta, b) in enumerate(problems):
                # The batch dim of the study's λ-per-batch variant is the problem's own (one instance).
                layer = make_aimle(
                    argmax,
                    config,
                    samples=samples,
                    check_finite=False,
                    generator=torch.Generator().manual_seed(1000 * seed + samples),
                )
                for step in range(1, max(checkpoints) + 1):
                    estimate_gradient(layer, theta, b)
                    if step in checkpoints:
                        probe = make_aimle(
                            argmax,
                            config,
                            samples=samples,
                            check_finite=False,
                            generator=torch.Generator().manual_seed(7 + 1000 * seed + step),
                        )
                        probe.load_state_dict(layer.state_dict())
                        grads = [estimate_gradient(probe, theta, b) for _ in range(4)]
                        cos[step].append(statistics.mean(float(cosine(g, exact[seed])) for g in grads))
                        alphas[step].append(float(layer.alpha))
            for step in checkpoints:
                rows.append(
                    {
                        "task": "synthetic",
                        "config": config["name"],
                        "samples": samples,
                        "steps": step,
                        "cosine": statistics.mean(cos[step]),
                        "se": statistics.stdev(cos[step]) / math.sqrt(seeds),
                        "alpha": statistics.median(alphas[step]),
                    }
                )
            print(
                f"  {config['name']:<34} S={samples:<5} "
                + "  ".join(f"{s} steps {statistics.mean(cos[s]):.3f}" for s in checkpoints)
                + f"  ({time.perf_counter() - start:.1f} s)",
                flush=True,
            )
    return rows


def imle_best(
    seeds: int = 16,
    n: int = 50,
    samples_grid=(10, 100, 1000),
    lambdas=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0),
) -> list[dict]:
    """I-MLE (central) over a λ grid: the reference the synthetic target is measured against."""
    problems = [make_problem(seed, n) for seed in range(seeds)]
    theta = torch.stack([p[0] for p in problems])
    b = torch.stack([p[1] for p in problems])
    exact = exact_gradient(theta, b)
    rows = []
    for samples in samples_grid:
        best = None
        for lam in lambdas:
            vals = []
            for rep in range(4):
                est = dt.IMLE(
                    argmax,
                    lam=lam,
                    central=True,
                    samples=samples,
                    check_finite=False,
                    generator=torch.Generator().manual_seed(rep + 31 * samples),
                )
                vals.append(cosine(estimate_gradient(est, theta, b), exact))
            c = torch.stack(vals).mean(0)
            mean = float(c.mean())
            if best is None or mean > best[1]:
                best = (lam, mean, float(c.std() / math.sqrt(seeds)))
        rows.append(
            {
                "task": "synthetic",
                "config": "I-MLE (central), best λ",
                "samples": samples,
                "lam": best[0],
                "cosine": best[1],
                "se": best[2],
            }
        )
        print(f"  I-MLE best λ at S={samples}: λ = {best[0]}, cosine {best[1]:.3f} ± {best[2]:.3f}", flush=True)
    return rows


# ----------------------------------------------------------------------------------- PyEPO tasks
PYEPO_CONFIGS: list[dict[str, Any]] = [
    {"name": "paper (Algorithm 1)", "controller": "paper"},
    {"name": "paper, α₀ = 1", "controller": "paper", "initial_alpha": 1.0},
    {"name": "fast", "controller": "fast", "initial_alpha": 0.0},
    {"name": "fast, forward", "controller": "fast", "initial_alpha": 0.0, "central": False},
    {"name": "fast, α₀ = 1", "controller": "fast", "initial_alpha": 1.0},
    {"name": "fast, λ per batch", "controller": "fast", "initial_alpha": 0.0, "lam_scope": "batch"},
    {"name": "fast, c = 4", "controller": "fast", "initial_alpha": 0.0, "target_nnz": 4.0},
    {"name": "fast, c = 16", "controller": "fast", "initial_alpha": 0.0, "target_nnz": 16.0},
    {"name": "fast, SoG(5)", "controller": "fast", "initial_alpha": 0.0, "noise": "sog"},
    {"name": "fast, Normal", "controller": "fast", "initial_alpha": 0.0, "noise": "normal"},
    {"name": "fast, no noise", "controller": "fast", "initial_alpha": 0.0, "noise": None},
    {"name": "fast, +ε on costs", "controller": "fast", "initial_alpha": 0.0, "noise": "gumbel+"},
    {"name": "fast, P(g ≠ 0) = 0.5", "controller": "fast", "initial_alpha": 0.0, "count": "nonzero", "target_nnz": 0.5},
    {"name": "fast, P(g ≠ 0) = 0.9", "controller": "fast", "initial_alpha": 0.0, "count": "nonzero", "target_nnz": 0.9},
    {
        "name": "fast, S = 10, P(g ≠ 0) = 0.9",
        "controller": "fast",
        "initial_alpha": 0.0,
        "count": "nonzero",
        "target_nnz": 0.9,
        "samples": 10,
    },
    {"name": "fast, S = 10", "controller": "fast", "initial_alpha": 0.0, "samples": 10},
    {
        "name": "fast, S = 10, count per example",
        "controller": "fast",
        "initial_alpha": 0.0,
        "samples": 10,
        "count": "example",
    },
    {
        "name": "fast, S = 10, count per entry",
        "controller": "fast",
        "initial_alpha": 0.0,
        "samples": 10,
        "count": "entry",
        "target_nnz": 0.05,
    },
    {"name": "fixed α = 1 (paper, η = 1e-9, α₀ = 1)", "controller": "paper", "initial_alpha": 1.0, "step": 1e-9},
    {"name": "fixed α = 1, S = 10", "controller": "paper", "initial_alpha": 1.0, "step": 1e-9, "samples": 10},
    {"name": "fixed α = 0.3, S = 10", "controller": "paper", "initial_alpha": 0.3, "step": 1e-9, "samples": 10},
    {"name": "paper, α₀ = 1, S = 10", "controller": "paper", "initial_alpha": 1.0, "samples": 10},
    {"name": "fast, α₀ = 1, S = 10", "controller": "fast", "initial_alpha": 1.0, "samples": 10},
    {
        "name": "PyEPO-like: paper, α₀ = 1, forward, SoG(5), S = 10, λ per batch",
        "controller": "paper",
        "initial_alpha": 1.0,
        "central": False,
        "noise": "sog",
        "samples": 10,
        "lam_scope": "batch",
    },
    {
        "name": "PyEPO-like, but central",
        "controller": "paper",
        "initial_alpha": 1.0,
        "central": True,
        "noise": "sog",
        "samples": 10,
        "lam_scope": "batch",
    },
    {
        "name": "PyEPO-like, but Gumbel",
        "controller": "paper",
        "initial_alpha": 1.0,
        "central": False,
        "noise": "gumbel",
        "samples": 10,
        "lam_scope": "batch",
    },
    {
        "name": "PyEPO-like, but λ per example",
        "controller": "paper",
        "initial_alpha": 1.0,
        "central": False,
        "noise": "sog",
        "samples": 10,
        "lam_scope": "example",
    },
    {
        "name": "PyEPO-like, but fast controller",
        "controller": "fast",
        "initial_alpha": 1.0,
        "central": False,
        "noise": "sog",
        "samples": 10,
        "lam_scope": "batch",
    },
    {"name": "defaults, forward, SoG(5)", "controller": "fast", "central": False, "noise": "sog"},
    {"name": "fast, α₀ = 1, count per solution", "controller": "fast", "count": "solution"},
    {"name": "fast, α₀ = 1, count per solution, forward", "controller": "fast", "count": "solution", "central": False},
    {"name": "fast, α₀ = 1, count per solution, c = 0.5", "controller": "fast", "count": "solution", "target_nnz": 0.5},
    {"name": "fast, α₀ = 1, count per solution, no noise", "controller": "fast", "count": "solution", "noise": None},
    {"name": "fast, α₀ = 1, count per solution, S = 10", "controller": "fast", "count": "solution", "samples": 10},
    {
        "name": "fast, α₀ = 1, count per solution, c = 0.75",
        "controller": "fast",
        "count": "solution",
        "target_nnz": 0.75,
    },
    {
        "name": "fast, α₀ = 1, count per solution, c = 0.5, forward",
        "controller": "fast",
        "count": "solution",
        "target_nnz": 0.5,
        "central": False,
    },
    {
        "name": "fast, α₀ = 1, count per solution, τ = 0.5",
        "controller": "fast",
        "count": "solution",
        "noise_temperature": 0.5,
    },
    {"name": "fast, α₀ = 1, τ = 0.5", "controller": "fast", "noise_temperature": 0.5},
    {
        "name": "fast, α₀ = 1, count per solution, forward, SoG(5)",
        "controller": "fast",
        "count": "solution",
        "central": False,
        "noise": "sog",
    },
    {
        "name": "PyEPO-like, but fast controller and count per solution",
        "controller": "fast",
        "count": "solution",
        "initial_alpha": 1.0,
        "central": False,
        "noise": "sog",
        "samples": 10,
        "lam_scope": "batch",
    },
    # AIMLE's defaults since count_over: the mean count over the (sample, example) pairs with ∇f ≠ 0.
    {"name": "defaults: fast, count per solution over active pairs", "count": "solution", "count_over": "active"},
    {"name": "fast, α₀ = 1, count per entry over active pairs", "controller": "fast", "count_over": "active"},
    {
        "name": "defaults, forward",
        "count": "solution",
        "count_over": "active",
        "central": False,
    },
    {
        "name": "defaults, S = 10",
        "count": "solution",
        "count_over": "active",
        "samples": 10,
    },
    # Fifth session: the fast rule's ceiling α_max (FastRule(max_alpha=...)); with forward differences
    # and no noise the count is out of reach late in training and α sits at the ceiling, so a low
    # ceiling is a relative λ = α_max ‖θ‖ / ‖∇f‖ that the rule only lowers.
    *(
        {
            "name": f"defaults, α ≤ {cap:g}{label}",
            "count": "solution",
            "count_over": "active",
            "max_alpha": cap,
            **extra,
        }
        for cap in (1.0, 0.3, 10.0)
        for label, extra in (
            ("", {}),
            (", forward", {"central": False}),
            (", forward, no noise", {"central": False, "noise": None}),
            (", forward, SoG(5)", {"central": False, "noise": "sog"}),
        )
    ),
    *(
        {
            "name": f"defaults, α ≤ {cap:g}, forward, no noise",
            "count": "solution",
            "count_over": "active",
            "max_alpha": cap,
            "central": False,
            "noise": None,
        }
        # Eighth session: the ceilings between 0.3 and 3, where the deterministic preset's optimum lies.
        for cap in (3.0, 0.5, 0.7, 1.5)
    ),
    # The preset made of the best of them (no noise, forward, α ≤ 1): the same numbers as that row.
    {"name": "controller='deterministic'", "controller": "deterministic", "count": "solution", "count_over": "active"},
    # Sixth session: what the deterministic preset lacks against PyEPO's AIMLE, one change at a time.
    {
        "name": "controller='deterministic', λ per batch",
        "controller": "deterministic",
        "count": "solution",
        "count_over": "active",
        "lam_scope": "batch",
    },
    *(
        {
            "name": f"defaults, α ≤ {cap:g}, forward, SoG(5), S = 10{label}",
            "count": "solution",
            "count_over": "active",
            "max_alpha": cap,
            "central": False,
            "noise": "sog",
            "samples": 10,
            **extra,
        }
        for cap, label, extra in (
            (1.0, "", {}),
            (3.0, "", {}),
            (10.0, "", {}),
            (100.0, " (the default ceiling)", {}),
            (0.3, "", {}),
            (1.0, ", λ per batch", {"lam_scope": "batch"}),
            (1.0, ", central", {"central": True}),
        )
    ),
    # Tenth session: the defaults with Sum-of-Gamma noise sized like a solution, κ = the mean number
    # of non-zero entries of the true solutions (8 arcs on the shortest path, 3.9 items on the
    # knapsack), and with PyEPO's κ = 5.
    {"name": "defaults, SoG(5)", "count": "solution", "count_over": "active", "noise": "sog"},
    {"name": "defaults, SoG(solution size)", "count": "solution", "count_over": "active", "noise": "sog-solution"},
]


def _noise(spec: Any, sense: str, solution_size: float | None = None) -> Any:
    """The noise of a configuration row; ``"sog-solution"`` needs the problem's mean solution size."""
    from benchmarks.vs_pyepo import CostSideNoise

    if spec == "sog":
        return dt.SumOfGamma(5)
    if spec == "sog-solution":
        if solution_size is None:
            raise ValueError("noise 'sog-solution' needs solution_size (non-zero entries of a MAP state)")
        return dt.SumOfGamma(solution_size)
    if spec == "normal":
        return dt.Normal()
    if spec == "gumbel":
        return dt.Gumbel()
    if spec == "gumbel+":  # +ε on the costs of a min problem: −ε in max form
        return CostSideNoise(dt.Gumbel()) if sense == "min" else dt.Gumbel()
    return spec  # None (no noise)


def pyepo_study(seeds=(0, 1, 2), epochs: int = 10, problems=("sp", "ks"), configs=None) -> list[dict]:
    """Test regret of each configuration on vs_pyepo's problems, with the exact fast solvers."""
    from benchmarks import vs_pyepo

    rows = []
    for name in problems:
        problem = vs_pyepo.make_problem(name)
        solution_size = float((problem.w != 0).sum(-1).float().mean())  # non-zero entries of a true solution
        for config in configs or PYEPO_CONFIGS:
            cfg = dict(config)
            if "noise" in cfg:
                cfg["noise"] = _noise(cfg["noise"], problem.sense, solution_size)
            regrets, times, curves = [], [], []
            for seed in seeds:
                state = vs_pyepo.initial_state(problem, seed)
                orders = vs_pyepo.batch_orders(problem.split, 32, epochs, seed)
                r = vs_pyepo.train(
                    problem,
                    lambda cfg=cfg, problem=problem: vs_pyepo._dt_layer_loss(make_aimle(problem.fast, cfg)),
                    state,
                    orders,
                    seed=seed,
                )
                regrets.append(r["regret"])
                times.append(r["epoch_s"])
                curves.append(r["regrets"])
            mean = statistics.mean(regrets)
            sd = statistics.stdev(regrets) if len(regrets) > 1 else 0.0
            curve = [statistics.mean(c[i] for c in curves) for i in range(epochs)]
            rows.append(
                {
                    "task": name,
                    "config": config["name"],
                    "regret": mean,
                    "sd": sd,
                    "regrets": regrets,
                    "curve": curve,
                    "epoch_s": statistics.mean(times),
                }
            )
            print(
                f"  {name} {config['name']:<66} regret {mean:.4f} ± {sd:.4f}  "
                f"(epoch 1: {curve[0]:.4f}, half: {curve[len(curve) // 2]:.4f})  {statistics.mean(times):.2f} s/epoch",
                flush=True,
            )
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    args = _parser().parse_args(argv)
    torch.set_num_threads(1)
    if args.study == "synthetic":
        seeds = 4 if args.quick else 16
        configs = [c for c in SYNTHETIC_CONFIGS if not args.only or c["name"] in args.only]
        rows = (imle_best(seeds=seeds) if not args.only else []) + synthetic_study(seeds=seeds, configs=configs)
    else:
        configs = [c for c in PYEPO_CONFIGS if not args.only or c["name"] in args.only]
        rows = pyepo_study(
            seeds=(0,) if args.quick else (0, 1, 2),
            epochs=3 if args.quick else 10,
            problems=tuple(args.problems),
            configs=configs,
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
