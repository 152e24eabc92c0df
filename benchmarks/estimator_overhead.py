"""Overhead of the AIMLE layer against the same computation written by hand, in one process.

AIMLE (central differences) around ``topk``: one forward plus one backward pass. The baseline
does the same arithmetic without the library: Gumbel noise, the forward top-k, λ from Eq. 8, the
two top-k calls of the central difference, the gradient, and the Eq. 9-10 controller update.
The ratio library / hand-written tells what the library's plumbing costs (1.0 = nothing); the
"lean" baseline is the library's own arithmetic written by hand (both ends in one top-k call, no
mean over one sample, the active pairs from Eq. 8's norms), so library / lean is the layer's cost
alone, with nothing the library does better counted in its favour; the "floor" runs the
hand-written step inside a minimal ``torch.autograd.Function``, what any layer costs on top of its
arithmetic (``tests/test_bench_estimator_overhead.py`` checks that both baselines give the layer's
gradient and α)::

    python -m benchmarks.estimator_overhead               # CPU
    python -m benchmarks.estimator_overhead --device cuda
    python -m benchmarks.estimator_overhead --quick       # fewer repeats

Times are the median of interleaved rounds (library and baseline alternate, so both see the
same machine load). ``--controller paper`` compares Eq. 10 instead of the default rule; the small
case (B = 64, n = 100, k = 5) shows the fixed cost per step, the large ones the arithmetic.
"""

from __future__ import annotations

import argparse

from examples.common import HelpFormatter


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.estimator_overhead",
        description=__doc__.splitlines()[0],
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--small-only", action="store_true", help="only the B=64 and B=256 cases")
    parser.add_argument("--controller", choices=["fast", "paper"], default="fast", help="the α rule timed")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 9; 3 with --quick)")
    return parser


if __name__ == "__main__":  # --help and argument errors are answered before torch is imported
    _parser().parse_args()


import torch

import difftools as dt
from benchmarks.timing import interleaved_medians


def _topk_onehot(x: torch.Tensor, k: int) -> torch.Tensor:
    return torch.zeros_like(x).scatter_(-1, torch.topk(x, k, dim=-1, sorted=False).indices, 1.0)


class HandWritten:
    """Central-difference AIMLE written out by hand: what the library should cost at most.

    It counts like the library's defaults (per solution, over the pairs with a non-zero ∇f).

    ``controller``: ``"fast"`` (the default rule, log-space update of α from the batch count) or
    ``"paper"`` (Eq. 10), the same rule the library layer it is compared with runs.
    """

    def __init__(self, k: int, samples: int, device: str, controller: str = "fast"):
        self.k, self.samples, self.controller = k, samples, controller
        self.alpha = torch.tensor(0.5, device=device)
        self.ema = torch.tensor(1.0, device=device)

    def noise(self, theta: torch.Tensor) -> torch.Tensor:
        u = torch.rand((self.samples, *theta.shape), device=theta.device)
        return u.clamp_min_(torch.finfo(u.dtype).tiny).log_().neg_().log_().neg_()  # Gumbel(0, 1)

    def step(self, theta: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
        base = theta + self.noise(theta)
        return self.backward(theta, base, _topk_onehot(base, self.k), dy)

    def backward(self, theta: torch.Tensor, base: torch.Tensor, z: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
        """The gradient and the controller update, from the perturbed point ``base`` = θ + ε and its MAP z."""
        s = self.samples
        grad_f = dy * s
        ratio = theta.norm(dim=-1, keepdim=True) / grad_f.norm(dim=-1, keepdim=True)
        lam = self.alpha * ratio.mean(0, keepdim=True)
        plus = _topk_onehot(base + lam * grad_f, self.k)
        minus = _topk_onehot(base - lam * grad_f, self.k)
        diff = plus - minus
        grad = (diff / (2 * lam)).mean(0)
        # The count of the library's default (count="solution", count_over="active"): changed
        # entries per entry of the forward solution, averaged over the pairs with ∇f ≠ 0.
        changed = (diff != 0).sum(-1) / (z != 0).sum(-1).clamp_min(1)
        active = (grad_f != 0).any(-1).sum().clamp_min(1)
        self.update(changed.sum() / active)
        return grad

    def update(self, nnz: torch.Tensor) -> None:
        """Eq. 9 and the rule's α update from this step's mean count."""
        self.ema = 0.9 * self.ema + 0.1 * nnz
        if self.controller == "fast":
            self.alpha = self.alpha.clamp_min(1e-3) * torch.exp(0.5 * (1.0 - nnz).clamp(-1.0, 1.0))
        else:
            self.alpha = (self.alpha + torch.where(self.ema <= 1.0, 1e-3, -1e-3)).clamp_min(0.0)


class LeanHandWritten(HandWritten):
    """The library's own arithmetic written out, without its checks and plumbing: the strictest baseline.

    Both ends of the central difference in one top-k call (one ``addcmul`` writes them), the
    gradient as the difference times 1/(2λ) with no mean over a single sample, the active pairs
    counted from Eq. 8's norms. Its float32 norms are what a hand-written step would take (the
    library's are float64, which costs it a little). Against this baseline the ratio is the
    layer's own cost; against :class:`HandWritten` it also counts what the library does better.
    """

    def __init__(self, k: int, samples: int, device: str, controller: str = "fast"):
        super().__init__(k, samples, device, controller)
        self.signs = torch.tensor([1.0, -1.0], device=device).view(2, 1, 1, 1)

    def backward(self, theta: torch.Tensor, base: torch.Tensor, z: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
        s = self.samples
        grad_f = dy * s if s > 1 else dy
        grad_norm = grad_f.norm(dim=-1, keepdim=True)
        ratio = theta.norm(dim=-1, keepdim=True) / grad_norm
        lam = self.alpha * (ratio if s == 1 else ratio.mean(0, keepdim=True))
        ends = _topk_onehot(torch.addcmul(base, self.signs, lam * grad_f).flatten(0, 1), self.k)
        diff = ends[:s] - ends[s:]
        changed = diff.bool().sum(-1) / z.bool().sum(-1).clamp_min(1)
        self.update(changed.sum() / torch.count_nonzero(grad_norm).clamp_min(1))
        grad = diff * lam.reciprocal().mul_(0.5)
        return grad.squeeze(0) if s == 1 else grad.mean(0)


class _HandWrittenFunction(torch.autograd.Function):
    """:class:`HandWritten` split into a forward and a backward inside the leanest autograd Function.

    What any PyTorch layer pays on top of the arithmetic (building the graph node, the engine, the
    gradient accumulation into ``θ.grad``): the floor of the library's ratio.
    """

    @staticmethod
    def forward(ctx, theta: torch.Tensor, hand: HandWritten) -> torch.Tensor:
        eps = hand.noise(theta)
        base = theta + eps
        z = _topk_onehot(base, hand.k)
        ctx.hand = hand
        ctx.save_for_backward(theta, base, z)
        return z

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        theta, base, z = ctx.saved_tensors
        return ctx.hand.backward(theta, base, z, dy), None


def measure(
    batch: int, n: int, k: int, samples: int, device: str, rounds: int, inner: int, controller: str = "fast"
) -> dict:
    torch.manual_seed(0)
    theta = torch.randn(batch, n, device=device)
    dy = torch.randn(samples, batch, n, device=device) / samples
    layers = {
        # check_finite=True (the default) costs two host synchronisations per forward+backward on a GPU.
        check: dt.AIMLE(
            dt.get_solver("topk", k=k),
            samples=samples,
            central=True,
            initial_alpha=0.5,
            controller=controller,
            check_finite=check,
        ).to(device)
        for check in (True, False)
    }
    hand = HandWritten(k, samples, device, controller)
    lean = LeanHandWritten(k, samples, device, controller)
    floor_hand = HandWritten(k, samples, device, controller)
    leaf = theta.clone().requires_grad_(True)
    floor_leaf = theta.clone().requires_grad_(True)

    def library(check: bool):
        def run():
            leaf.grad = None
            layers[check](leaf).backward(dy)

        return run

    def baseline():
        hand.step(theta, dy)

    def lean_baseline():
        lean.step(theta, dy)

    def autograd_floor():
        floor_leaf.grad = None
        _HandWrittenFunction.apply(floor_leaf, floor_hand).backward(dy)

    fns = {
        "library": library(True),
        "library_unchecked": library(False),
        "baseline": baseline,
        "lean_baseline": lean_baseline,
        "autograd_floor": autograd_floor,
    }
    medians = interleaved_medians(fns, rounds, inner, device, warmup=3)
    lib, unchecked, base, lean_base, floor = (medians[name] for name in fns)
    return {
        "library_ms": 1e3 * lib,
        "unchecked_ms": 1e3 * unchecked,
        "baseline_ms": 1e3 * base,
        "lean_ms": 1e3 * lean_base,
        "floor_ms": 1e3 * floor,
        "ratio": lib / base,
        "unchecked_ratio": unchecked / base,
        "lean_ratio": lib / lean_base,
        "floor_ratio": floor / base,
    }


CASES = [(64, 100, 5), (256, 1000, 10), (1024, 10000, 100)]


def main(argv: list[str] | None = None) -> list[dict]:
    args = _parser().parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 9)
    cases = CASES[:2] if args.small_only else CASES
    print(
        f"AIMLE (central, controller={args.controller!r}) + topk, forward+backward; device={args.device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {rounds} interleaved rounds"
    )
    print("library = AIMLE(check_finite=True), the default; unchecked = check_finite=False;")
    print("floor = the hand-written step inside a minimal torch.autograd.Function (what any layer pays);")
    print("lean = the library's arithmetic written by hand (one top-k call for both ends); lean ratio = library / lean")
    print(
        f"{'B':>5} {'n':>6} {'k':>4} {'S':>3} {'library ms':>11} {'unchecked ms':>13} {'by hand ms':>11} "
        f"{'lean ms':>8} {'floor ms':>9} {'ratio':>6} {'unchecked ratio':>16} {'lean ratio':>11} {'floor ratio':>12}"
    )
    rows = []
    for batch, n, k in cases:
        for samples in (1,) if n <= 100 else (1, 10):
            inner = max(1, 2_000_000 // (samples * batch * n))  # repeat small cases to time them reliably
            r = measure(batch, n, k, samples, args.device, rounds, inner, args.controller)
            rows.append({"B": batch, "n": n, "k": k, "S": samples, **r})
            print(
                f"{batch:>5} {n:>6} {k:>4} {samples:>3} {r['library_ms']:>11.3f} {r['unchecked_ms']:>13.3f} "
                f"{r['baseline_ms']:>11.3f} {r['lean_ms']:>8.3f} {r['floor_ms']:>9.3f} {r['ratio']:>6.2f} "
                f"{r['unchecked_ratio']:>16.2f} {r['lean_ratio']:>11.2f} {r['floor_ratio']:>12.2f}"
            )
    return rows


if __name__ == "__main__":
    main()
