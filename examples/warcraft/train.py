"""Training and evaluation of the Warcraft shortest-path model (the papers' recipe).

A CombResNet18 maps an image to cell costs θ, a differentiable layer (AIMLE, I-MLE, Blackbox, ...)
wrapping the registered ``"grid_shortest_path"`` solver turns θ into a path, and the Hamming loss
compares it with the label. Checkpoints hold only tensors and primitive containers (loadable with
``torch.load(weights_only=True)``) and ``--resume`` continues exactly: each epoch's data order and
noise are seeded from (seed, epoch), and the model, optimiser, scheduler, estimator buffers and
RNG states are restored. The command line lives in :mod:`examples.warcraft.__main__`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

import difftools
from examples.warcraft.data import WarcraftSplit, channel_statistics, load_split
from examples.warcraft.metrics import warcraft_metrics
from examples.warcraft.model import CombResNet18
from solvers.grid_shortest_path import dijkstra

__all__ = [
    "METHODS",
    "TrainConfig",
    "TimedSolver",
    "build_solver",
    "build_method",
    "hamming_loss",
    "train",
    "load_checkpoint",
    "predict",
    "restore_model",
    "run_predictions",
    "evaluate_run",
    "format_table",
]

METHODS = ("aimle", "aimle-forward", "imle", "blackbox", "perturbed-fy", "spo+")
CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"


@dataclass
class TrainConfig:
    """Everything a run depends on; stored in the checkpoint as a plain dict."""

    data_dir: str = "data"
    size: int = 12
    method: str = "aimle"
    difference: str | None = None  # "central" or "forward"; default: central for AIMLE, forward for I-MLE
    epochs: int = 50
    batch_size: int = 70
    lr: float = 5e-4
    milestones: list[int] = field(default_factory=lambda: [30, 40])
    lr_decay: float = 0.1
    seed: int = 0
    device: str = "cpu"
    out_dir: str = "runs/warcraft"
    train_maps: int | None = None  # use only the first N training maps
    lam: float = 20.0  # λ of I-MLE and Blackbox
    noise: str = "gumbel"  # perturbation of AIMLE / I-MLE: "gumbel", "sum-of-gamma" or "none"
    noise_temperature: float = 1.0
    samples: int | None = None  # perturbation samples per instance (AIMLE / I-MLE / Perturbed)
    target_nnz: float = 1.0  # AIMLE's c
    aimle_step: float = 1e-3  # AIMLE's η
    aimle_controller: str = "paper"  # AIMLE's λ controller: "paper" (Eq. 10) or "fast"
    sigma: float = 1.0  # Perturbed's noise scale
    solver_executor: str = "none"  # "none" (batched torch solver) or "dask" (reference Dijkstra per map)
    scheduler_address: str | None = None
    ddp: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        if self.method == "aimle-forward":
            self.method, self.difference = "aimle", "forward"
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.difference is None and self.method in ("aimle", "imle"):
            self.difference = "central" if self.method == "aimle" else "forward"
        if self.difference not in (None, "central", "forward"):
            raise ValueError(f"difference must be 'central' or 'forward', got {self.difference!r}")
        if self.noise not in ("gumbel", "sum-of-gamma", "none"):
            raise ValueError(f"noise must be 'gumbel', 'sum-of-gamma' or 'none', got {self.noise!r}")
        if self.solver_executor not in ("none", "dask"):
            raise ValueError(f"solver_executor must be 'none' or 'dask', got {self.solver_executor!r}")
        if self.solver_executor == "dask" and not self.scheduler_address:
            raise ValueError("solver_executor='dask' needs a scheduler address (--scheduler tcp://HOST:PORT)")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    @property
    def label(self) -> str:
        """Human-readable method name, e.g. ``AIMLE (central)``."""
        names = {
            "aimle": "AIMLE",
            "imle": "I-MLE",
            "blackbox": "Blackbox",
            "perturbed-fy": "Perturbed + FY",
            "spo+": "SPO+",
        }
        return names[self.method] + (f" ({self.difference})" if self.difference else "")


class TimedSolver:
    """A solver wrapper that adds up the wall time of its calls (synchronising CUDA to be honest)."""

    def __init__(self, solver: Any):
        self.solver = solver
        self.sense = solver.sense
        self.event_dim = solver.event_dim
        self.seconds = 0.0

    def __call__(self, theta: Tensor, /, **context: Any) -> Tensor:
        if theta.is_cuda:
            torch.cuda.synchronize(theta.device)
        start = time.perf_counter()
        out = self.solver(theta, **context)
        if theta.is_cuda:
            torch.cuda.synchronize(theta.device)
        self.seconds += time.perf_counter() - start
        return out

    def __repr__(self) -> str:
        return f"TimedSolver({self.solver!r})"


def dijkstra_path(weights: np.ndarray) -> np.ndarray:
    """Reference Dijkstra path mask of one ``[K, K]`` cost map (picklable, for executors)."""
    return dijkstra(np.maximum(weights, 0.0)).path


@contextlib.contextmanager
def build_solver(config: TrainConfig) -> Iterator[Any]:
    """The registered batched ``"grid_shortest_path"``, or the reference Dijkstra on a dask cluster.

    A context manager, so that the connection to the dask scheduler is closed when training ends.
    """
    if config.solver_executor != "dask":
        yield difftools.get_solver("grid_shortest_path")
        return
    with difftools.dask_executor(config.scheduler_address) as executor:
        yield difftools.solver(dijkstra_path, sense="min", event_dim=2, executor=executor, name="dijkstra[dask]")


def _noise(config: TrainConfig) -> difftools.Noise | None:
    if config.noise == "none":
        return None
    if config.noise == "sum-of-gamma":
        # The shape k is the expected number of active variables: about 1.3 K cells on a path.
        return difftools.SumOfGamma(k=max(1, round(1.3 * config.size)))
    return difftools.Gumbel()


def build_method(config: TrainConfig, solver: Any, generator: torch.Generator | None) -> tuple[nn.Module, Any]:
    """``(module, loss)``: the method's module (holding its buffers) and ``loss(theta, batch) -> scalar``.

    For the layer methods the module maps θ to a path and the loss is the Hamming loss of that
    path; Perturbed + Fenchel-Young and SPO+ are losses on θ directly.
    """
    if config.method in ("aimle", "imle"):
        common = dict(
            samples=config.samples,
            central=config.difference == "central",
            noise=_noise(config),
            noise_temperature=config.noise_temperature,
            generator=generator,
        )
        if config.method == "aimle":
            layer = difftools.AIMLE(
                solver,
                target_nnz=config.target_nnz,
                step=config.aimle_step,
                controller=config.aimle_controller,
                **common,
            )
        else:
            layer = difftools.IMLE(solver, lam=config.lam, **common)
        return layer, lambda theta, batch: hamming_loss(layer(theta), batch["paths"])
    if config.method == "blackbox":
        layer = difftools.Blackbox(solver, lam=config.lam)
        return layer, lambda theta, batch: hamming_loss(layer(theta), batch["paths"])
    if config.method == "perturbed-fy":
        perturbed = difftools.Perturbed(solver, sigma=config.sigma, samples=config.samples or 1, generator=generator)
        fy = difftools.FenchelYoungLoss(perturbed)
        return fy, lambda theta, batch: fy(theta, batch["paths"])
    # SPO+ needs the true costs; the label is an optimal solution for them.
    spo = difftools.SPOPlusLoss(solver)
    return spo, lambda theta, batch: spo(theta, batch["weights"], solution=batch["paths"])


def hamming_loss(out: Tensor, target: Tensor) -> Tensor:
    """The papers' Hamming loss: wrong cells summed per map, averaged over maps (and samples).

    ``out`` is ``[*S, B, K, K]``. This is K² times :func:`difftools.hamming_loss` (which averages
    over cells); the scale matters because it sets the size of λ·∇f for Blackbox and I-MLE.
    """
    cells = out.shape[-1] * out.shape[-2]
    return cells * difftools.hamming_loss(out, target, event_dim=2)


# ------------------------------------------------------------------------------------- data
class _Maps:
    """A split in memory as tensors; images stay uint8 and are z-scored per batch."""

    def __init__(self, split: WarcraftSplit, mean: Tensor, std: Tensor, limit: int | None = None):
        n = len(split) if limit is None else min(limit, len(split))
        self.images = torch.from_numpy(np.array(split.maps[:n]))  # [N, H, W, 3]
        self.weights = torch.from_numpy(np.asarray(split.weights[:n]).astype(np.float32))
        self.paths = torch.from_numpy(np.asarray(split.paths[:n]).astype(np.float32))
        self.mean, self.std = mean.view(1, 3, 1, 1), std.view(1, 3, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def batch(self, index: Tensor, device: torch.device) -> dict[str, Tensor]:
        # [B, H, W, 3] permuted to [B, 3, H, W] is already channels-last: the layout the CPU convolutions prefer.
        images = self.images[index].to(device).permute(0, 3, 1, 2).float().div_(255.0)
        images = (images - self.mean.to(device)) / self.std.to(device)
        return {
            "images": images,
            "weights": self.weights[index].to(device),
            "paths": self.paths[index].to(device),
        }


@torch.no_grad()
def predict(
    model: nn.Module, maps: _Maps, solver: Any, device: torch.device, batch_size: int = 250
) -> tuple[Tensor, Tensor]:
    """``(costs, paths)`` predicted for every map of ``maps``, on the CPU."""
    was_training = model.training
    model.eval()
    costs, paths = [], []
    for start in range(0, len(maps), batch_size):
        index = torch.arange(start, min(start + batch_size, len(maps)))
        theta = model(maps.batch(index, device)["images"])
        costs.append(theta.cpu())
        paths.append(solver(theta).cpu())
    model.train(was_training)
    return torch.cat(costs), torch.cat(paths)


def _metrics(model: nn.Module, maps: _Maps, solver: Any, device: torch.device) -> dict[str, float]:
    _, paths = predict(model, maps, solver, device)
    return warcraft_metrics(paths, maps.paths, maps.weights)


# ------------------------------------------------------------------------------- checkpoints
def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind


def load_checkpoint(run_dir: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """The run's checkpoint, loaded with ``weights_only=True``."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(
            f"no checkpoint {path}; train first with `python -m examples.warcraft train --out-dir {run_dir}`"
        )
    return torch.load(path, map_location=map_location, weights_only=True)


def _write_log(path: Path, history: list[dict]) -> None:
    path.write_text("".join(json.dumps(h) + "\n" for h in history))


# ---------------------------------------------------------------------------------- training
def _distributed(config: TrainConfig) -> tuple[int, int, torch.device]:
    """Start the process group under torchrun; returns ``(rank, world_size, device)``."""
    device = torch.device(config.device)
    if not config.ddp:
        return 0, 1, device
    if "RANK" not in os.environ:
        raise RuntimeError(
            "--ddp needs the torchrun launcher, e.g. `torchrun --nproc-per-node 2 -m examples.warcraft train --ddp`"
        )
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def train(config: TrainConfig, resume: bool = False) -> list[dict]:
    """Train (or resume) a run in ``config.out_dir``; returns the per-epoch history."""
    out = Path(config.out_dir)
    checkpoint = None
    if resume:
        checkpoint = load_checkpoint(out)
        saved = TrainConfig(**checkpoint["config"])
        # Only how long and where to run may change on resume; everything else is the saved run's.
        config = dataclasses.replace(saved, epochs=config.epochs, device=config.device, progress=config.progress)
    rank, world, device = _distributed(config)
    if config.batch_size % world:
        raise ValueError(f"batch_size {config.batch_size} must be divisible by the number of processes {world}")
    try:
        with build_solver(config) as solver:
            return _train(config, checkpoint, out, rank, world, device, solver)
    finally:
        if config.ddp and dist.is_initialized():
            dist.destroy_process_group()


def _train(
    config: TrainConfig, checkpoint: dict | None, out: Path, rank: int, world: int, device: torch.device, solver
):
    lead = rank == 0
    train_split = load_split(config.data_dir, config.size, "train")
    if checkpoint is None:
        mean, std = channel_statistics(train_split.maps[: config.train_maps])
    else:
        mean, std = checkpoint["normalisation"]["mean"], checkpoint["normalisation"]["std"]
    train_maps = _Maps(train_split, mean, std, config.train_maps)
    val_maps = _Maps(load_split(config.data_dir, config.size, "val"), mean, std)

    torch.manual_seed(config.seed)
    model = CombResNet18(config.size).to(device)
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    solver = TimedSolver(solver)
    generator = torch.Generator(device=device)
    layer, loss_fn = build_method(config, solver, generator)
    layer.to(device)
    net = nn.parallel.DistributedDataParallel(model) if config.ddp else model
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, config.milestones, config.lr_decay)
    history: list[dict] = []
    start_epoch = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        layer.load_state_dict(checkpoint["estimator"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        history, start_epoch = list(checkpoint["history"]), int(checkpoint["epoch"])
    if lead:
        out.mkdir(parents=True, exist_ok=True)
        _write_log(out / LOG, history)  # drops any epoch logged after the last checkpoint
    sampler = DistributedSampler(range(len(train_maps)), num_replicas=world, rank=rank, shuffle=True, seed=config.seed)
    local_batch = config.batch_size // world
    steps = math.ceil(len(sampler) / local_batch)
    for epoch in range(start_epoch, config.epochs):
        sampler.set_epoch(epoch)
        # Noise depends only on (seed, epoch, rank), so a resumed run draws what the uninterrupted one did.
        generator.manual_seed(config.seed * 1_000_003 + epoch * 1009 + rank)
        order = torch.tensor(list(sampler))
        net.train()
        solver.seconds = 0.0
        started = time.perf_counter()
        total, seen = 0.0, 0
        bar = tqdm(
            range(steps), desc=f"epoch {epoch + 1}/{config.epochs}", leave=False, disable=not (lead and config.progress)
        )
        for step in bar:
            batch = train_maps.batch(order[step * local_batch : (step + 1) * local_batch], device)
            loss = loss_fn(net(batch["images"]), batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch["paths"])
            seen += len(batch["paths"])
            bar.set_postfix(loss=f"{total / seen:.3f}")
        scheduler.step()
        seconds = time.perf_counter() - started
        if config.ddp:
            dist.barrier()
        if not lead:
            continue
        val = _metrics(model, val_maps, solver.solver, device)
        record = {
            "epoch": epoch + 1,
            "train_loss": total / seen,
            "lr": optimizer.param_groups[0]["lr"],
            **{f"val_{k}": v for k, v in val.items()},
            "epoch_seconds": seconds,
            "solver_seconds": solver.seconds,
            "solver_share": solver.seconds / seconds,
        }
        if hasattr(layer, "alpha"):
            record["aimle_alpha"] = float(layer.alpha)
        history.append(record)
        with open(out / LOG, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(
            f"epoch {epoch + 1:3d}/{config.epochs}  loss {record['train_loss']:.3f}  "
            f"val optimal-cost {val['optimal_cost']:.3f}  perfect {val['perfect_match']:.3f}  "
            f"regret {val['regret']:.4f}  {seconds:.0f}s (solver {100 * record['solver_share']:.0f}%)",
            flush=True,
        )
        _save(
            out / CHECKPOINT,
            {
                "config": dataclasses.asdict(config),
                "epoch": epoch + 1,
                "model": model.state_dict(),
                "estimator": layer.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": {"torch": torch.get_rng_state()},
                "normalisation": {"mean": mean, "std": std},
                "history": history,
            },
        )
    if config.ddp:
        dist.barrier()
    return history


# -------------------------------------------------------------------------------- evaluation
def restore_model(checkpoint: dict, device: torch.device) -> CombResNet18:
    """The trained network of a checkpoint, in eval mode."""
    model = CombResNet18(int(checkpoint["config"]["size"]))
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval()


def run_predictions(
    run_dir: str | os.PathLike,
    split: str = "test",
    data_dir: str | None = None,
    device: str = "cpu",
    limit: int | None = None,
) -> tuple[dict, WarcraftSplit, _Maps, Tensor, Tensor]:
    """Predictions of a trained run on (the first ``limit`` maps of) ``split``.

    Returns ``(checkpoint, split_data, maps, costs, paths)``; the solver is the registered
    ``"grid_shortest_path"`` on the unperturbed predicted costs.
    """
    checkpoint = load_checkpoint(run_dir)
    config = checkpoint["config"]
    dev = torch.device(device)
    model = restore_model(checkpoint, dev)
    split_data = load_split(data_dir or config["data_dir"], int(config["size"]), split)
    norm = checkpoint["normalisation"]
    maps = _Maps(split_data, norm["mean"], norm["std"], limit)
    costs, paths = predict(model, maps, difftools.get_solver("grid_shortest_path"), dev)
    return checkpoint, split_data, maps, costs, paths


def evaluate_run(
    run_dir: str | os.PathLike, split: str = "test", data_dir: str | None = None, device: str = "cpu"
) -> dict:
    """All metrics of a trained run on ``split``; also written to ``<run_dir>/<split>_metrics.json``."""
    checkpoint, split_data, maps, _, paths = run_predictions(run_dir, split, data_dir, device)
    result = {
        "method": TrainConfig(**checkpoint["config"]).label,
        "epochs": int(checkpoint["epoch"]),
        "split": split,
        "maps": len(maps),
        **warcraft_metrics(paths, maps.paths, maps.weights),
    }
    if split_data.unique is not None:
        # Perfect match can only be expected where the label is the only shortest path.
        result["unique_fraction"] = float(split_data.unique.mean())
    Path(run_dir, f"{split}_metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def format_table(rows: list[dict]) -> str:
    """A Markdown table of metric rows (accuracies in %, regret as a fraction)."""
    header = "| method | epochs | optimal-cost acc. | perfect match | valid path | regret | Hamming acc. |"
    lines = [header, "|" + "---|" * 7]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['epochs']} | {100 * r['optimal_cost']:.1f}% | {100 * r['perfect_match']:.1f}% | "
            f"{100 * r['valid_path']:.1f}% | {r['regret']:.4f} | {100 * r['hamming_accuracy']:.1f}% |"
        )
    return "\n".join(lines)
