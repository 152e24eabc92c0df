"""Benchmark: solution caching (``difftools.cached``) on an ILP-backed knapsack, against solving every time.

Run ``python -m benchmarks.caching``. A linear model predicts the item values of 0/1 knapsacks
(the built-in ``"ilp"`` solver, OR-Tools SCIP) from features, trained with SPO+ and with AIMLE,
once with the real solver on every call (``solve_ratio=1``: the baseline) and once through
``cached(solver, solve_ratio=p)`` with the pool seeded by the training set's optimal solutions (as
Mulamba et al. do). The two arms train from the same initial weights on the same batches, their
epochs interleaved so that machine load hits both alike. Printed per estimator and seed (data,
initial weights, batch order and cache draws all follow the seed): solver calls (instances
reaching the solver) per epoch, the median epoch time, and the final normalised regret on
held-out data (solved exactly), each as a ratio of the baseline; then the mean regret ratio over
the seeds. ``--noise-band`` adds a second uncached arm trained on another batch order, whose
regret ratio to the baseline is the spread that training alone gives, with no caching.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from examples.common import HelpFormatter


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.caching", description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--train", type=int, default=200, help="training instances")
    parser.add_argument("--test", type=int, default=200, help="held-out instances (regret)")
    parser.add_argument("--items", type=int, default=20, help="knapsack items")
    parser.add_argument("--features", type=int, default=5, help="features per instance")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs per arm")
    parser.add_argument("--batch", type=int, default=32, help="mini-batch size")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate")
    parser.add_argument("--solve-ratio", type=float, default=0.05, help="share of calls the cached arm solves")
    parser.add_argument(
        "--estimators", nargs="+", default=["SPO+", "AIMLE"], choices=["SPO+", "AIMLE"], help="estimators to train"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="data, weights and batch-order seeds")
    parser.add_argument("--noise-band", action="store_true", help="add an uncached arm on another batch order")
    return parser


if __name__ == "__main__":  # --help and argument errors are answered before torch is imported
    _parser().parse_args()


import numpy as np
import torch
from difftools.solvers.ilp import ILP
from torch import nn

import difftools
from difftools import SolutionPool, cached


class Counting(difftools.SolverWrapper):
    """A transparent solver proxy that counts the instances it is asked to solve."""

    def __init__(self, inner):
        super().__init__(inner)
        self.instances = 0

    def solve_batch(self, theta: torch.Tensor, /, **context):
        self.instances += theta.reshape(-1, theta.shape[-1]).shape[0]
        return super().solve_batch(theta, **context)


def knapsack_data(num: int, features: int, items: int, seed: int, deg: int = 4, noise: float = 0.5):
    """PyEPO-style knapsack data: values = polynomial of a linear map of the features, times noise."""
    rng = np.random.default_rng(seed)
    mapping = rng.binomial(1, 0.5, (items, features))
    x = rng.normal(size=(num, features))
    values = ((x @ mapping.T) / np.sqrt(features) + 3) ** deg / 3.5**deg + 1
    values *= rng.uniform(1 - noise, 1 + noise, values.shape)
    return torch.from_numpy(x).float(), torch.from_numpy(values).float()


def regret(model: nn.Module, solver, x: torch.Tensor, values: torch.Tensor, optimal: torch.Tensor) -> float:
    with torch.no_grad():
        chosen = solver(model(x))
    return float(difftools.regret(chosen, values, optimal, sense="max"))


def make_step(kind: str, solver, model: nn.Module, seed: int):
    if kind == "SPO+":
        loss = difftools.SPOPlusLoss(solver)
        return lambda x, v, w: loss(model(x), v, solution=w)
    layer = difftools.AIMLE(solver, generator=torch.Generator().manual_seed(seed))
    # Decision loss: the value lost against the optimum, ⟨v, w⟩ − ⟨v, z⟩, whose gradient in z is −v.
    return lambda x, v, w: ((w - layer(model(x))) * v).sum(-1).mean()


def run(kind: str, args, seed: int, data) -> dict:
    x, values, solutions, x_test, values_test, optimal_test, ilp = data
    torch.manual_seed(seed)
    initial = nn.Linear(x.shape[1], values.shape[1])
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    plans = [("baseline", None, order), ("cached", args.solve_ratio, order)]
    if args.noise_band:
        # The same training, uncached, on another batch order: how far apart training alone lands.
        other = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed + 1000))
        plans.append(("reordered", None, other))
    arms = {}
    for name, ratio, batches in plans:
        counter = Counting(ilp)
        solver = counter
        if ratio is not None:
            draws = torch.Generator().manual_seed(seed + 1)
            solver = cached(counter, SolutionPool(solutions), solve_ratio=ratio, generator=draws)
        model = nn.Linear(x.shape[1], values.shape[1])
        model.load_state_dict(initial.state_dict())
        step = make_step(kind, solver, model, seed)
        optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
        arms[name] = dict(
            counter=counter, solver=solver, model=model, step=step, optimiser=optimiser, order=batches, times=[]
        )
    for _ in range(args.epochs):
        for arm in arms.values():  # interleaved: one epoch of each arm in turn
            start = time.perf_counter()
            for i in range(0, x.shape[0], args.batch):
                idx = arm["order"][i : i + args.batch]
                loss = arm["step"](x[idx], values[idx], solutions[idx])
                arm["optimiser"].zero_grad()
                loss.backward()
                arm["optimiser"].step()
            arm["times"].append(time.perf_counter() - start)
    out = {}
    for name, arm in arms.items():
        out[name] = dict(
            calls=arm["counter"].instances / args.epochs,
            epoch=statistics.median(arm["times"]),
            regret=regret(arm["model"], ilp, x_test, values_test, optimal_test),
        )
    return out


def task(args, seed: int):
    """The knapsack, training and test data of one seed (the test optima solved exactly)."""
    rng = np.random.default_rng(seed + 100)
    weights = rng.integers(3, 9, (1, args.items)).astype(float)
    ilp = ILP(A=weights, b=[0.5 * weights.sum()], sense="max")
    x, values = knapsack_data(args.train, args.features, args.items, seed)
    x_test, values_test = knapsack_data(args.test, args.features, args.items, seed + 1)
    return x, values, ilp(values), x_test, values_test, ilp(values_test), ilp


def main() -> None:
    args = _parser().parse_args()

    print(
        f"knapsack: {args.items} items, capacity half the total weight, OR-Tools SCIP; {args.train} train / "
        f"{args.test} test instances, batch {args.batch}, {args.epochs} epochs, solve_ratio={args.solve_ratio:g}"
    )
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}")
    band = f" {'reordered':>9}" if args.noise_band else ""
    print(
        f"{'estimator':<9} {'seed':>4} {'calls/epoch':>15} {'calls ratio':>11} {'epoch (s)':>16} {'speed-up':>8} "
        f"{'regret':>17} {'regret ratio':>12}{band}"
    )
    ratios: dict[str, list[float]] = {kind: [] for kind in args.estimators}
    for seed in args.seeds:
        data = task(args, seed)
        for kind in args.estimators:
            r = run(kind, args, seed, data)
            base, fast = r["baseline"], r["cached"]
            ratios[kind].append(fast["regret"] / base["regret"])
            other = f" {r['reordered']['regret'] / base['regret']:>9.3f}" if args.noise_band else ""
            print(
                f"{kind:<9} {seed:>4} {base['calls']:>6.0f} -> {fast['calls']:>5.0f} "
                f"{base['calls'] / max(fast['calls'], 1):>10.1f}x "
                f"{base['epoch']:>6.3f} -> {fast['epoch']:>6.3f} {base['epoch'] / fast['epoch']:>7.1f}x "
                f"{base['regret']:>7.4f} -> {fast['regret']:>6.4f} {ratios[kind][-1]:>12.3f}{other}",
                flush=True,
            )
    for kind, values in ratios.items():
        listed = ", ".join(f"{v:.3f}" for v in values)
        print(f"{kind}: regret ratio mean {statistics.mean(values):.3f} over seeds {args.seeds} ({listed})")
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
