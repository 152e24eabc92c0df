"""Summaries of many Warcraft runs: per-method mean ± standard deviation over seeds, and one figure."""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

from difftools.estimators import AIMLE_PRESETS
from examples import common
from examples.warcraft.train import BEST, CHECKPOINT, LOG, TrainConfig, evaluate_run

__all__ = ["ARCHIVE", "METRICS", "archive_runs", "describe_settings", "collect_runs", "summary_table", "write_report"]

# An archived run: this file (config, epochs, wall time, a note), the log and the test metrics, no weights.
# Small enough to commit, so a results table survives the git-ignored run folders it came from.
ARCHIVE = "run.json"
METRIC_FILES = ("test_metrics.json", "test_metrics_best.json")

# (key in test_metrics.json, column header, shown as a percentage)
METRICS = (
    ("optimal_cost", "optimal-cost acc.", True),
    ("perfect_match", "perfect match", True),
    ("valid_path", "valid path", True),
    ("regret", "regret", False),
    ("hamming_accuracy", "Hamming acc.", True),
)


# Optimal-cost accuracy on the original Warcraft 12x12 data, for orientation beside our generated data:
# Blackbox from Vlastelica et al. (ICLR 2020) and the I-MLE paper (NeurIPS 2021); I-MLE and DPO (a
# perturbed optimiser) from the I-MLE paper. The AIMLE paper's Warcraft numbers are in an appendix
# that our copy lacks.
PUBLISHED_12X12 = {"Blackbox": "96.0% / 95.2%", "I-MLE (forward)": "95.2%", "Perturbed + FY": "94.8% (DPO)"}


def _aimle_effective(config: TrainConfig) -> dict:
    """What an AIMLE run computed, whatever the spelling: its preset's values where it left them out."""
    from difftools.estimators.aimle import AIMLE_RULES

    controller = config.aimle_controller or "fast"
    preset = AIMLE_PRESETS[controller]
    rule = AIMLE_RULES[controller]
    given = {
        "target_nnz": config.target_nnz,
        "step": config.aimle_step,
        "initial_alpha": config.initial_alpha,
        "lam_scope": config.lam_scope,
        "count": config.aimle_count,
        "count_over": config.aimle_count_over,
    }
    return {
        "rule": "paper" if controller in ("paper", "reference") else "fast",
        "strict": controller == "reference",
        "max_alpha": config.max_alpha if config.max_alpha is not None else getattr(rule, "max_alpha", None),
        "difference": config.difference,
        "noise": config.effective_noise,
        "noise_temperature": None if config.effective_noise == "none" else config.noise_temperature,
        "samples": config.samples,
        **{k: preset[k] if v is None else v for k, v in given.items()},
    }


def describe_settings(config: TrainConfig) -> str:
    """The method's own hyper-parameters in a few words, e.g. ``c = 16, η = 0.01, no noise, paper controller``."""
    effective = config.effective_noise
    noise = "no noise" if effective == "none" else f"{effective} τ = {config.noise_temperature:g}"
    if config.method == "aimle" and _aimle_effective(config) == _aimle_effective(
        TrainConfig(method="aimle", aimle_controller="deterministic")
    ):
        # The preset, or the same settings spelled out (--forward --noise none --max-alpha 1): one row.
        return "deterministic preset"
    if config.method == "aimle":
        # Arguments left to AIMLE's defaults (None) are not named.
        parts = [f"c = {config.target_nnz:g}"] if config.target_nnz is not None else []
        # What c counts is named where it differs from the controller's preset.
        preset = AIMLE_PRESETS[config.aimle_controller or "fast"]
        if config.aimle_count not in (None, preset["count"]):
            parts.append(f"c per {'entry' if config.aimle_count == 'entries' else config.aimle_count}")
        if config.aimle_count_over not in (None, preset["count_over"]):
            parts.append("counted over every map" if config.aimle_count_over == "batch" else "counted over active maps")
        if config.aimle_step is not None:
            parts.append(f"η = {config.aimle_step:g}")
        deterministic = config.aimle_controller == "deterministic"
        if not (deterministic and effective == "none"):  # the deterministic preset has no noise
            parts.append(noise)
        if deterministic:
            parts.insert(0, "deterministic preset")
        elif config.aimle_controller is not None:
            parts.append(f"{config.aimle_controller} controller")
        if config.initial_alpha is not None:
            parts.append(f"α₀ = {config.initial_alpha:g}")
        if config.max_alpha is not None:
            parts.append(f"α ≤ {config.max_alpha:g}")
        if config.lam_scope not in (None, "example"):
            parts.append(f"λ per {config.lam_scope}")
        return ", ".join(parts) if len(parts) > 1 or deterministic else f"AIMLE's defaults, {noise}"
    if config.method == "imle":
        return f"λ = {config.lam:g}, {noise}"
    if config.method == "blackbox":
        return f"λ = {config.lam:g}"
    if config.method == "perturbed-fy":
        return f"σ = {config.noise_temperature:g}, {config.samples or 1} sample(s)"
    return "true costs given"


def collect_runs(
    runs_dirs: str | Path | list[str | Path],
    evaluate_missing: bool = False,
    device: str = "cpu",
    include_unfinished: bool = False,
) -> list[dict]:
    """One record per finished run under ``runs_dirs``, sorted by method, settings and seed.

    A run is a folder holding a checkpoint (a training run) or an ``ARCHIVE`` file (written by
    :func:`archive_runs`). Training runs that have not trained all their epochs are skipped (with a
    message) unless ``include_unfinished``. The same method, settings, precision and seed found
    twice is an error, so no seed counts twice in a mean.

    A record holds the method label, seed, precision, epochs, the test metrics (from
    ``test_metrics.json``; evaluated first if missing and ``evaluate_missing``), the wall time of
    training and validation (``elapsed_seconds`` of the last log record; older logs have only the
    training time, ``train_seconds``), the history for the learning curves and a note.
    """
    if isinstance(runs_dirs, (str, Path)):
        runs_dirs = [runs_dirs]
    records: dict[tuple, dict] = {}
    for runs_dir in map(Path, runs_dirs):
        if not runs_dir.is_dir():
            raise FileNotFoundError(f"{runs_dir} is not a directory of runs")
        for run in sorted(runs_dir.iterdir()):
            if (run / CHECKPOINT).exists():
                record = _training_run(run, evaluate_missing, device, include_unfinished)
            elif (run / ARCHIVE).exists():
                record = _archived_run(run)
            else:
                continue
            if record is None:
                continue
            key = (record["method"], record["settings"], record["precision"], record["seed"])
            if key in records:
                raise ValueError(f"{run} and {records[key]['run']} are the same run ({', '.join(map(str, key))})")
            records[key] = record
    if not records:
        where = ", ".join(map(str, runs_dirs))
        raise FileNotFoundError(f"no runs (folders with {CHECKPOINT} or {ARCHIVE}) under {where}")
    return sorted(records.values(), key=lambda r: (r["method"], r["settings"], r["seed"]))


def _record(run: Path, config: TrainConfig, epochs: int, test: dict, best: dict | None, history: list[dict]) -> dict:
    return {
        "run": str(run),
        "config": dict(config.__dict__),
        "method": config.label,
        "settings": describe_settings(config),
        "seed": config.seed,
        "size": config.size,
        "precision": config.precision,
        "epochs": epochs,
        "test": test,
        "test_best": best,  # the best-validation epoch's model on the test maps (None: no best.pt)
        "elapsed_seconds": history[-1].get("elapsed_seconds") if history else None,
        "train_seconds": sum(h["epoch_seconds"] for h in history),
        "history": history,
        "note": "",
    }


def _training_run(run: Path, evaluate_missing: bool, device: str, include_unfinished: bool) -> dict | None:
    checkpoint = common.load_checkpoint(run / CHECKPOINT)
    config = TrainConfig.from_saved(checkpoint["config"])
    if int(checkpoint["epoch"]) < config.epochs and not include_unfinished:
        print(f"skipping {run}: {checkpoint['epoch']} of {config.epochs} epochs trained")
        return None
    metrics_path = run / "test_metrics.json"
    if not metrics_path.exists() or json.loads(metrics_path.read_text())["epochs"] != checkpoint["epoch"]:
        if not evaluate_missing:
            raise FileNotFoundError(f"{metrics_path} is missing or older than the checkpoint; run evaluate")
        evaluate_run(run, "test", device=device)
    best = None
    if (run / BEST).exists():
        best_path = run / "test_metrics_best.json"
        best_epoch = int(common.load_checkpoint(run / BEST)["epoch"])
        if not best_path.exists() or json.loads(best_path.read_text())["epochs"] != best_epoch:
            if not evaluate_missing:
                raise FileNotFoundError(f"{best_path} is missing or stale; run evaluate --checkpoint best")
            evaluate_run(run, "test", device=device, which="best")
        best = json.loads(best_path.read_text())
    test = json.loads(metrics_path.read_text())
    return _record(run, config, int(checkpoint["epoch"]), test, best, common.read_log(run / LOG))


def _archived_run(run: Path) -> dict:
    """A run from its archive: ``ARCHIVE``, the test metrics and, where kept, the log."""
    try:
        saved = json.loads((run / ARCHIVE).read_text())
        config = TrainConfig.from_saved(saved["config"])
        test = json.loads((run / "test_metrics.json").read_text())
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{run}: not a readable archived run ({error})") from error
    best_path = run / "test_metrics_best.json"
    best = json.loads(best_path.read_text()) if best_path.exists() else None
    history = common.read_log(run / LOG) if (run / LOG).exists() else []
    record = _record(run, config, int(saved["epochs"]), test, best, history)
    if not history:  # a log that was not kept: the wall time as recorded with the run
        record["elapsed_seconds"] = saved.get("elapsed_seconds")
        record["train_seconds"] = saved.get("train_seconds", 0.0)
    record["note"] = saved.get("note", "")
    return record


def archive_runs(runs: list[dict], out_dir: str | Path) -> list[Path]:
    """Copy each training run's config, log and test metrics (not its weights) to ``out_dir/RUN``."""
    written = []
    for r in runs:
        run = Path(r["run"])
        if not (run / CHECKPOINT).exists():
            continue  # already an archive
        dest = Path(out_dir, run.name)
        dest.mkdir(parents=True, exist_ok=True)
        saved = {"config": r["config"], "epochs": r["epochs"], "note": r["note"]}
        common.write_json(dest / ARCHIVE, saved)
        for name in (LOG, *METRIC_FILES):
            if (run / name).exists():
                common.atomic_write_bytes(dest / name, (run / name).read_bytes())
        written.append(dest)
    return written


def _mean_std(values: list[float | None], percent: bool) -> str:
    """Mean ± sample standard deviation; a value of None (not recorded) is left out and marked †."""
    known = [v for v in values if v is not None]
    if not known:
        return "—"
    text = _mean_std_known(known, percent)
    return text + "†" if len(known) < len(values) else text


def _mean_std_known(values: list[float], percent: bool) -> str:
    scale = 100.0 if percent else 1.0
    mean = scale * statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.1f}%" if percent else f"{mean:.4f}"
    std = scale * statistics.stdev(values)
    return f"{mean:.1f} ± {std:.1f}%" if percent else f"{mean:.4f} ± {std:.4f}"


def _minutes(runs: list[dict]) -> str:
    return " / ".join(
        f"{r['elapsed_seconds'] / 60:.0f}" if r["elapsed_seconds"] is not None else f"{r['train_seconds'] / 60:.0f}*"
        for r in runs
    )


def _best(runs: list[dict]) -> str:
    """Test accuracy of the best-validation epochs, and those epochs (over the runs that kept a best.pt)."""
    text = _mean_std([r["test_best"]["optimal_cost"] if r["test_best"] else None for r in runs], True)
    if text == "—":
        return text
    return f"{text} (epochs {', '.join(str(r['test_best']['epochs']) for r in runs if r['test_best'])})"


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
        "published, original data (a different data set)",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (method, settings, precision), group in groups.items():
        cells = [
            method,
            settings,
            ", ".join(str(r["seed"]) for r in group),
            "/".join(sorted({str(r["epochs"]) for r in group})),
            precision,
            *[_mean_std([r["test"].get(key) for r in group], percent) for key, _, percent in METRICS],
            _best(group),
            _minutes(group),
            PUBLISHED_12X12.get(method, "—") if group[0]["size"] == 12 else "—",
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
    per_run = [{k: v for k, v in r.items() if k not in ("history", "config")} for r in runs]
    common.write_json(summary, per_run)
    curves: dict[str, list[list[dict]]] = defaultdict(list)
    precisions = {r["precision"] for r in runs}
    for r in (r for r in runs if r["history"]):  # archived runs whose log was not kept have no curve
        label = r["method"] + (f", {r['precision']}" if len(precisions) > 1 else "")
        curves[
            label
            if len({x["settings"] for x in runs if x["method"] == r["method"]}) == 1
            else f"{label}, {r['settings']}"
        ].append(r["history"])
    if not curves:  # only archived runs whose logs were not kept
        return [table, summary]
    figure = plot_runs(dict(curves), out_dir / f"{name}_curves.png", title=title)
    return [table, summary, figure]
