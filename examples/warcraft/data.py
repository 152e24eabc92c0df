"""Warcraft data on disk: the original file layout, the generator that writes it, and the loader.

Layout (identical to the published dataset, so the loader reads the original files unchanged)::

    <data_dir>/warcraft_shortest_path_oneskin/<K>x<K>/
        {split}_maps.npy             (N, 8K, 8K, 3) uint8   RGB, channels last
        {split}_vertex_weights.npy   (N, K, K)      float16 cell costs
        {split}_shortest_paths.npy   (N, K, K)      uint8   0/1 path mask, both corners set
        {split}_unique.npy           (N,)           bool    NOT in the original: whether the
                                                            shortest path is unique (generated data only)

For K in {18, 24, 30} the original train split is stored as ``train_*_part0.npy`` and
``train_*_part1.npy`` (concatenated along axis 0); the generator does the same. The terrain
painting lives in :mod:`examples.warcraft.terrain`.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from examples.warcraft.terrain import CELL_PIXELS, COSTS, render_maps

if TYPE_CHECKING:
    import torch

__all__ = [
    "DATASET_NAME",
    "SIZES",
    "SPLITS",
    "WarcraftSplit",
    "dataset_dir",
    "generate",
    "load_split",
    "channel_statistics",
]

DATASET_NAME = "warcraft_shortest_path_oneskin"
SIZES = (12, 18, 24, 30)
SPLITS = ("train", "val", "test")
DEFAULT_COUNTS = {"train": 10_000, "val": 1_000, "test": 1_000}
_FIELDS = {"maps": np.uint8, "vertex_weights": np.float16, "shortest_paths": np.uint8}
_CHUNK = 250  # maps rendered per task; fixed so that the data do not depend on the number of workers


def dataset_dir(data_dir: str | os.PathLike, size: int) -> Path:
    """``<data_dir>/warcraft_shortest_path_oneskin/<K>x<K>``."""
    return Path(data_dir) / DATASET_NAME / f"{size}x{size}"


def _split_parts(split: str, size: int) -> tuple[str, ...]:
    """File-name suffixes of a split: the large train splits come in two parts."""
    return ("_part0", "_part1") if split == "train" and size > 12 else ("",)


# ----------------------------------------------------------------------------------- generator
def _generate_chunk(seed: int, split_index: int, chunk_index: int, n: int, size: int):
    """Render and label one chunk; its randomness depends only on (seed, split, chunk)."""
    from examples.warcraft.labelling import dijkstra  # here, so that `--help` imports no torch

    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(split_index, chunk_index)))
    maps, classes = render_maps(rng, n, size)
    weights = COSTS[classes].astype(np.float16)
    paths = np.empty((n, size, size), dtype=np.uint8)
    unique = np.empty(n, dtype=bool)
    for i, w in enumerate(weights):
        # Label with the float16 costs exactly as stored, so labels agree with what users load.
        result = dijkstra(w.astype(np.float64))
        paths[i], unique[i] = result.path, result.unique
    return maps, weights, paths, unique


def generate(
    data_dir: str | os.PathLike = "data",
    size: int = 12,
    counts: dict[str, int] | None = None,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
) -> Path:
    """Generate Warcraft-like maps in the original layout and return the dataset directory.

    Args:
        data_dir: root; files go to ``<data_dir>/warcraft_shortest_path_oneskin/<K>x<K>/``.
        size: grid size K, one of 12, 18, 24, 30.
        counts: maps per split (default 10,000 / 1,000 / 1,000, as in the original).
        seed: the data are a deterministic function of ``seed`` (and of the counts).
        workers: processes rendering and labelling chunks (default: up to 2, the CPU count).
        progress: show a tqdm bar.
    """
    if size not in SIZES:
        raise ValueError(f"generate: size must be one of {SIZES}, got {size!r}")
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    for split, n in counts.items():
        if split not in SPLITS:
            raise ValueError(f"generate: unknown split {split!r}; expected one of {SPLITS}")
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"generate: the number of {split} maps must be a positive int, got {n!r}")
    workers = workers or min(2, os.cpu_count() or 1)
    out = dataset_dir(data_dir, size)
    out.mkdir(parents=True, exist_ok=True)
    total = sum(counts.values())
    bar = tqdm(total=total, desc=f"generating {size}x{size} maps", unit="map", disable=not progress)
    pool = ProcessPoolExecutor(workers) if workers > 1 else None
    try:
        for split, n in counts.items():
            _generate_split(out, split, n, size, seed, pool, bar)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out


def _generate_split(out: Path, split: str, n: int, size: int, seed: int, pool, bar) -> None:
    pixels = size * CELL_PIXELS
    shapes = {"maps": (n, pixels, pixels, 3), "vertex_weights": (n, size, size), "shortest_paths": (n, size, size)}
    # Written under temporary names and renamed at the end, so an interrupted run leaves no valid-looking split.
    arrays = {
        field: np.lib.format.open_memmap(out / f".{split}_{field}.tmp.npy", mode="w+", dtype=dtype, shape=shapes[field])
        for field, dtype in _FIELDS.items()
    }
    unique = np.empty(n, dtype=bool)
    starts = range(0, n, _CHUNK)
    jobs = [(seed, SPLITS.index(split), i, min(_CHUNK, n - s), size) for i, s in enumerate(starts)]
    results = pool.map(_generate_chunk, *zip(*jobs)) if pool is not None else (_generate_chunk(*j) for j in jobs)
    for start, (maps, weights, paths, uniq) in zip(starts, results):
        stop = start + len(maps)
        arrays["maps"][start:stop] = maps
        arrays["vertex_weights"][start:stop] = weights
        arrays["shortest_paths"][start:stop] = paths
        unique[start:stop] = uniq
        bar.update(len(maps))
    parts = _split_parts(split, size)
    bounds = np.linspace(0, n, len(parts) + 1).round().astype(int)
    for field, array in arrays.items():
        array.flush()
        if len(parts) == 1:
            del array
            os.replace(out / f".{split}_{field}.tmp.npy", out / f"{split}_{field}.npy")
            continue
        for part, lo, hi in zip(parts, bounds[:-1], bounds[1:]):
            np.save(out / f"{split}_{field}{part}.npy", np.asarray(array[lo:hi]))
        del array
        os.remove(out / f".{split}_{field}.tmp.npy")
    np.save(out / f"{split}_unique.npy", unique)


# -------------------------------------------------------------------------------------- loader
@dataclass
class WarcraftSplit:
    """One split: ``maps`` (N, 8K, 8K, 3) uint8, ``weights`` (N, K, K) float16, ``paths`` (N, K, K)
    uint8 and ``unique`` (N,) bool, or None for the original data (which do not record it)."""

    maps: np.ndarray
    weights: np.ndarray
    paths: np.ndarray
    unique: np.ndarray | None

    def __len__(self) -> int:
        return len(self.maps)

    @property
    def size(self) -> int:
        return self.weights.shape[-1]


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(
            f"Warcraft data: {path} is not a readable .npy array ({e}); regenerate or re-download it"
        ) from e


def _load_field(directory: Path, split: str, field: str, size: int) -> np.ndarray:
    single = directory / f"{split}_{field}.npy"
    if single.exists():
        return _load_array(single)
    parts = [directory / f"{split}_{field}{p}.npy" for p in ("_part0", "_part1")]
    if split == "train" and all(p.exists() for p in parts):
        arrays = [_load_array(p) for p in parts]
        if arrays[0].shape[1:] != arrays[1].shape[1:] or arrays[0].dtype != arrays[1].dtype:
            raise ValueError(
                f"Warcraft data: {parts[0].name} {arrays[0].shape} {arrays[0].dtype} and {parts[1].name} "
                f"{arrays[1].shape} {arrays[1].dtype} do not match; they should be two halves of one array"
            )
        return np.concatenate(arrays)
    expected = f"{single.name}" + (f" (or {parts[0].name} + {parts[1].name})" if split == "train" else "")
    raise FileNotFoundError(
        f"Warcraft data: missing {expected} in {directory}; generate data with "
        f"`python -m examples.warcraft generate --size {size}` or point --data-dir at the original dataset root"
    )


def load_split(data_dir: str | os.PathLike, size: int, split: str) -> WarcraftSplit:
    """Read and validate one split of the original (or generated) dataset.

    Raises ``FileNotFoundError`` for a missing directory or file and ``ValueError`` naming the file
    for a wrong dtype, shape, mismatched length or out-of-range values.
    """
    if size not in SIZES:
        raise ValueError(f"load_split: size must be one of {SIZES}, got {size!r}")
    if split not in SPLITS:
        raise ValueError(f"load_split: split must be one of {SPLITS}, got {split!r}")
    directory = dataset_dir(data_dir, size)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"Warcraft data: no directory {directory}; generate data with "
            f"`python -m examples.warcraft generate --size {size} --data-dir {data_dir}`"
        )
    arrays = {field: _load_field(directory, split, field, size) for field in _FIELDS}
    pixels = size * CELL_PIXELS
    expected_shapes = {"maps": (pixels, pixels, 3), "vertex_weights": (size, size), "shortest_paths": (size, size)}
    n = len(arrays["maps"])
    for field, array in arrays.items():
        name = f"{split}_{field}"
        if array.dtype != _FIELDS[field]:
            raise ValueError(f"Warcraft data: {name} has dtype {array.dtype}, expected {np.dtype(_FIELDS[field])}")
        if array.ndim != 4 - (field != "maps") or array.shape[1:] != expected_shapes[field]:
            expected = ", ".join(map(str, expected_shapes[field]))
            raise ValueError(
                f"Warcraft data: {name} has shape {array.shape}, expected (N, {expected}) for {size}x{size} grids"
            )
        if len(array) != n:
            raise ValueError(f"Warcraft data: {name} has {len(array)} entries but {split}_maps has {n}")
    weights = np.asarray(arrays["vertex_weights"]).astype(np.float32)
    if not np.isfinite(weights).all() or (weights <= 0).any():
        raise ValueError(f"Warcraft data: {split}_vertex_weights must be finite and positive")
    paths = np.asarray(arrays["shortest_paths"])
    if paths.max(initial=0) > 1:
        raise ValueError(f"Warcraft data: {split}_shortest_paths must be a 0/1 mask, found value {paths.max()}")
    if n and not (paths[:, 0, 0].all() and paths[:, -1, -1].all()):
        raise ValueError(f"Warcraft data: {split}_shortest_paths must contain both corner cells in every mask")
    unique = None
    unique_file = directory / f"{split}_unique.npy"
    if unique_file.exists():
        unique = np.asarray(_load_array(unique_file))
        if unique.shape != (n,) or unique.dtype != np.bool_:
            raise ValueError(
                f"Warcraft data: {unique_file.name} has shape {unique.shape} {unique.dtype}, expected ({n},) bool"
            )
    return WarcraftSplit(arrays["maps"], arrays["vertex_weights"], paths, unique)


def channel_statistics(maps: np.ndarray, chunk: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of ``maps`` (N, H, W, 3) uint8 on the [0, 1] scale (computed in chunks)."""
    import torch

    total = np.zeros(3)
    squares = np.zeros(3)
    for s in range(0, len(maps), chunk):
        x = np.asarray(maps[s : s + chunk], dtype=np.float64) / 255.0
        total += x.sum(axis=(0, 1, 2))
        squares += (x**2).sum(axis=(0, 1, 2))
    count = len(maps) * math.prod(maps.shape[1:3])
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
