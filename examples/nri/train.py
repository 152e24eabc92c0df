"""Training and evaluation of NRI with a spanning-tree latent graph through difftools.

The encoder's 45 pair logits θ go through :class:`difftools.AIMLE` (or :class:`difftools.IMLE`)
wrapping the batched Prim of the ``"spanning_tree"`` solver (without its per-call NaN check, see
``step.py``) with Sum-of-Gamma noise; the tree's directed
edges weight the decoder's two edge types. A run directory holds ``config.json``, ``log.jsonl``
(one JSON record per line), ``last.pt`` (resumable state) and ``best.pt`` (best validation ELBO).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

import difftools
from examples import common
from examples.nri.config import PAPER_SETTINGS, Config
from examples.nri.data import NUM_DIMS, NUM_VERTICES, Split, load_split
from examples.nri.model import Decoder, EdgeLayout, Encoder
from examples.nri.objective import edge_metrics, gaussian_nll, gumbel_kl
from examples.nri.step import SpanningTreeNoCheck, TrainStep

__all__ = ["Config", "PAPER_SETTINGS", "Model", "train", "evaluate_split", "evaluate", "load_model"]

# The perturbation of the recipe (Sum-of-Gamma, k = n, 10 terms), the plain alternative, and none.
NOISES = {
    "sog": lambda: difftools.SumOfGamma(k=NUM_VERTICES, terms=10),
    "gumbel": difftools.Gumbel,
    "none": lambda: None,
}


class Model(nn.Module):
    """Encoder, tree estimator and decoder; ``forward`` returns the per-instance loss pieces."""

    def __init__(self, config: Config, generator: torch.Generator | None = None, check_finite: bool = True):
        super().__init__()
        self.config = config
        self.layout = EdgeLayout(NUM_VERTICES)
        self.encoder = Encoder(self.layout, config.timesteps * NUM_DIMS, config.hidden)
        self.decoder = Decoder(self.layout, NUM_DIMS, config.hidden, skip_first=config.skip_first)
        perturbation = {
            "central": config.difference == "central",
            "noise": NOISES[config.noise](),
            "noise_temperature": config.noise_temperature,
            "generator": generator,
            "check_finite": check_finite,
        }
        own = {
            # The paper rule spells out Algorithm 1's settings; "fast" leaves them to AIMLE's defaults.
            "aimle": dict(
                controller=config.controller,
                target_nnz=config.target_nnz,
                lam_scope=config.lam_scope,
                **({"step": 1e-3, "initial_alpha": 0.0} if config.controller == "paper" else {}),
            ),
            "imle": dict(lam=config.imle_lambda),
        }
        options = {**perturbation, **own[config.estimator]}
        self.tree = common.make_estimator(config.estimator, SpanningTreeNoCheck(NUM_VERTICES), **options)

    def pair_logits(self, trajectories: Tensor) -> Tensor:
        """θ ``[B, 45]``: the symmetrised encoder logits, one per unordered pair."""
        return self.layout.symmetrise(self.encoder(trajectories))

    def loss_terms(self, trajectories: Tensor, tree: Tensor, theta: Tensor, prediction_steps: int) -> dict:
        """NLL and KL per instance given a 0/1 tree ``[B, 45]`` over the pairs."""
        directed = self.layout.to_directed(tree)
        prediction = self.decoder(trajectories, torch.stack([1.0 - directed, directed], dim=-1), prediction_steps)
        target = trajectories[:, :, 1:]
        return {
            "nll": gaussian_nll(prediction, target),
            "kl": gumbel_kl(self.layout.to_directed(theta), NUM_VERTICES),
            "mse": ((prediction - target) ** 2).mean(dim=(1, 2, 3)),
        }

    def forward(self, trajectories: Tensor) -> dict:
        theta = self.pair_logits(trajectories)
        return self.loss_terms(trajectories, self.sample_tree(theta), theta, self.config.prediction_steps)

    # Under torch.compile the estimator stays outside the captured graphs (its seeded noise
    # generator and its autograd.Function do not trace); the encoder and decoder on either side
    # are captured whole. Without torch.compile this is a plain call.
    @torch.compiler.disable
    def sample_tree(self, theta: Tensor) -> Tensor:
        """The estimator's perturbed MAP tree ``[B, 45]`` of θ (gradients by AIMLE / I-MLE)."""
        return self.tree(theta)


@torch.no_grad()
def evaluate_split(model: Model, split: Split, batch_size: int = 100, seed: int = 0) -> dict[str, float]:
    """ELBO and edge precision/recall of ``model`` on ``split`` (the evaluation protocol).

    ELBO: the decoder predicts each frame from the true previous one (teacher forcing) given the
    noise-free MAP tree of θ; ELBO = −mean(NLL + KL). Edges: one Gumbel(0, 1)-perturbed maximum
    spanning tree per instance, scored by :func:`edge_metrics`. ``seed`` fixes that noise.
    ``map_true_edges`` is the mean number of true edges in the MAP tree, a diagnostic that, unlike
    precision, does not take the better of z and 1 − z.
    """
    was_training = model.training
    model.eval()
    solver = model.tree.solver
    device = split.positions.device
    generator = torch.Generator(device=device).manual_seed(seed)
    totals: dict[str, Any] = {"nll": 0.0, "kl": 0.0, "mse": 0.0, "map_true_edges": 0.0}
    samples, targets = [], []
    for start in range(0, len(split), batch_size):
        x = split.positions[start : start + batch_size]
        theta = model.pair_logits(x)
        tree = solver(theta)
        target = model.layout.adjacency_to_directed(split.edges[start : start + batch_size])
        terms = model.loss_terms(x, tree, theta, prediction_steps=1)
        # True edges among the MAP tree's 9 (a random tree has 1.8 on average).
        terms["map_true_edges"] = (model.layout.to_directed(tree) * target).sum(-1) / 2
        for key in totals:
            # On the device, each batch's float32 sum added in float64 (as Python floats were before):
            # one read-back per key at the end instead of one per batch.
            totals[key] = totals[key] + terms[key].sum().to(torch.float64)
        noise = difftools.Gumbel().sample(theta.shape, generator=generator, device=device, dtype=theta.dtype)
        samples.append(model.layout.to_directed(solver(theta + noise)))
        targets.append(target)
    model.train(was_training)
    result = {key: float(value) / len(split) for key, value in totals.items()}
    result["elbo"] = -(result["nll"] + result["kl"])
    result.update(edge_metrics(torch.cat(samples), torch.cat(targets)))
    return result


def _batch(split: Split, iteration: int, batch_size: int) -> Tensor:
    # Consecutive batches in data order, epoch after epoch (the original loader does not shuffle);
    # a pure function of the iteration, so resuming needs no loader state.
    per_epoch = math.ceil(len(split) / batch_size)
    start = (iteration % per_epoch) * batch_size
    return split.positions[start : start + batch_size]


RUN_FILES = ("last.pt", "best.pt", "log.jsonl", "config.json")  # last.pt first: what --resume needs


def _kept_log(path: Path, keep_until: int | None) -> None:
    """Start the run's log: empty for a new run; on resume, without records past the checkpoint."""
    kept = [] if keep_until is None else [r for r in common.read_log(path) if r["iteration"] <= keep_until]
    common.rewrite_log(path, kept)


def train(
    config: Config,
    run_dir: str | Path,
    data_dir: str | Path = "data",
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
    time_limit: float | None = None,
    overwrite: bool = False,
    compile: bool = False,
    compile_backend: str | None = None,
) -> dict[str, Any]:
    """Train (or resume) a run; return the best validation record.

    ``time_limit`` (seconds of this call) stops the run at the first validation after it has
    passed, with ``last.pt`` saved there, so ``resume=True`` continues it bit for bit later (for
    leased machines and queues with a wall-clock limit). ``compile`` captures the loss computation
    with ``torch.compile`` (CUDA graphs on CUDA; see ``step.py``); it changes rounding, not the
    run's settings, so a run may resume with or without it. ``compile_backend`` passes a
    ``torch.compile`` backend (default: inductor).
    """
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"train: time_limit must be a positive number of seconds, got {time_limit!r}")
    started = time.monotonic()
    run_dir = Path(run_dir)
    last_path = run_dir / "last.pt"
    common.prepare_run_dir(run_dir, RUN_FILES, resume, overwrite)
    checkpoint = common.load_checkpoint(last_path, device) if resume else None
    if checkpoint is not None:
        saved = Config(**checkpoint["config"])
        common.refuse_other_settings(
            run_dir,
            dataclasses.asdict(saved),
            dataclasses.asdict(config),
            [f.name for f in dataclasses.fields(Config) if f.name != "iterations"],
            may_change="--iterations, --device, --compile and --time-limit",
        )
        done = int(checkpoint["state"]["iteration"])
        if done >= config.iterations:
            print(f"nothing to do: {run_dir} has finished {done} of {config.iterations} iterations", flush=True)
        else:
            print(f"resuming {run_dir} at iteration {done + 1} of {config.iterations}", flush=True)
    # Check the data before anything is written: a bad data directory leaves no half-made run.
    train_split = load_split(data_dir, "train", config.timesteps, config.train_size).to(device)
    valid_split = load_split(data_dir, "valid", config.timesteps, config.valid_size).to(device)
    # config.json: the settings and where the data came from, so that `--resume` needs neither again.
    saved_settings = {**dataclasses.asdict(config), "data_dir": str(data_dir)}
    common.write_json(run_dir / "config.json", saved_settings)

    torch.manual_seed(config.seed)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    # The estimator's NaN checks read a value back from the device twice per iteration; instead
    # every train record checks the averaged loss (a NaN in θ reaches the KL term, so the loss).
    model = Model(config, generator, check_finite=False).to(device)
    step = TrainStep(
        model, list(model.parameters()), config.lr, device, compile, compile_backend, kl_weight=config.kl_weight
    )
    if compile:
        model.tree.solver.compile(compile_backend)
    optimizer = step.optimizer
    state = {"iteration": 0, "best": None}
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        # Generator states are CPU byte tensors whatever the generator's device.
        generator.set_state(checkpoint["generator"].cpu())
        state = checkpoint["state"]
    log_path = run_dir / "log.jsonl"
    _kept_log(log_path, state["iteration"] if checkpoint is not None else None)
    first = state["iteration"]
    model.train()
    # Train records average over the iterations since the previous record; every validation
    # coincides with a record, so a checkpoint never holds a partial window.
    window, count = torch.zeros(3, device=device), 0  # sums of [loss, nll, kl], kept on the device
    with tqdm(total=config.iterations, initial=state["iteration"], desc="train", disable=not progress) as bar:
        for iteration in range(state["iteration"], config.iterations):
            # No read-back from the device in here except at records: nothing waits for the GPU.
            window += step(_batch(train_split, iteration, config.batch_size))
            count += 1
            done = iteration + 1
            bar.update()
            if done % config.log_every == 0 or done % config.validate_every == 0 or done == config.iterations:
                loss, nll, kl = (window / count).tolist()
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"train: the training loss is {loss} (NaN or Inf) in iterations {done - count + 1}..{done} "
                        f"of {run_dir}; the last checkpoint before them is last.pt (try a lower --lr)"
                    )
                record = {"iteration": done, "split": "train", "elbo": -loss, "nll": nll, "kl": kl}
                if config.estimator == "aimle":
                    record["alpha"] = float(model.tree.alpha)
                common.append_log(log_path, record)
                bar.set_postfix(elbo=f"{record['elbo']:.1f}")
                window, count = torch.zeros(3, device=device), 0
            if done % config.validate_every == 0 or done == config.iterations:
                metrics = evaluate_split(model, valid_split, config.eval_batch_size, seed=config.seed + 1)
                record = {"iteration": done, "split": "valid", **metrics}
                common.append_log(log_path, record)
                state = {"iteration": done, "best": state["best"]}
                if state["best"] is None or metrics["elbo"] > state["best"]["elbo"]:
                    state["best"] = record
                    common.save_checkpoint(
                        run_dir / "best.pt", {"config": dataclasses.asdict(config), "model": model.state_dict()}
                    )
                common.save_checkpoint(
                    last_path,
                    {
                        "config": dataclasses.asdict(config),
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "generator": generator.get_state(),
                        "state": state,
                    },
                )
                bar.write(
                    f"iteration {done}: valid ELBO {metrics['elbo']:.2f}, edge precision "
                    f"{100 * metrics['precision']:.2f}%"
                )
                if time_limit is not None and time.monotonic() - started > time_limit and done < config.iterations:
                    bar.write(f"time limit of {time_limit:g} s reached: stopped at iteration {done} (resumable)")
                    break
    seconds = time.monotonic() - started
    bar.write(
        f"trained iterations {first}..{state['iteration']} in {seconds:.1f} s "
        f"({(state['iteration'] - first) / seconds:.3g} it/s, validation and loading included)"
    )
    return state["best"]


def load_model(checkpoint_path: str | Path, device: str = "cpu") -> Model:
    """The model saved in ``best.pt`` or ``last.pt``, in evaluation mode."""
    checkpoint = common.load_checkpoint(checkpoint_path, device, hint="train first")
    model = Model(Config(**checkpoint["config"])).to(device)
    model.load_state_dict(checkpoint["model"])
    return model.eval()


def evaluate(
    run_dir: str | Path,
    data_dir: str | Path = "data",
    device: str = "cpu",
    test_size: int | None = None,
    checkpoint: str = "best.pt",
) -> dict[str, Any]:
    """Test ELBO and edge precision/recall at the run's best checkpoint; written to ``eval.json``."""
    run_dir = Path(run_dir)
    path = run_dir / checkpoint
    if not path.exists():
        raise FileNotFoundError(f"evaluate: {path} not found; train first")
    model = load_model(path, device)
    config = model.config
    test_split = load_split(data_dir, "test", config.timesteps, test_size).to(device)
    result = {"checkpoint": str(path), "test_samples": len(test_split)}
    result.update(evaluate_split(model, test_split, config.eval_batch_size, seed=config.seed + 1))
    log_path = run_dir / "log.jsonl"
    if log_path.exists():
        valid = [r for r in common.read_log(log_path) if r["split"] == "valid"]
        if valid:
            best = max(valid, key=lambda r: r["elbo"])
            result["best_iteration"] = best["iteration"]
            result["iterations_trained"] = valid[-1]["iteration"]
    common.write_json(run_dir / "eval.json", result)
    return result
