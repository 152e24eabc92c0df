"""Summaries of many Warcraft runs: per-method mean ± standard deviation over seeds, and one figure."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

from examples import run_files
from examples.warcraft.train import BEST, CHECKPOINT, LOG, TrainConfig, evaluate_run

__all__ = ["METRICS", "describe_settings", "collect_runs", "summary_table", "write_report"]

# (key in test_metrics.json, column header, shown as a percentage)
METRICS = (
    ("optimal_cost", "optimal-cost acc.", True),
    ("perfect_match", "perfect match", True),
    ("valid_path", "valid path", True),
    ("regret", "regret", False),
    ("hamming_accuracy", "Hamming acc.", True),
)


def describe_settings(config: TrainConfig) -> str:
    """The method's own hyper-parameters in a few words, e.g. ``c = 16, η = 0.01, no noise``."""
    noise = "no noise" if config.noise == "none" else f"{config.noise} τ = {config.noise_temperature:g}"
    if config.method == "aimle":
        parts = [f"c = {config.target_nnz:g}", f"η = {config.aimle_step:g}", noise]
        if config.aimle_controller != "paper":
            parts.append(f"{config.aimle_controller} controller")
        if getattr(config, "lam_scope", "example") != "example":
            parts.append(f"λ per {config.lam_scope}")
        return ", ".join(parts)
    if config.method == "imle":
        return f"λ = {config.lam:g}, {noise}"
    if config.method == "blackbox":
        return f"λ = {config.lam:g}"
    if config.method == "perturbed-fy":
        return f"σ = {config.sigma:g}, {config.samples or 1} sample(s)"
    return "true costs given"


def collect_runs(
    runs_dir: str | Path, evaluate_missing: bool = False, device: str = "cpu", include_unfinished: bool = False
) -> list[dict]:
    """One record per finished run under ``runs_dir`` (folders holding a checkpoint), sorted by method and seed.

    Runs that have not trained all their epochs are skipped (with a message) unless ``include_unfinished``.

    A record holds the method label, seed, precision, epochs, the test metrics (from
    ``test_metrics.json``; evaluated first if missing and ``evaluate_missing``), the wall time of
    training and validation (``elapsed_seconds`` of the last log record; older logs have only the
    training time, ``train_seconds``) and the history for the learning curves.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"{runs_dir} is not a directory of runs")
    records = []
    for run in sorted(p for p in runs_dir.iterdir() if (p / CHECKPOINT).exists()):
        checkpoint = run_files.load_checkpoint(run / CHECKPOINT)
        config = TrainConfig(**checkpoint["config"])
        if int(checkpoint["epoch"]) < config.epochs and not include_unfinished:
            print(f"skipping {run}: {checkpoint['epoch']} of {config.epochs} epochs trained")
            continue
        metrics_path = run / "test_metrics.json"
        if not metrics_path.exists() or json.loads(metrics_path.read_text())["epochs"] != checkpoint["epoch"]:
            if not evaluate_missing:
                raise FileNotFoundError(f"{metrics_path} is missing or older than the checkpoint; run evaluate")
            evaluate_run(run, "test", device=device)
        best = None
        if (run / BEST).exists():
            best_path = run / "test_metrics_best.json"
            best_epoch = int(run_files.load_checkpoint(run / BEST)["epoch"])
            if not best_path.exists() or json.loads(best_path.read_text())["epochs"] != best_epoch:
                if not evaluate_missing:
                    raise FileNotFoundError(f"{best_path} is missing or stale; run evaluate --checkpoint best")
                evaluate_run(run, "test", device=device, which="best")
            best = json.loads(best_path.read_text())
        history = run_files.read_log(run / LOG)
        records.append(
            {
                "run": str(run),
                "method": config.label,
                "settings": describe_settings(config),
                "seed": config.seed,
                "precision": config.precision,
                "epochs": int(checkpoint["epoch"]),
                "test": json.loads(metrics_path.read_text()),
                "test_best": best,  # the best-validation epoch's model on the test maps (None: no best.pt)
                "elapsed_seconds": history[-1].get("elapsed_seconds") if history else None,
                "train_seconds": sum(h["epoch_seconds"] for h in history),
                "history": history,
            }
        )
    if not records:
        raise FileNotFoundError(f"no runs (folders with {CHECKPOINT}) under {runs_dir}")
    return sorted(records, key=lambda r: (r["method"], r["settings"], r["seed"]))


def _mean_std(values: list[float], percent: bool) -> str:
    scale = 100.0 if percent else 1.0
    mean = scale * statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.1f}%" if percent else f"{mean:.4f}"
    std = scale * statistics.stdev(values)
    return f"{mean:.1f} ± {std:.1f}%" if percent else f"{mean:.4f} ± {std:.4f}"


def _minutes(runs: list[dict]) -> str:
    if all(r["elapsed_seconds"] is not None for r in runs):
        return " / ".join(f"{r['elapsed_seconds'] / 60:.0f}" for r in runs)
    return " / ".join(f"{r['train_seconds'] / 60:.0f}*" for r in runs)


def _best(runs: list[dict]) -> str:
    """Test accuracy of the best-validation epochs, and those epochs (— where a run kept no best.pt)."""
    if any(r["test_best"] is None for r in runs):
        return "—"
    epochs = ", ".join(str(r["test_best"]["epochs"]) for r in runs)
    return f"{_mean_std([r['test_best']['optimal_cost'] for r in runs], True)} (epochs {epochs})"


def summary_table(runs: list[dict]) -> str:
    """Markdown: one row per method and precision, metrics as mean ± standard deviation over its seeds.

    The best-validation column gives the test accuracy of each seed's epoch with the best
    validation accuracy (model selection on the validation maps). The wall-time column lists each
    seed's minutes of training and validation; a ``*`` marks a run whose log has only the training time.
    """
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for r in runs:
        groups[r["method"], r["settings"], r["precision"]].append(r)
    header = [
        "method",
        "settings",
        "seeds",
        "epochs",
        "precision",
        *[m[1] for m in METRICS],
        "best val. epoch: optimal-cost acc.",
        "wall time (min, per seed)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (method, settings, precision), group in groups.items():
        cells = [
            method,
            settings,
            ", ".join(str(r["seed"]) for r in group),
            "/".join(sorted({str(r["epochs"]) for r in group})),
            precision,
            *[_mean_std([r["test"][key] for r in group], percent) for key, _, percent in METRICS],
            _best(group),
            _minutes(group),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(runs: list[dict], out_dir: str | Path, name: str, title: str = "") -> list[Path]:
    """``NAME.md`` (the table), ``NAME.json`` (per-run metrics, no histories) and ``NAME_curves.png``."""
    from examples.warcraft.plots import plot_runs

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / f"{name}.md"
    table.write_text(summary_table(runs) + "\n")
    summary = out_dir / f"{name}.json"
    summary.write_text(json.dumps([{k: v for k, v in r.items() if k != "history"} for r in runs], indent=2) + "\n")
    curves: dict[str, list[list[dict]]] = defaultdict(list)
    precisions = {r["precision"] for r in runs}
    for r in runs:
        label = r["method"] + (f", {r['precision']}" if len(precisions) > 1 else "")
        curves[
            label
            if len({x["settings"] for x in runs if x["method"] == r["method"]}) == 1
            else f"{label}, {r['settings']}"
        ].append(r["history"])
    figure = plot_runs(dict(curves), out_dir / f"{name}_curves.png", title=title)
    return [table, summary, figure]
