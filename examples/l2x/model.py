"""L2X: an explainer picks k features (a k-hot mask z = TopK(θ(x))), an approximator predicts y from x ⊙ z.

Discrete methods (AIMLE, IMLE, STE) put a perturb-and-MAP layer over the ``topk`` solver between
the two networks; the relaxation baselines replace the mask in training by a continuous one:
L2X's own Gumbel top-k (k concrete samples, element-wise max; Chen et al. 2018) and SoftSub
(successive softmaxes over Gumbel keys; Xie & Ermon 2019). At test time every method explains
with the hard mask TopK(θ(x)), and subset precision is |selected ∩ relevant| / k.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from difftools import AIMLE, Gumbel, SumOfGamma, get_solver
from examples.common import Method, Row
from examples.l2x.data import Dataset

__all__ = ["Explainer", "Method", "evaluate", "make_selector", "methods", "train"]


def methods(lambdas: tuple[float, ...] = (1.0, 10.0, 100.0)) -> list[Method]:
    """AIMLE (forward, central; central with the fast controller, counting per entry or per solution; the
    noise-free ``controller="deterministic"`` preset), IMLE over λ, STE, L2X, SoftSub.

    Kinds ``"l2x"`` and ``"softsub"`` are this example's relaxations (see :func:`make_selector`).
    """
    out = [Method("AIMLE (forward)", "aimle"), Method("AIMLE (central)", "aimle", central=True),
           Method("AIMLE (central, fast)", "aimle", central=True, controller="fast"),
           Method("AIMLE (central, fast, c per solution)", "aimle", central=True, controller="fast", count="solution"),
           # The preset for training on a solver's decisions: what a noise-free default would give a sampler.
           Method("AIMLE (deterministic preset)", "aimle", controller="deterministic", count="solution",
                  perturbed=False)]
    out += [Method(f"IMLE ({d}, λ={lam:g})", "imle", central=d == "central", lam=lam) for lam in lambdas
            for d in ("forward", "central")]
    out += [Method("STE", "ste"), Method("L2X (Gumbel top-k)", "l2x"), Method("SoftSub", "softsub")]
    return out


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class _Relaxed(nn.Module):
    """Continuous k-subset masks ``[1, B, d]`` from Gumbel-perturbed logits, temperature t."""

    def __init__(self, k: int, kind: str, temperature: float, generator: torch.Generator):
        super().__init__()
        self.k, self.kind, self.temperature, self.generator = k, kind, temperature, generator

    def forward(self, theta: Tensor) -> Tensor:
        if self.kind == "l2x":  # k independent concrete samples, element-wise max
            g = Gumbel().sample((self.k, *theta.shape), generator=self.generator, dtype=theta.dtype)
            return torch.softmax((theta + g) / self.temperature, -1).amax(0).unsqueeze(0)
        keys = theta + Gumbel().sample(theta.shape, generator=self.generator, dtype=theta.dtype)
        mask = torch.zeros_like(theta)
        for _ in range(self.k):  # SoftSub: each step softly removes what the last one picked
            pick = torch.softmax(keys / self.temperature, -1)
            mask = mask + pick
            keys = keys + torch.log1p(-pick.clamp(max=1 - 1e-6))
        return mask.unsqueeze(0)


NOISES = ("gumbel", "sum-of-gamma")


def make_selector(
    method: Method, k: int, generator: torch.Generator, temperature: float, noise: str = "gumbel"
) -> nn.Module:
    """θ ``[B, d]`` -> training mask ``[1, B, d]`` with the method's gradient.

    ``noise`` perturbs the perturb-and-MAP methods: ``"gumbel"`` (Gumbel(0, 1) on every entry) or
    ``"sum-of-gamma"`` (SoG(k), whose sum over a k-subset is one Gumbel: I-MLE's choice for
    k-subsets); the relaxations always use their own Gumbel keys.
    """
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {', '.join(NOISES)}, got {noise!r}")
    if method.kind in ("l2x", "softsub"):
        return _Relaxed(k, method.kind, temperature, generator)
    perturbation = Gumbel() if noise == "gumbel" else SumOfGamma(k)
    return method.estimator(get_solver("topk", k=k), noise=perturbation, generator=generator)


class Explainer(nn.Module):
    """Selector logits θ(x) and the approximator's class logits on x ⊙ z (MLPs, hidden 100 and 200)."""

    def __init__(self, dim: int = 10):
        super().__init__()
        self.selector = _mlp([dim, 100, 100, dim])
        self.approximator = _mlp([dim, 200, 200, 2])


def _cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    return -(y * torch.log_softmax(logits, -1)).sum(-1).mean()


@torch.no_grad()
def evaluate(model: Explainer, data: Dataset) -> dict[str, float]:
    """Test metrics with the hard mask TopK(θ(x)): subset precision (%), cross-entropy, post-hoc accuracy (%)."""
    x, y, relevant = (torch.from_numpy(a) for a in (data.x, data.y, data.relevant))
    z = get_solver("topk", k=data.k)(model.selector(x))
    logits = model.approximator(x * z)
    return {
        "precision": 100.0 * ((z * relevant).sum(-1) / data.k).mean().item(),
        "cross_entropy": _cross_entropy(logits, y).item(),
        "accuracy": 100.0 * (logits.argmax(-1) == y.argmax(-1)).float().mean().item(),
    }


def train(
    method: Method, name: str, splits: tuple[Dataset, Dataset, Dataset], *, epochs: int, seed: int,
    batch_size: int = 100, lr: float = 1e-3, temperature: float = 0.5, noise: str = "gumbel", progress: Any = None,
) -> Row:
    """Train explainer and approximator jointly (Adam); the row holds validation and test metrics."""
    torch.manual_seed(seed)
    train_set, val_set, test_set = splits
    model = Explainer(train_set.x.shape[1])
    selector = make_selector(method, train_set.k, torch.Generator().manual_seed(seed + 1), temperature, noise)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    x, y = torch.from_numpy(train_set.x), torch.from_numpy(train_set.y)
    order = torch.Generator().manual_seed(seed + 2)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=order).split(batch_size):
            mask = selector(model.selector(x[idx]))  # [1, B, d]
            loss = _cross_entropy(model.approximator(x[idx] * mask), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if progress is not None:
            progress.update(1)
    val, test = evaluate(model, val_set), evaluate(model, test_set)
    row = dict(dataset=name, k=train_set.k, method=method.name, seed=seed, val_cross_entropy=val["cross_entropy"],
               **{f"test_{m}": v for m, v in test.items()})
    if isinstance(selector, AIMLE):
        row["alpha"] = selector.alpha.item()
    return row


