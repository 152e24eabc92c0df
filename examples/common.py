"""What every example shares: estimators by name, run directories, logs, the command line, tables, figures.

Each example keeps only what is its own (data, model, training loop, its commands); the rest is here:

* **Estimators by name.** :func:`make_estimator` builds a difftools estimator from a name and its
  options; :class:`Method` names one configuration of a comparison (``Method("IMLE (central, λ=10)",
  "imle", central=True, lam=10.0)``) and builds it over a solver.
* **Run directories.** Checkpoints hold tensors and primitive containers only and are read with
  ``torch.load(weights_only=True)``, so a tampered file cannot run code. Files are written to a
  temporary sibling, flushed and ``fsync``-ed, then moved over the old one with ``os.replace`` (and
  the directory entry synced), so a kill at any point leaves either the old or the new file, never a
  torn one. A command never replaces an existing run silently: without ``--resume`` it refuses,
  naming ``--resume`` and ``--overwrite``; with ``--resume`` it refuses settings that differ from
  the saved run, naming each one.
* **Logs.** One JSON record per line, appended with ``fsync``; a torn last line (a kill during an
  append) is dropped with a warning when the log is read back, a damaged line elsewhere is an error
  that names the file and line.
* **Command line.** :class:`HelpFormatter` shows every option's default; :func:`given_options`
  tells typed options from defaults; :func:`run_cli` turns a user error into one line and exit 2.
* **Tables and figures.** CSV rows, mean ± standard error, band plots and PNGs.

Importing this module imports neither torch nor matplotlib (so that ``--help`` is instant): they are
imported by the functions that need them.
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import json
import math
import os
import sys
import warnings
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

__all__ = [
    "ESTIMATORS",
    "make_estimator",
    "Method",
    "atomic_write_bytes",
    "write_json",
    "save_checkpoint",
    "load_checkpoint",
    "read_log",
    "append_log",
    "rewrite_log",
    "prepare_run_dir",
    "settings_differences",
    "refuse_other_settings",
    "HelpFormatter",
    "given_options",
    "run_cli",
    "Row",
    "write_csv",
    "read_csv",
    "mean_se",
    "summarise",
    "band_plot",
    "subplots",
    "save_figure",
]

# ---------------------------------------------------------------------------------------- estimators
# Estimator names of the examples -> the difftools class.
ESTIMATORS = {
    "aimle": "AIMLE",
    "imle": "IMLE",
    "ste": "STE",
    "blackbox": "Blackbox",
    "perturbed": "Perturbed",
    "score-function": "ScoreFunction",
}


def make_estimator(kind: str, solver: Any, /, **options: Any) -> Any:
    """The difftools estimator named ``kind`` (a key of :data:`ESTIMATORS`) over ``solver``.

    ``make_estimator("imle", solver, lam=10.0)`` is ``difftools.IMLE(solver, lam=10.0)``; the
    estimator checks its options.
    """
    if kind not in ESTIMATORS:
        raise ValueError(f"unknown estimator {kind!r}; expected one of {', '.join(map(repr, ESTIMATORS))}")
    import difftools

    return getattr(difftools, ESTIMATORS[kind])(solver, **options)


# The Method settings each estimator takes; the others must keep their defaults.
_METHOD_SETTINGS = {
    "aimle": ("samples", "central", "controller", "count"),
    "imle": ("samples", "central", "lam"),
    "ste": ("samples",),
}


@dataclass(frozen=True)
class Method:
    """One named configuration of a comparison: an estimator ``kind`` and its settings.

    ``kind`` is ``"aimle"``, ``"imle"`` or ``"ste"`` (built by :meth:`estimator`), or a kind of the
    example's own (a relaxation such as Gumbel-softmax), which the example builds itself.
    ``samples`` is S; ``central`` selects central differences (AIMLE, IMLE); ``lam`` is IMLE's λ;
    ``controller`` is AIMLE's λ controller and ``count`` what its target c counts. ``perturbed=False``
    builds the estimator without noise, whatever noise the example passes: a deterministic layer
    whose forward is MAP(θ) (AIMLE's ``controller="deterministic"`` preset, Blackbox-like I-MLE).
    """

    name: str
    kind: str
    samples: int = 1
    central: bool = False
    lam: float | None = None
    controller: str = "paper"
    count: str = "entries"
    perturbed: bool = True

    def __post_init__(self) -> None:
        taken = _METHOD_SETTINGS.get(self.kind)
        if taken is None:
            if not self.perturbed:  # the example's own kinds (relaxations) build themselves, with their noise
                raise ValueError(
                    f"Method {self.name!r}: perturbed=False needs an estimator kind ({', '.join(_METHOD_SETTINGS)})"
                )
            return
        for setting in fields(self)[2:]:
            if setting.name == "perturbed":  # every estimator kind takes it
                continue
            if setting.name not in taken and getattr(self, setting.name) != setting.default:
                raise ValueError(f"Method {self.name!r}: {self.kind} takes no {setting.name} (only {', '.join(taken)})")

    def estimator(self, solver: Any, /, **options: Any) -> Any:
        """The estimator over ``solver`` with this method's settings and ``options`` (noise, generator, ...)."""
        if self.kind not in _METHOD_SETTINGS:
            raise ValueError(
                f"Method {self.name!r}: no estimator of kind {self.kind!r} (Method builds "
                f"{', '.join(_METHOD_SETTINGS)}; other kinds are the example's own)"
            )
        settings = {name: getattr(self, name) for name in _METHOD_SETTINGS[self.kind]}
        if not self.perturbed:
            options = {**options, "noise": None}
        return make_estimator(self.kind, solver, **settings, **options)


# ----------------------------------------------------------------------------------- run directories
def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some file systems (and Windows) do not open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never a mix."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return path


def write_json(path: str | os.PathLike, value: Any, indent: int = 2) -> Path:
    """``value`` as indented JSON and a final newline, written atomically (see :func:`atomic_write_bytes`)."""
    return atomic_write_bytes(path, (json.dumps(value, indent=indent) + "\n").encode("utf-8"))


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """``torch.save`` of ``state`` to ``path``, atomically (see :func:`atomic_write_bytes`)."""
    import torch

    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    return atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", hint: str = "") -> dict:
    """A checkpoint read with ``torch.load(weights_only=True)``: no file can run code when loaded.

    A missing file raises ``FileNotFoundError`` (followed by ``hint``); a file that is not a
    tensors-only checkpoint (damaged, or holding pickled objects) raises ``ValueError`` naming it.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint {path}" + (f"; {hint}" if hint else ""))
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises UnpicklingError, RuntimeError, EOFError, ... for bad files
        raise ValueError(
            f"{path} is not a readable tensors-only checkpoint ({type(error).__name__}: {str(error).splitlines()[0]}); "
            "it may be damaged or not written by this program — it was not executed"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, expected a checkpoint dict")
    return state


def read_log(path: str | os.PathLike) -> list[dict]:
    """The records of a JSON-lines log; a torn last line is dropped with a warning.

    A missing file gives ``[]``. A line that is not a JSON object anywhere but at the end raises
    ``ValueError`` naming the file and the line number.
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    records: list[dict] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as error:
            last = all(not rest.strip() for rest in lines[number:])
            if last and not text.endswith("\n"):
                warnings.warn(f"{path}: dropped a torn last line {number} (an interrupted write)", stacklevel=2)
                break
            raise ValueError(f"{path}, line {number}: not a JSON record ({error}); the log is damaged") from None
        records.append(record)
    return records


def append_log(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Append one record as a JSON line and ``fsync`` it."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(dict(record)) + "\n")
        f.flush()
        os.fsync(f.fileno())


def rewrite_log(path: str | os.PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    """Replace the log with ``records``, atomically (used on resume to drop records past the checkpoint)."""
    data = "".join(json.dumps(dict(r)) + "\n" for r in records).encode("utf-8")
    atomic_write_bytes(path, data)


def prepare_run_dir(run_dir: str | os.PathLike, run_files: Sequence[str], resume: bool, overwrite: bool) -> Path:
    """Create ``run_dir`` for a new run, or check it for a resumed one.

    ``run_files`` are the names whose presence marks a run (the first is the checkpoint that
    ``--resume`` needs). A new run in a directory holding any of them is refused unless
    ``overwrite``, which deletes exactly those files (nothing else in the directory).
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other: continue the run, or replace it")
    existing = [name for name in run_files if (run_dir / name).exists()]
    if resume:
        if not (run_dir / run_files[0]).exists():
            raise FileNotFoundError(
                f"--resume: {run_dir / run_files[0]} does not exist; start the run without --resume"
            )
        return run_dir
    if existing and not overwrite:
        raise FileExistsError(
            f"{run_dir} already holds a run ({', '.join(existing)}); pass --resume to continue it, "
            "--overwrite to replace it, or choose another output directory"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in existing:
        (run_dir / name).unlink()
    return run_dir


def settings_differences(saved: Mapping[str, Any], given: Mapping[str, Any], fields: Collection[str]) -> list[str]:
    """``["lr: the run has 0.0005, now 0.001", ...]`` for each of ``fields`` where the two differ."""
    return [
        f"{name}: the run has {saved.get(name)!r}, now {given.get(name)!r}"
        for name in fields
        if saved.get(name) != given.get(name)
    ]


def refuse_other_settings(
    run_dir: str | os.PathLike,
    saved: Mapping[str, Any],
    given: Mapping[str, Any],
    fields: Collection[str],
    may_change: str,
    advice: str = "",
) -> None:
    """On ``--resume``: a ``ValueError`` naming each of ``fields`` where ``given`` differs from the ``saved`` run.

    ``may_change`` lists the options that may change on resume (``"--epochs, --device"``); ``advice``
    is appended to the message.
    """
    differences = settings_differences(saved, given, fields)
    if differences:
        raise ValueError(
            f"--resume: {run_dir} was trained with other settings ({'; '.join(differences)}); only "
            f"{may_change} may change on resume{advice}"
        )


# -------------------------------------------------------------------------------------- command line
class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` that shows every option's default: ``(default: …)`` unless the help already names one.

    Flags read ``(default: off)``; an option whose help says ``default`` itself (a default that
    depends on other options, say) is left as written.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help = action.help or ""
        if "default" in help or action.default is argparse.SUPPRESS or action.required:
            return help
        if not action.option_strings and action.nargs not in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return help  # a required positional argument
        if action.nargs == 0 and action.default in (False, None):  # store_true / store_const
            return f"{help} (default: off)".strip()
        return f"{help} (default: %(default)s)".strip()

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and action.option_strings:  # argparse shows no help line at all without a help text
            action = copy.copy(action)
            action.help = self._get_help_string(action) or None
        return super()._format_action(action)


def given_options(build_parser: Callable[[], argparse.ArgumentParser], argv: Sequence[str]) -> set[str]:
    """The ``dest`` names of the options given explicitly in ``argv`` (not taken from defaults).

    A fresh parser is built with every default suppressed (argparse has no public way to ask
    whether a value came from the command line), so only given options appear in its namespace.
    """
    parser = build_parser()

    def suppress(p: argparse.ArgumentParser) -> None:
        p._defaults.clear()
        for action in p._actions:
            action.default = argparse.SUPPRESS
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    suppress(sub)

    suppress(parser)
    return set(vars(parser.parse_args(argv)))


# Errors a user causes (bad paths, settings, data): the message is the whole story, no traceback.
USER_ERRORS = (ValueError, OSError)


def run_cli(command: Callable[[], Any], prog: str, threads: int | None = None) -> Any:
    """Run ``command``; a user error prints ``prog: error: message`` and exits with status 2.

    ``threads`` sets torch's CPU threads first. Set ``DIFFTOOLS_TRACEBACK=1`` to get the full
    traceback instead of the one-line message.
    """
    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        return command()
    except USER_ERRORS as error:
        if os.environ.get("DIFFTOOLS_TRACEBACK"):
            raise
        message: Any = error
        if isinstance(error, OSError) and error.filename and str(error.filename) not in str(error):
            message = f"{error.filename}: {error}"
        print(f"{prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2) from None


# -------------------------------------------------------------------------------- tables and figures
Row = dict[str, Any]


def write_csv(rows: Sequence[Row], path: str | Path) -> Path:
    """Write rows (dicts; the union of their keys is the header, in first-seen order) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header: list[str] = []
    for row in rows:
        header += [k for k in row if k not in header]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path: str | Path) -> list[Row]:
    """Rows of a CSV written by :func:`write_csv`, numbers parsed back to int/float."""

    def parse(value: str) -> Any:
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
        return value

    with Path(path).open(newline="", encoding="utf-8") as fh:
        return [{k: parse(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def mean_se(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean, standard error of the mean (0 for one value) and count."""
    xs = [float(v) for v in values]
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return mean, 0.0, n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return mean, math.sqrt(var / n), n


def summarise(rows: Iterable[Row], keys: Sequence[str], value: str) -> dict[tuple, tuple[float, float, int]]:
    """Group rows by ``keys`` and return ``{key tuple: mean_se(row[value])}``."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys)].append(row[value])
    return {k: mean_se(v) for k, v in groups.items()}


def band_plot(
    ax: Any,
    rows: Sequence[Row],
    *,
    x: str,
    y: str,
    series: str,
    label: Callable[[Any], str] = str,
    order: Sequence[Any] | None = None,
    style: Callable[[Any], dict] | None = None,
) -> None:
    """One line per value of ``series``: mean of ``y`` against ``x`` with a ± 1 standard-error band.

    ``style(name)`` may return extra ``Axes.plot`` keyword arguments for a series.
    """
    stats = summarise(rows, (series, x), y)
    names = order if order is not None else list(dict.fromkeys(r[series] for r in rows))
    for name in names:
        points = sorted((k[1], v) for k, v in stats.items() if k[0] == name)
        if not points:
            continue
        xs = [p[0] for p in points]
        means = [p[1][0] for p in points]
        ses = [p[1][1] for p in points]
        kwargs = {"marker": "o", "markersize": 3, **(style(name) if style else {})}
        (line,) = ax.plot(xs, means, label=label(name), **kwargs)
        ax.fill_between(xs, [m - s for m, s in zip(means, ses)], [m + s for m, s in zip(means, ses)],
                        color=line.get_color(), alpha=0.2)


def subplots(*args: Any, figsize: tuple[float, float] | None = None, layout: str | None = None, **kwargs: Any):
    """``(figure, axes)`` as ``matplotlib.pyplot.subplots`` returns them, on a figure of its own.

    The figure is a plain ``matplotlib.figure.Figure``, not one of pyplot's: it needs no display and
    no backend choice, and nothing is left open when it is dropped.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout=layout)
    return fig, fig.subplots(*args, **kwargs)


def save_figure(fig: Any, path: str | Path, dpi: int = 110, tight_layout: bool = True) -> Path:
    """Save a matplotlib figure as PNG (creating the folder; ``tight_layout`` first unless told not to)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if tight_layout:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path
