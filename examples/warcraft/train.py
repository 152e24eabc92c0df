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
import math
import os
import time
import warnings
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

import difftools
from examples import common
from examples.warcraft.config import METHODS, PRECISIONS, TrainConfig
from examples.warcraft.data import WarcraftSplit, channel_statistics, load_split
from examples.warcraft.labelling import dijkstra
from examples.warcraft.metrics import warcraft_metrics
from examples.warcraft.model import CombResNet18

__all__ = [
    "METHODS",
    "TrainConfig",
    "TimedSolver",
    "Maps",
    "native_bf16",
    "network_costs",
    "resolve_precision",
    "PRECISIONS",
    "build_solver",
    "build_method",
    "hamming_distance",
    "train",
    "load_checkpoint",
    "predict",
    "restore_model",
    "run_predictions",
    "evaluate_run",
    "format_table",
]

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"  # the model of the epoch with the best validation optimal-cost accuracy
CHECKPOINTS = {"last": CHECKPOINT, "best": BEST}
LOG = "log.jsonl"


class TimedSolver(difftools.SolverWrapper):
    """A solver wrapper that adds up the wall time of its calls (synchronising CUDA to be honest)."""

    def __init__(self, solver: Any):
        super().__init__(solver)
        self.seconds = 0.0

    @property
    def solver(self) -> Any:
        """The timed solver."""
        return self.inner

    def solve_batch(self, theta: Tensor, /, **context: Any) -> Tensor:
        if theta.is_cuda:
            torch.cuda.synchronize(theta.device)
        start = time.perf_counter()
        out = super().solve_batch(theta, **context)
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
    """The perturbation ``config.noise`` names (call only when it is not None: the method's own)."""
    if config.noise == "none":
        return None
    if config.noise == "sum-of-gamma":
        # The shape k is the expected number of active variables: about 1.3 K cells on a path.
        return difftools.SumOfGamma(k=max(1, round(1.3 * config.size)))
    return difftools.Gumbel()


def _aimle_rule(config: TrainConfig) -> str | difftools.estimators.AlphaRule | None:
    """AIMLE's controller: its name, or the fast rule (or the deterministic preset's) with ``max_alpha``."""
    if config.max_alpha is None:
        return config.aimle_controller
    if config.aimle_controller == "deterministic":
        return difftools.estimators.DeterministicRule(max_alpha=config.max_alpha)
    return difftools.estimators.FastRule(max_alpha=config.max_alpha)


def build_method(config: TrainConfig, solver: Any, generator: torch.Generator | None) -> tuple[nn.Module, Any]:
    """``(module, loss)``: the method's module (holding its buffers) and ``loss(theta, batch) -> scalar``.

    For the layer methods the module maps θ to a path and the loss is the Hamming distance of that
    path to the label (:func:`hamming_distance`); Perturbed + Fenchel-Young and SPO+ are losses on θ directly.
    """
    perturbation = dict(
        samples=config.samples,
        noise_temperature=config.noise_temperature,
        generator=generator,
        central=config.difference == "central",
        # Not given (None): the method's own noise (I-MLE's Gumbel, the AIMLE controller's preset).
        **({} if config.noise is None else {"noise": _noise(config)}),
    )
    aimle = {
        "target_nnz": config.target_nnz,
        "step": config.aimle_step,
        "lam_scope": config.lam_scope,
        "count": config.aimle_count,
        "count_over": config.aimle_count_over,
        "initial_alpha": config.initial_alpha,
        "controller": _aimle_rule(config),
    }
    layers = {
        "aimle": dict(perturbation, **{name: value for name, value in aimle.items() if value is not None}),
        "imle": dict(perturbation, lam=config.lam),
        "blackbox": dict(lam=config.lam),
    }
    if config.method in layers:
        layer = common.make_estimator(config.method, solver, **layers[config.method])
        return layer, lambda theta, batch: hamming_distance(layer(theta), batch["paths"])
    if config.method == "perturbed-fy":
        perturbed = common.make_estimator(
            "perturbed",
            solver,
            noise_temperature=config.noise_temperature,
            samples=config.samples or 1,
            generator=generator,
        )
        fy = difftools.FenchelYoungLoss(perturbed)
        return fy, lambda theta, batch: fy(theta, batch["paths"])
    # SPO+ needs the true costs; the label is an optimal solution for them.
    spo = difftools.SPOPlusLoss(solver)
    return spo, lambda theta, batch: spo(theta, batch["weights"], solution=batch["paths"])


def hamming_distance(out: Tensor, target: Tensor) -> Tensor:
    """The papers' loss: the Hamming distance of each path to its label (wrong cells), averaged over maps.

    ``out`` is ``[*S, B, K, K]``; the mean is over maps and samples. This is K² times
    :func:`difftools.hamming_loss`, the fraction of wrong cells; the scale matters because it sets
    the size of λ·∇f for Blackbox and I-MLE.
    """
    cells = out.shape[-1] * out.shape[-2]
    return cells * difftools.hamming_loss(out, target, event_dim=2)


def __getattr__(name: str) -> Any:
    if name == "hamming_loss":  # renamed: it shadowed difftools.hamming_loss at K² times its scale
        warnings.warn(
            "examples.warcraft.train.hamming_loss is deprecated and will be removed in the next release; it is "
            "hamming_distance (K² times difftools.hamming_loss)",
            DeprecationWarning,
            stacklevel=2,
        )
        return hamming_distance
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------------------------- data
class Maps:
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
        # [B, H, W, 3] permuted to [B, 3, H, W] is already channels-last, the layout the convolutions prefer
        # (oneDNN on CPUs, cuDNN with bf16); the explicit request below is a no-op that documents it.
        images = self.images[index].to(device).permute(0, 3, 1, 2).float().div_(255.0)
        images = ((images - self.mean.to(device)) / self.std.to(device)).contiguous(memory_format=torch.channels_last)
        return {
            "images": images,
            "weights": self.weights[index].to(device),
            "paths": self.paths[index].to(device),
        }


def native_bf16(device: str | torch.device) -> bool:
    """Whether ``device`` does bfloat16 arithmetic in hardware, where bf16 autocast pays off.

    CPUs: AVX-512 BF16 or AMX (without them torch emulates bf16, about 9× slower than fp32 on the
    network of this example); CUDA: what ``torch.cuda.is_bf16_supported`` says. Any other device: no.
    """
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        # Private helpers of torch.cpu (since 2.1); a torch without them gets the safe answer, fp32.
        checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in checks)
    return False


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """``"fp32"`` or ``"bf16"`` for ``--precision``: ``"auto"`` is bf16 where it is native (:func:`native_bf16`)."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'auto' or one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def network_costs(model: nn.Module, images: Tensor, precision: str = "fp32") -> Tensor:
    """θ = ``model(images)``, under bfloat16 autocast for ``precision="bf16"``; always returned in fp32.

    Only the network runs in reduced precision: its weights, the optimiser state, the solver and the
    loss stay fp32, so a checkpoint is the same in both precisions.
    """
    with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        theta = model(images)
    return theta.float()


@torch.no_grad()
def predict(
    model: nn.Module,
    maps: Maps,
    solver: Any,
    device: torch.device,
    batch_size: int = 250,
    precision: str = "fp32",
) -> tuple[Tensor, Tensor]:
    """``(costs, paths)`` predicted for every map of ``maps``, on the CPU."""
    was_training = model.training
    model.eval()
    costs, paths = [], []
    for start in range(0, len(maps), batch_size):
        index = torch.arange(start, min(start + batch_size, len(maps)))
        theta = network_costs(model, maps.batch(index, device)["images"], precision)
        costs.append(theta.cpu())
        paths.append(solver(theta).cpu())
    model.train(was_training)
    return torch.cat(costs), torch.cat(paths)


def _metrics(model: nn.Module, maps: Maps, solver: Any, device: torch.device, precision: str) -> dict[str, float]:
    _, paths = predict(model, maps, solver, device, precision=precision)
    return warcraft_metrics(paths, maps.paths, maps.weights)


# ------------------------------------------------------------------------------- checkpoints
def load_checkpoint(run_dir: str | os.PathLike, map_location: str | torch.device = "cpu", which: str = "last") -> dict:
    """The run's last (or ``which="best"``: best-validation) checkpoint, loaded with ``weights_only=True``."""
    if which not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be one of {', '.join(CHECKPOINTS)}, got {which!r}")
    hint = f"train first with `python -m examples.warcraft train --out-dir {run_dir}`"
    return common.load_checkpoint(Path(run_dir) / CHECKPOINTS[which], map_location, hint=hint)


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


# Settings that may change when a run is resumed: how long, where and in which precision it runs.
RESUMABLE_CHANGES = ("epochs", "device", "precision", "progress")


def train(
    config: TrainConfig, resume: bool = False, overwrite: bool = False, given: Collection[str] | None = None
) -> list[dict]:
    """Train (or resume) a run in ``config.out_dir``; returns the per-epoch history.

    A directory that already holds a run is refused unless ``resume`` (continue it) or
    ``overwrite`` (replace its checkpoint and log). On resume, the settings named in ``given``
    (the command line's explicit options; by default every field that differs from
    :class:`TrainConfig`'s default) must equal the saved run's, except :data:`RESUMABLE_CHANGES`.
    """
    out = Path(config.out_dir)
    checkpoint = None
    if not config.ddp or int(os.environ.get("RANK", "0")) == 0:
        common.prepare_run_dir(out, [CHECKPOINT, LOG, BEST], resume, overwrite)
    if resume:
        checkpoint = load_checkpoint(out)
        saved = TrainConfig.from_saved(checkpoint["config"])
        if given is None:
            defaults = TrainConfig()
            given = [
                f.name for f in dataclasses.fields(TrainConfig) if getattr(config, f.name) != getattr(defaults, f.name)
            ]
        common.refuse_other_settings(
            out,
            dataclasses.asdict(saved),
            dataclasses.asdict(config),
            [name for name in given if name not in RESUMABLE_CHANGES and name != "out_dir"],
            may_change="--epochs, --device, --precision and --no-progress",
            advice="; drop the others, or start a new run in another --out-dir",
        )
        done = int(checkpoint["epoch"])
        if config.precision != saved.precision:
            print(
                f"resuming a {saved.precision} run in {config.precision}: weights and optimiser state are fp32 in "
                "both, so the checkpoint loads unchanged, but the epochs from here differ from an uninterrupted "
                f"{saved.precision} run",
                flush=True,
            )
        config = dataclasses.replace(
            saved, epochs=config.epochs, device=config.device, precision=config.precision, progress=config.progress
        )
        if done >= config.epochs:
            print(f"nothing to do: {out} has finished {done} of {config.epochs} epochs", flush=True)
        else:
            print(f"resuming {out} at epoch {done + 1} of {config.epochs}", flush=True)
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
    train_maps = Maps(train_split, mean, std, config.train_maps)
    val_maps = Maps(load_split(config.data_dir, config.size, "val"), mean, std)

    torch.manual_seed(config.seed)
    model = CombResNet18(config.size).to(device, memory_format=torch.channels_last)
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
        common.rewrite_log(out / LOG, history)  # drops any epoch logged after the last checkpoint
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
            loss = loss_fn(network_costs(net, batch["images"], config.precision), batch)
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
        val_started = time.perf_counter()
        val = _metrics(model, val_maps, solver.solver, device, config.precision)
        val_seconds = time.perf_counter() - val_started
        record = {
            "epoch": epoch + 1,
            "train_loss": total / seen,
            "lr": optimizer.param_groups[0]["lr"],
            **{f"val_{k}": v for k, v in val.items()},
            "epoch_seconds": seconds,
            "solver_seconds": solver.seconds,
            "solver_share": solver.seconds / seconds,
            "val_seconds": val_seconds,
            # Training and validation of every epoch so far, over all resumed parts of the run.
            "elapsed_seconds": (history[-1].get("elapsed_seconds", 0.0) if history else 0.0) + seconds + val_seconds,
            "precision": config.precision,
        }
        if hasattr(layer, "alpha"):
            record["aimle_alpha"] = float(layer.alpha)
        history.append(record)
        common.append_log(out / LOG, record)
        print(
            f"epoch {epoch + 1:3d}/{config.epochs}  loss {record['train_loss']:.3f}  "
            f"val optimal-cost {val['optimal_cost']:.3f}  perfect {val['perfect_match']:.3f}  "
            f"regret {val['regret']:.4f}  {seconds:.0f}s (solver {100 * record['solver_share']:.0f}%)",
            flush=True,
        )
        state = {
            "config": dataclasses.asdict(config),
            "epoch": epoch + 1,
            "model": model.state_dict(),
            "estimator": layer.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state()},
            "normalisation": {"mean": mean, "std": std},
            "history": history,
        }
        if val["optimal_cost"] > max((h["val_optimal_cost"] for h in history[:-1]), default=-1.0):
            # Written before the last checkpoint: a kill in between leaves a best.pt that the resumed
            # run would write again, never a last checkpoint whose best epoch has no best.pt.
            common.save_checkpoint(out / BEST, state)
        common.save_checkpoint(out / CHECKPOINT, state)
    if config.ddp:
        dist.barrier()
    return history


# -------------------------------------------------------------------------------- evaluation
def restore_model(checkpoint: dict, device: torch.device) -> CombResNet18:
    """The trained network of a checkpoint, in eval mode."""
    model = CombResNet18(int(checkpoint["config"]["size"]))
    model.load_state_dict(checkpoint["model"])
    return model.to(device, memory_format=torch.channels_last).eval()


def run_predictions(
    run_dir: str | os.PathLike,
    split: str = "test",
    data_dir: str | None = None,
    device: str = "cpu",
    limit: int | None = None,
    which: str = "last",
) -> tuple[dict, WarcraftSplit, Maps, Tensor, Tensor]:
    """Predictions of a trained run's last (or best-validation) model on (the first ``limit`` maps of) ``split``.

    Returns ``(checkpoint, split_data, maps, costs, paths)``; the solver is the registered
    ``"grid_shortest_path"`` on the unperturbed predicted costs.
    """
    checkpoint = load_checkpoint(run_dir, which=which)
    config = checkpoint["config"]
    dev = torch.device(device)
    model = restore_model(checkpoint, dev)
    split_data = load_split(data_dir or config["data_dir"], int(config["size"]), split)
    norm = checkpoint["normalisation"]
    maps = Maps(split_data, norm["mean"], norm["std"], limit)
    precision = config.get("precision", "fp32")  # checkpoints from before --precision are fp32
    costs, paths = predict(model, maps, difftools.get_solver("grid_shortest_path"), dev, precision=precision)
    return checkpoint, split_data, maps, costs, paths


def evaluate_run(
    run_dir: str | os.PathLike,
    split: str = "test",
    data_dir: str | None = None,
    device: str = "cpu",
    which: str = "last",
) -> dict:
    """All metrics of a trained run on ``split``; also written to ``<run_dir>/<split>_metrics.json``.

    ``which="best"`` evaluates the epoch with the best validation accuracy (``best.pt``) and writes
    ``<split>_metrics_best.json``.
    """
    checkpoint, split_data, maps, _, paths = run_predictions(run_dir, split, data_dir, device, which=which)
    result = {
        "method": TrainConfig.from_saved(checkpoint["config"]).label,
        "epochs": int(checkpoint["epoch"]),
        "checkpoint": which,
        "split": split,
        "maps": len(maps),
        **warcraft_metrics(paths, maps.paths, maps.weights),
    }
    if split_data.unique is not None:
        # Perfect match can only be expected where the label is the only shortest path.
        result["unique_fraction"] = float(split_data.unique.mean())
    name = f"{split}_metrics.json" if which == "last" else f"{split}_metrics_{which}.json"
    common.write_json(Path(run_dir, name), result)
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
