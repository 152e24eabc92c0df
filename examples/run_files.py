"""Run directories of the examples: atomic checkpoints, crash-safe JSON-lines logs, resume and CLI rules.

Every example that trains writes a run directory with the same rules:

* checkpoints hold tensors and primitive containers only and are read with
  ``torch.load(weights_only=True)``, so a tampered file cannot run code;
* files are written to a temporary sibling, flushed and ``fsync``-ed, then moved over the old one
  with ``os.replace`` (and the directory entry synced), so a kill at any point leaves either the old
  or the new file, never a torn one;
* a log is one JSON record per line, appended with ``fsync``; a torn last line (a kill during an
  append) is dropped with a warning when the log is read back, a damaged line elsewhere is an error
  that names the file and line;
* a command never replaces an existing run silently: without ``--resume`` it refuses, naming
  ``--resume`` and ``--overwrite``; with ``--resume`` it refuses settings that differ from the saved
  run, naming each one.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_write_bytes",
    "save_checkpoint",
    "load_checkpoint",
    "read_log",
    "append_log",
    "rewrite_log",
    "prepare_run_dir",
    "settings_differences",
    "given_options",
    "run_cli",
]


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


def run_cli(command: Callable[[], Any], prog: str) -> Any:
    """Run ``command``; a user error prints ``prog: error: message`` and exits with status 2.

    Set ``DIFFTOOLS_TRACEBACK=1`` to get the full traceback instead.
    """
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
