"""difftools against PyEPO on PyEPO's own benchmarks: same data, initial state, optimiser and batch order.

Shortest path on PyEPO's 5×5 grid (40 arcs) and a 2-dimensional 0-1 knapsack, data from PyEPO's
``genData``; each method is trained once with PyEPO's implementation and once with difftools',
from one shared initial ``Linear`` state, with Adam and the same mini-batch order, and scored by
normalised regret on the held-out half::

    python -m benchmarks.vs_pyepo                      # both problems, 3 seeds, 10 epochs: ~20 min, one core
    python -m benchmarks.vs_pyepo --problem sp --seeds 0
    python -m benchmarks.vs_pyepo --tiny               # a CI smoke run: seconds

The solver is PyEPO's own OR-Tools model (GLOP for the shortest-path LP), called by PyEPO's
methods as an ``optModel`` and by difftools' as a registered solver (:func:`ortools_solver`).
The knapsack has 16 items instead of PyEPO's usual 32 so that an exact enumeration of the
feasible subsets (:class:`EnumKnapsackModel`, checked against PyEPO's OR-Tools SCIP model in
``tests/test_bench_vs_pyepo.py``) can solve it at the speed of the shortest-path LP; both
libraries call the same enumeration. Evaluation uses the exact batched solvers
(:class:`GridShortestPath`, the enumeration), equal to OR-Tools' optima up to ties.

PyEPO is an optional dependency (``pip install 'difftools[bench]'``); nothing here downloads data.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from examples.common import HelpFormatter


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.vs_pyepo", description=__doc__.splitlines()[0], formatter_class=HelpFormatter
    )
    parser.add_argument("--problem", choices=["sp", "ks", "both"], default="both", help="sp, ks or both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="initial states and batch orders")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per run")
    parser.add_argument("--batch", type=int, default=32, help="mini-batch size")
    parser.add_argument("--methods", nargs="*", help="only these method names (e.g. SPO+ DBB; default: all)")
    parser.add_argument("--tiny", action="store_true", help="200 instances, 1 seed, 1 epoch: a smoke run")
    return parser


if __name__ == "__main__":  # --help and argument errors are answered before torch and PyEPO are imported
    _parser().parse_args()

import numpy as np
import torch
from torch import Tensor, nn

import difftools as dt
from difftools.estimators import FastRule

try:  # PyEPO is optional: the module imports without it, and main() says how to get it.
    import pyepo
    from pyepo import EPO
    from pyepo.model.opt import optModel
except ImportError:  # pragma: no cover - exercised only without the extra
    pyepo = None
    EPO = None
    optModel = object  # type: ignore[assignment,misc]  # noqa: N816 (PyEPO's name)

__all__ = [
    "Problem",
    "GridShortestPath",
    "EnumKnapsackModel",
    "make_problem",
    "ortools_solver",
    "method_table",
    "train",
    "main",
]


def _require_pyepo() -> None:
    if pyepo is None:
        raise ImportError("benchmarks.vs_pyepo needs PyEPO: pip install 'difftools[bench]' (or pip install pyepo)")


# ------------------------------------------------------------------------------------------ solvers
class GridShortestPath:
    """Exact batched shortest path on PyEPO's grid DAG (arcs go right or down): dynamic programming.

    ``arcs`` is PyEPO's arc list ``[(u, v), ...]`` (its order is the order of the cost vector),
    source node 0, sink the last node. Costs may be negative (perturbed costs are): the graph is
    acyclic, so the recursion is exact for any costs. Returns 0/1 arc indicators ``[N, arcs]``.
    """

    def __init__(self, arcs: list[tuple[int, int]]):
        self.arcs = [tuple(map(int, a)) for a in arcs]
        self.nodes = 1 + max(v for _, v in self.arcs)
        if any(v <= u for u, v in self.arcs):
            raise ValueError("GridShortestPath: arcs must go from a lower to a higher node (a grid DAG)")
        self.incoming = [[(a, u) for a, (u, w) in enumerate(self.arcs) if w == v] for v in range(self.nodes)]
        self.source = torch.tensor([u for u, _ in self.arcs])
        # The longest source-sink path in a grid has (rows − 1) + (cols − 1) arcs: bounded by nodes − 1.
        self.max_len = self.nodes - 1

    def __call__(self, cost: Tensor) -> Tensor:
        n = cost.shape[0]
        dist = cost.new_zeros(n, self.nodes)
        pred = torch.zeros(n, self.nodes, dtype=torch.long)
        for v in range(1, self.nodes):
            arcs, srcs = zip(*self.incoming[v])
            cand = dist[:, list(srcs)] + cost[:, list(arcs)]
            best, which = cand.min(1)
            dist[:, v] = best
            pred[:, v] = torch.tensor(arcs)[which]
        sol = torch.zeros_like(cost)
        node = torch.full((n,), self.nodes - 1, dtype=torch.long)
        rows = torch.arange(n)
        for _ in range(self.max_len):
            active = node > 0
            if not bool(active.any()):
                break
            arc = pred[rows, node]
            sol[rows[active], arc[active]] = 1.0
            node = torch.where(active, self.source[arc], node)
        return sol


class EnumKnapsackModel(optModel):  # type: ignore[misc,valid-type]
    """A 0-1 multi-dimensional knapsack (maximise value) solved exactly by enumerating feasible subsets.

    A PyEPO ``optModel`` (so PyEPO's methods can call it) that is also a batched torch solver
    (``model.solve_batch(values)``, used by difftools). ``weights`` ``[dim, items]``, ``capacity``
    ``[dim]``; items ≤ 20 (2^items subsets are screened once, at construction).
    """

    def __init__(self, weights: np.ndarray, capacity: list[float] | np.ndarray):
        weights = np.asarray(weights, dtype=np.float64)
        items = weights.shape[1]
        if items > 20:
            raise ValueError(f"EnumKnapsackModel: at most 20 items can be enumerated, got {items}")
        self.weights, self.capacity = weights, np.asarray(capacity, dtype=np.float64)
        masks = ((np.arange(2**items)[:, None] >> np.arange(items)) & 1).astype(np.float64)
        feasible = masks[np.all(masks @ weights.T <= self.capacity + 1e-9, axis=1)]
        self.subsets = feasible
        self.subsets_t = torch.from_numpy(feasible).float()
        self._c: np.ndarray | None = None
        super().__init__()
        self.modelSense = EPO.MAXIMIZE

    def _getModel(self) -> tuple:  # noqa: N802 (PyEPO's API)
        return None, list(range(self.weights.shape[1]))

    def setObj(self, c) -> None:  # noqa: N802 (PyEPO's API)
        self._c = np.asarray(c, dtype=np.float64).reshape(-1)

    def solve(self) -> tuple[np.ndarray, float]:
        values = self.subsets @ self._c
        best = int(np.argmax(values))
        return self.subsets[best].copy(), float(values[best])

    def solve_batch(self, values: Tensor) -> Tensor:
        subsets = self.subsets_t.to(values.dtype)
        return subsets[(values @ subsets.T).argmax(1)]

    def copy(self) -> EnumKnapsackModel:
        return EnumKnapsackModel(self.weights, self.capacity)

    def __repr__(self) -> str:
        items, dim = self.weights.shape[1], self.weights.shape[0]
        return f"EnumKnapsackModel(items={items}, dim={dim}, feasible={len(self.subsets)})"


def ortools_solver(model: Any, name: str) -> dt.BlackBoxSolver:
    """A PyEPO ``optModel`` as a difftools solver: one ``setObj`` / ``solve`` per instance, PyEPO's sense."""
    sense = "min" if model.modelSense == EPO.MINIMIZE else "max"

    def solve(theta: np.ndarray) -> np.ndarray:
        out = np.empty_like(theta)
        for i, c in enumerate(theta):
            model.setObj(c)
            out[i] = np.asarray(model.solve()[0])
        return out

    return dt.solver(solve, sense=sense, batched=True, backend="numpy", name=name)


# ------------------------------------------------------------------------------------------ problems
@dataclass
class Problem:
    """One benchmark problem: features, true costs, optimal solutions and objectives, and its solvers."""

    name: str
    sense: str
    x: Tensor
    c: Tensor
    w: Tensor
    z: Tensor
    optmodel: Any  # what PyEPO's methods call
    solver: dt.BlackBoxSolver  # the same model, for difftools
    fast: dt.BlackBoxSolver  # an exact batched solver (evaluation, and the AIMLE study)
    split: int = 1000
    info: dict = field(default_factory=dict)

    @property
    def num_costs(self) -> int:
        return self.c.shape[1]


def make_problem(name: str, *, num_data: int = 2000, split: int | None = None, data_seed: int = 135) -> Problem:
    """PyEPO's ``genData`` for ``"sp"`` (5×5 grid, 40 arcs) or ``"ks"`` (16 items, 2 dims, capacity 20)."""
    _require_pyepo()
    split = num_data // 2 if split is None else split
    if name == "sp":
        x, c = pyepo.data.shortestpath.genData(
            num_data=num_data, num_features=5, grid=(5, 5), deg=4, noise_width=0.5, seed=data_seed
        )
        optmodel = pyepo.model.ort.shortestPathModel((5, 5))
        dp = GridShortestPath(optmodel.arcs)
        fast = dt.solver(dp, sense="min", batched=True, backend="torch", name="grid_dp")
        info = {"arcs": len(optmodel.arcs), "solver": "OR-Tools GLOP (PyEPO shortestPathModel)"}
    elif name == "ks":
        weights, x, c = pyepo.data.knapsack.genData(
            num_data=num_data, num_features=5, num_items=16, dim=2, deg=4, noise_width=0.5, seed=data_seed
        )
        optmodel = EnumKnapsackModel(weights, [20.0, 20.0])
        fast = dt.solver(optmodel.solve_batch, sense="max", batched=True, backend="torch", name="knapsack_enum")
        info = {"items": 16, "feasible_subsets": len(optmodel.subsets), "solver": "exact enumeration (optModel)"}
    else:
        raise ValueError(f"make_problem: name must be 'sp' or 'ks', got {name!r}")
    x_t, c_t = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(c, dtype=torch.float32)
    solver = ortools_solver(optmodel, f"pyepo_{name}") if name == "sp" else fast
    w = fast(c_t)
    z = (w * c_t).sum(1, keepdim=True)
    sense = "min" if name == "sp" else "max"
    return Problem(name, sense, x_t, c_t, w, z, optmodel, solver, fast, split, info)


def normalised_regret(problem: Problem, cost_hat: Tensor, idx: slice) -> float:
    """PyEPO's normalised regret: Σ |⟨c, w(ĉ)⟩ − z*| / Σ |z*| over the instances in ``idx``."""
    c, z = problem.c[idx], problem.z[idx, 0]
    w_hat = problem.fast(cost_hat.detach())
    value = (w_hat * c).sum(1)
    gap = value - z if problem.sense == "min" else z - value
    return float(gap.sum() / z.abs().sum())


# ------------------------------------------------------------------------------------------ methods
# A method turns (predicted costs, true costs, true solutions, true objectives) into a loss.
LossFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
_l1 = nn.L1Loss()


def _objective_l1(w_hat: Tensor, c: Tensor, z: Tensor) -> Tensor:
    """PyEPO's task loss for solution-returning layers: |⟨c, ŵ⟩ − z*|, batch mean."""
    return _l1((w_hat * c).sum(1, keepdim=True), z)


def _pyepo_layer_loss(layer: Any) -> LossFn:
    return lambda cp, c, w, z: _objective_l1(layer(cp), c, z)


def _dt_layer_loss(layer: nn.Module) -> LossFn:
    def loss(cp, c, w, z):
        out = layer(cp)
        if getattr(layer, "samples", None) is not None:
            out = out.mean(0)  # [S, B, n] → the Monte-Carlo mean, PyEPO's smoothed solution
        return _objective_l1(out, c, z)

    return loss


def pyepo_methods(problem: Problem) -> dict[str, Callable[[], LossFn]]:
    """PyEPO's implementations with its documented defaults (n_samples 10, σ 1, SoG κ 5, λ 10)."""
    m = problem.optmodel
    f = pyepo.func
    return {
        "SPO+": lambda: (lambda spop: lambda cp, c, w, z: spop(cp, c, w, z))(f.SPOPlus(m)),
        "DBB": lambda: _pyepo_layer_loss(f.blackboxOpt(m, lambd=10)),
        "PFY": lambda: (lambda pfy: lambda cp, c, w, z: pfy(cp, w))(
            f.perturbedFenchelYoung(m, n_samples=10, sigma=1.0)
        ),
        "I-MLE": lambda: _pyepo_layer_loss(f.implicitMLE(m, n_samples=10, sigma=1.0, lambd=10)),
        "AIMLE": lambda: _pyepo_layer_loss(f.adaptiveImplicitMLE(m, n_samples=10, sigma=1.0)),
    }


class CostSideNoise(dt.Noise):
    """The negated noise: on a ``"min"`` solver, ``+ε`` on the costs, the sign PyEPO perturbs with.

    difftools perturbs the max-form parameter −c, i.e. the costs by −ε; for a skewed noise
    (Gumbel, Sum-of-Gamma) the sign changes the distribution of the perturbed problem.
    """

    def __init__(self, base: dt.Noise):
        self.base = base

    def _sample(self, shape, generator, device, dtype):
        return -self.base._sample(shape, generator, device, dtype)

    def __repr__(self) -> str:
        return f"CostSideNoise({self.base!r})"


def aimle_matched(solver: Any, sense: str, **overrides: Any) -> dt.AIMLE:
    """difftools' AIMLE set up like PyEPO's: 10 samples, Sum-of-Gamma κ = 5, forward, α₀ = 1, λ per batch."""
    kwargs: dict[str, Any] = dict(
        samples=10,
        noise=dt.SumOfGamma(5),
        central=False,
        controller="paper",
        initial_alpha=1.0,
        step=1e-3,
        lam_scope="batch",
    )
    kwargs.update(overrides)
    return dt.AIMLE(solver, **kwargs)


def dt_methods(problem: Problem, solver: Any | None = None) -> dict[str, Callable[[], LossFn]]:
    """difftools' implementations, with the same settings as :func:`pyepo_methods` where both have them."""
    s = problem.solver if solver is None else solver
    sense = problem.sense
    return {
        "SPO+": lambda: (lambda spop: lambda cp, c, w, z: spop(cp, c, solution=w))(dt.SPOPlusLoss(s)),
        "DBB": lambda: _dt_layer_loss(dt.Blackbox(s, lam=10)),
        "PFY": lambda: (lambda fy: lambda cp, c, w, z: fy(cp, w))(
            dt.FenchelYoungLoss(dt.Perturbed(s, noise_temperature=1.0, samples=10))
        ),
        "I-MLE": lambda: _dt_layer_loss(dt.IMLE(s, lam=10, samples=10, noise=dt.SumOfGamma(5), central=False)),
        "AIMLE (defaults)": lambda: _dt_layer_loss(dt.AIMLE(s)),
        "AIMLE (defaults, samples=10)": lambda: _dt_layer_loss(dt.AIMLE(s, samples=10)),
        "AIMLE (deterministic)": lambda: _dt_layer_loss(dt.AIMLE(s, controller="deterministic")),
        # The study's best for a linear model trained on a solver's decisions (docs/aimle-defaults.md):
        # PyEPO's noise and sample count, the fast rule with α ≤ 10, λ per example.
        "AIMLE (S = 10, SoG, forward, α ≤ 10)": lambda: _dt_layer_loss(
            dt.AIMLE(s, controller=FastRule(max_alpha=10.0), central=False, noise=dt.SumOfGamma(5), samples=10)
        ),
        "AIMLE (PyEPO-matched)": lambda: _dt_layer_loss(aimle_matched(s, sense)),
        "AIMLE (PyEPO-matched, +ε on costs)": lambda: _dt_layer_loss(
            aimle_matched(s, sense, noise=CostSideNoise(dt.SumOfGamma(5)) if sense == "min" else dt.SumOfGamma(5))
        ),
    }


def method_table(problem: Problem) -> list[tuple[str, str, Callable[[], LossFn]]]:
    """(library, method, factory) rows in the order they are printed."""
    rows = [("PyEPO", k, v) for k, v in pyepo_methods(problem).items()]
    rows += [("difftools", k, v) for k, v in dt_methods(problem).items()]
    order = {"SPO+": 0, "DBB": 1, "PFY": 2, "I-MLE": 3}
    return sorted(rows, key=lambda r: (order.get(r[1], 4), r[0] != "PyEPO"))


# ------------------------------------------------------------------------------------------ training
def batch_orders(train: int, batch: int, epochs: int, seed: int) -> list[list[Tensor]]:
    """The mini-batch index lists of every epoch: one seeded permutation per epoch, shared by both libraries."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    return [list(torch.randperm(train, generator=gen).split(batch)) for _ in range(epochs)]


def initial_state(problem: Problem, seed: int) -> dict[str, Tensor]:
    torch.manual_seed(seed)
    return copy.deepcopy(nn.Linear(problem.x.shape[1], problem.num_costs).state_dict())


def train(
    problem: Problem,
    make_loss: Callable[[], LossFn],
    state: dict[str, Tensor],
    orders: list[list[Tensor]],
    *,
    lr: float = 1e-2,
    seed: int = 0,
) -> dict[str, Any]:
    """Adam on ``Linear(features, costs)`` from ``state`` over the given batches; test regret per epoch."""
    model = nn.Linear(problem.x.shape[1], problem.num_costs)
    model.load_state_dict(state)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    torch.manual_seed(20_000 + seed)  # the noise of any layer drawing from torch's global generator
    loss_fn = make_loss()
    x, c, w, z = problem.x, problem.c, problem.w, problem.z
    test = slice(problem.split, None)
    regrets, times, losses = [], [], []
    for order in orders:
        start, total = time.perf_counter(), 0.0
        for idx in order:
            cp = model(x[idx])
            loss = loss_fn(cp, c[idx], w[idx], z[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        times.append(time.perf_counter() - start)
        losses.append(total / len(order))
        with torch.no_grad():
            regrets.append(normalised_regret(problem, model(x[test]), test))
    return {"regret": regrets[-1], "regrets": regrets, "epoch_s": statistics.mean(times), "losses": losses}


def run(problem: Problem, seeds: list[int], epochs: int, batch: int, methods: list[str] | None = None) -> list[dict]:
    rows = []
    train_n = problem.split
    for seed in seeds:
        state = initial_state(problem, seed)
        orders = batch_orders(train_n, batch, epochs, seed)
        for lib, name, factory in method_table(problem):
            if methods and name not in methods:
                continue
            r = train(problem, factory, state, orders, seed=seed)
            rows.append({"problem": problem.name, "library": lib, "method": name, "seed": seed, **r})
            print(
                f"  {problem.name} seed {seed} {lib:>9} {name:<36} regret {r['regret']:.4f}  "
                f"epoch {r['epoch_s']:.2f} s",
                flush=True,
            )
    return rows


def summarise(rows: list[dict]) -> str:
    """A markdown table: mean ± sd regret over seeds and mean epoch time, PyEPO beside difftools."""
    lines = [
        "| problem | method | PyEPO regret | difftools regret | PyEPO s/epoch | difftools s/epoch |",
        "|---|---|---|---|---|---|",
    ]
    key = lambda r: (r["problem"], r["method"])  # noqa: E731
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in rows:
        groups.setdefault(key(r), {}).setdefault(r["library"], []).append(r)

    def cell(rs: list[dict] | None, what: str) -> str:
        if not rs:
            return "—"
        vals = [r[what] for r in rs]
        if what == "epoch_s":
            return f"{statistics.mean(vals):.2f}"
        sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
        return f"{statistics.mean(vals):.4f} ± {sd:.4f}"

    for (prob, method), libs in groups.items():
        lines.append(
            f"| {prob} | {method} | {cell(libs.get('PyEPO'), 'regret')} | {cell(libs.get('difftools'), 'regret')}"
            f" | {cell(libs.get('PyEPO'), 'epoch_s')} | {cell(libs.get('difftools'), 'epoch_s')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    args = _parser().parse_args(argv)
    _require_pyepo()
    num_data, seeds, epochs = (200, args.seeds[:1], 1) if args.tiny else (2000, args.seeds, args.epochs)
    torch.set_num_threads(1)
    print(
        f"difftools {dt.__version__} vs PyEPO {pyepo.__version__}, torch {torch.__version__}, 1 thread; "
        f"{num_data} instances (half train, half test), seeds {seeds}, {epochs} epochs, batch {args.batch}"
    )
    rows = []
    for name in ["sp", "ks"] if args.problem == "both" else [args.problem]:
        problem = make_problem(name, num_data=num_data)
        print(f"{name}: {problem.info}")
        rows += run(problem, seeds, epochs, args.batch, args.methods)
    print(summarise(rows))
    return rows


if __name__ == "__main__":
    main()
