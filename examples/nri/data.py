"""The NRI spanning-tree particle dataset: the bit-for-bit generation recipe, file names and loading.

Recipe (Paulus et al. 2020, as used in the AIMLE paper's Table 2; see docs/examples/nri.md): one
seeded stream (``numpy`` seed 42, ``torch`` seed 42) generates train, valid and test in that order.
Per sample: a maximum spanning tree of 45 Gumbel weights, random initial positions, then T frames
of one-step Fruchterman–Reingold layouts (``networkx.spring_layout``) of that tree.

What "the first samples equal" means: nothing draws from either stream between samples, and a
split boundary neither reseeds nor draws, so a run is one sequence of samples ``s_0, s_1, ...``
(for a given T) cut into consecutive pieces. A run with sizes ``(a, b, c)`` stores ``s_0..s_{a-1}``
as train, ``s_a..s_{a+b-1}`` as valid and ``s_{a+b}..s_{a+b+c-1}`` as test. So a small run's train
split is a prefix of the full run's train split, but its valid split begins where ITS train split
ends: it equals the full run's train samples ``a..a+b-1`` (when ``a + b <= 50,000``), not the full
valid split. Models are not used here: this module only needs numpy, torch and networkx.

Parallel generation (``workers > 1``) keeps that sequence bit for bit: a cheap sequential replay
makes the same stream calls as the recipe without running the layouts and records both stream
states at the start of every chunk of ``chunk_size`` samples; worker processes restore those states,
run the real recipe on their chunk and check that they end in the state the replay recorded for
the next chunk (a networkx that draws differently raises instead of silently changing the data).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from examples.nri.config import FULL_SIZES

__all__ = [
    "NUM_VERTICES",
    "NUM_DIMS",
    "SEED",
    "SPLITS",
    "FULL_SIZES",
    "Split",
    "data_file",
    "edges_file",
    "recipe_gumbels",
    "kruskal_maximum_tree",
    "sample_trajectory",
    "generate",
    "load_split",
]

NUM_VERTICES = 10
NUM_DIMS = 2
SEED = 42
SPLITS = ("train", "valid", "test")
# The spring-layout threshold of the original script; with one iteration it never stops early.
LAYOUT_THRESHOLD = 1e-10
# Samples per parallel task. Fixed, not derived from the number of workers; the data never depend on it.
CHUNK_SIZE = 500


def _suffix(timesteps: int) -> str:
    return f"novar_1skip_{timesteps}t_1r_graph{NUM_VERTICES}"


def data_file(data_dir: str | Path, split: str, timesteps: int) -> Path:
    """``data_{split}_novar_1skip_{T}t_1r_graph10.npy``: positions ``(N, T, 2, 10)`` float64."""
    return Path(data_dir) / f"data_{split}_{_suffix(timesteps)}.npy"


def edges_file(data_dir: str | Path, split: str, timesteps: int) -> Path:
    """``edges_{split}_novar_1skip_{T}t_1r_graph10.npy``: adjacency ``(N, 10, 10)`` float32."""
    return Path(data_dir) / f"edges_{split}_{_suffix(timesteps)}.npy"


def recipe_gumbels(generator: torch.Generator, n: int = NUM_VERTICES) -> Tensor:
    """Step 1 of the recipe: ``n(n-1)`` float32 Gumbels ``-log(-log u)``; the first 45 are the weights."""
    u = torch.rand(n * (n - 1), generator=generator)
    return -torch.log(-torch.log(u))


def kruskal_maximum_tree(weights: Tensor, n: int = NUM_VERTICES) -> np.ndarray:
    """Symmetric float32 0/1 adjacency of the maximum spanning tree (Kruskal, heaviest edge first).

    ``weights[p]`` belongs to the p-th pair of ``torch.triu_indices(n, n, 1)``; equal weights keep
    that order (a stable sort), so the tree is a deterministic function of the weights.
    """
    rows, cols = torch.triu_indices(n, n, 1).tolist()
    parent = list(range(n))

    def root(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    adj = np.zeros((n, n), dtype=np.float32)
    for p in torch.argsort(-weights[: len(rows)], stable=True).tolist():
        a, b = root(rows[p]), root(cols[p])
        if a != b:
            parent[a] = b
            adj[rows[p], cols[p]] = adj[cols[p], rows[p]] = 1.0
    return adj


def _layout_step(graph: nx.Graph, pos: dict, rng: np.random.RandomState) -> dict:
    # One Fruchterman-Reingold iteration; spring_layout also draws rng.rand(n, 2) (discarded
    # initial positions for absent nodes), which is part of the stream.
    return nx.spring_layout(
        graph, pos=pos, iterations=1, threshold=LAYOUT_THRESHOLD, center=np.zeros(NUM_DIMS), seed=rng
    )


def sample_trajectory(
    timesteps: int, generator: torch.Generator, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """One sample of the recipe: positions ``(T, 2, n)`` float64 and the tree ``(n, n)`` float32.

    ``generator`` plays the role of the global torch stream after ``torch.manual_seed(42)`` and
    ``rng`` that of the global numpy stream after ``numpy.random.seed(42)`` (same draws).
    """
    n = NUM_VERTICES
    adj = kruskal_maximum_tree(recipe_gumbels(generator, n), n)
    init = rng.randn(n, NUM_DIMS)
    graph = nx.Graph()
    # Node order = order of first appearance in this row-major scan; it fixes the summation
    # order inside the layout, so it is part of the recipe.
    graph.add_edges_from(zip(*np.where(adj == 1.0)))
    pos = _layout_step(graph, {i: init[i] for i in range(n)}, rng)
    frames = [[pos[i] for i in range(n)]]
    for _ in range(timesteps - 1):
        pos = _layout_step(graph, pos, rng)
        # The original's zero-variance noise: values unchanged, but the draws consume the stream.
        for i in range(n):
            pos[i] = pos[i] + rng.randn(NUM_DIMS) * 0.0
        frames.append([pos[i] for i in range(n)])
    return np.transpose(np.stack(frames), (0, 2, 1)), adj


@dataclass
class Split:
    """One split as tensors: ``positions [N, n, T, 2]`` float32 and ``edges [N, n, n]`` float32."""

    positions: Tensor
    edges: Tensor

    def __len__(self) -> int:
        return self.positions.shape[0]

    def to(self, device: torch.device | str) -> Split:
        return Split(self.positions.to(device), self.edges.to(device))


def generate(
    timesteps: int,
    sizes: dict[str, int] | None = None,
    data_dir: str | Path = "data",
    progress: bool = True,
    workers: int = 1,
    chunk_size: int = CHUNK_SIZE,
) -> dict[str, Path]:
    """Generate train, valid and test (in that order, one stream) and save them; return the paths.

    ``sizes`` maps split names to sample counts (default: 50,000 / 10,000 / 10,000). ``workers``
    processes generate chunks of ``chunk_size`` consecutive samples in parallel (1: in this
    process, sample by sample); the files are byte-identical for every ``workers`` and ``chunk_size``.
    """
    if timesteps not in (10, 20):
        raise ValueError(f"generate: timesteps must be 10 or 20, got {timesteps!r}")
    sizes = dict(FULL_SIZES if sizes is None else sizes)
    if set(sizes) != set(SPLITS) or any(not isinstance(v, int) or v < 1 for v in sizes.values()):
        raise ValueError(f"generate: sizes must give a positive int for each of {SPLITS}, got {sizes!r}")
    for name, value in (("workers", workers), ("chunk_size", chunk_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"generate: {name} must be a positive int, got {value!r}")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    total = sum(sizes.values())
    with tqdm(total=total, desc=f"generate T={timesteps}", disable=not progress) as bar:
        if workers == 1:
            streams = torch.Generator().manual_seed(SEED), np.random.RandomState(SEED)
            positions, edges = _sample_block(timesteps, total, *streams, bar)
        else:
            positions, edges = _generate_parallel(timesteps, total, workers, chunk_size, bar)
    # The splits are consecutive pieces of one sequence of samples.
    written: dict[str, Path] = {}
    start = 0
    for split in SPLITS:
        stop = start + sizes[split]
        written[f"data_{split}"] = data_file(data_dir, split, timesteps)
        written[f"edges_{split}"] = edges_file(data_dir, split, timesteps)
        np.save(written[f"data_{split}"], positions[start:stop])
        np.save(written[f"edges_{split}"], edges[start:stop])
        start = stop
    return written


def _sample_block(
    timesteps: int, count: int, generator: torch.Generator, rng: np.random.RandomState, bar: tqdm | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` consecutive samples of the recipe from the streams' current states, as arrays."""
    positions = np.empty((count, timesteps, NUM_DIMS, NUM_VERTICES), dtype=np.float64)
    edges = np.empty((count, NUM_VERTICES, NUM_VERTICES), dtype=np.float32)
    for k in range(count):
        positions[k], edges[k] = sample_trajectory(timesteps, generator, rng)
        if bar is not None:
            bar.update()
    return positions, edges


# Stream states as plain picklable values: (torch generator state bytes, numpy RandomState.get_state()).
StreamStates = tuple[bytes, tuple]


def _stream_states(generator: torch.Generator, rng: np.random.RandomState) -> StreamStates:
    return generator.get_state().numpy().tobytes(), rng.get_state()


def _skip_sample(timesteps: int, generator: torch.Generator, rng: np.random.RandomState) -> None:
    """Advance both streams exactly as ``sample_trajectory`` does, without the layouts.

    The same calls, not a count of uniforms: legacy ``randn`` caches a second Gaussian, so only the
    same sequence of ``rand``/``randn`` calls is guaranteed to leave the same state.
    """
    rand, randn = rng.rand, rng.randn
    torch.rand(NUM_VERTICES * (NUM_VERTICES - 1), generator=generator)  # recipe_gumbels
    randn(NUM_VERTICES, NUM_DIMS)  # initial positions
    rand(NUM_VERTICES, NUM_DIMS)  # the first spring_layout
    for _ in range(timesteps - 1):
        rand(NUM_VERTICES, NUM_DIMS)  # spring_layout
        for _ in range(NUM_VERTICES):
            randn(NUM_DIMS)  # the zero-variance noise


def _replay_chunks(
    timesteps: int, total: int, chunk_size: int
) -> Iterator[tuple[int, int, StreamStates, StreamStates]]:
    """``(start, count, states at start, states after the chunk)`` for consecutive chunks, lazily."""
    generator = torch.Generator().manual_seed(SEED)
    rng = np.random.RandomState(SEED)
    states = _stream_states(generator, rng)
    for start in range(0, total, chunk_size):
        count = min(chunk_size, total - start)
        for _ in range(count):
            _skip_sample(timesteps, generator, rng)
        end = _stream_states(generator, rng)
        yield start, count, states, end
        states = end


def _check_states(actual: StreamStates, expected: StreamStates, start: int, count: int) -> None:
    """Raise if a chunk's final stream states are not those the replay recorded after it."""
    (torch_a, (name_a, keys_a, *rest_a)), (torch_e, (name_e, keys_e, *rest_e)) = actual, expected
    numpy_same = name_a == name_e and np.array_equal(keys_a, keys_e) and rest_a == rest_e
    diverged = [name for name, same in (("torch", torch_a == torch_e), ("numpy", numpy_same)) if not same]
    if diverged:
        raise RuntimeError(
            f"generate: samples {start}..{start + count - 1} left the {' and '.join(diverged)} stream in another "
            f"state than the replay of the recipe, so the parallel result would differ from the sequential one. "
            f"The installed networkx ({nx.__version__}) probably draws differently in spring_layout than the "
            f"replay assumes (one rand({NUM_VERTICES}, {NUM_DIMS}) per call); generate with workers=1."
        )


def _generate_chunk(
    timesteps: int, start: int, count: int, states: StreamStates, expected_end: StreamStates
) -> tuple[int, np.ndarray, np.ndarray]:
    """Worker task: samples ``start..start+count-1`` of the recipe from the replayed states."""
    generator = torch.Generator()
    generator.set_state(torch.frombuffer(bytearray(states[0]), dtype=torch.uint8))
    rng = np.random.RandomState()
    rng.set_state(states[1])
    positions, edges = _sample_block(timesteps, count, generator, rng)
    _check_states(_stream_states(generator, rng), expected_end, start, count)
    return start, positions, edges


def _generate_parallel(
    timesteps: int, total: int, workers: int, chunk_size: int, bar: tqdm
) -> tuple[np.ndarray, np.ndarray]:
    """All ``total`` samples in order, chunks generated by ``workers`` processes."""
    positions = np.empty((total, timesteps, NUM_DIMS, NUM_VERTICES), dtype=np.float64)
    edges = np.empty((total, NUM_VERTICES, NUM_VERTICES), dtype=np.float32)

    def collect(futures: set[Future]) -> None:
        for future in futures:
            start, p, e = future.result()  # re-raises a worker's error, e.g. a state mismatch
            positions[start : start + len(p)] = p
            edges[start : start + len(e)] = e
            bar.update(len(p))

    pool = ProcessPoolExecutor(min(workers, -(-total // chunk_size)))
    try:
        pending: set[Future] = set()
        # The replay runs while the workers generate: a chunk is submitted as soon as its states are known.
        for job in _replay_chunks(timesteps, total, chunk_size):
            pending.add(pool.submit(_generate_chunk, timesteps, *job))
            done = {future for future in pending if future.done()}
            collect(done)
            pending -= done
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            collect(done)
    finally:
        pool.shutdown(cancel_futures=True)
    return positions, edges


def _load_array(path: Path, sample_shape: tuple[int, ...], timesteps: int) -> np.ndarray:
    """A memory-mapped ``.npy`` whose samples have ``sample_shape``; errors name the file."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(
            f"{path} is not a readable .npy array ({error}); it may be truncated — regenerate it with "
            f"`python -m examples.nri generate --timesteps {timesteps}`"
        ) from None
    if array.ndim != 1 + len(sample_shape) or array.shape[1:] != sample_shape:
        raise ValueError(f"{path} has shape {array.shape}, expected (N, {', '.join(map(str, sample_shape))})")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{path} has dtype {array.dtype}, expected floating point")
    return array


def load_split(data_dir: str | Path, split: str, timesteps: int, limit: int | None = None) -> Split:
    """Load a split as model inputs; ``limit`` keeps its first samples."""
    if split not in SPLITS:
        raise ValueError(f"load_split: split must be one of {SPLITS}, got {split!r}")
    path = data_file(data_dir, split, timesteps)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found; run `python -m examples.nri generate --timesteps {timesteps} "
            f"--data-dir {data_dir}` first"
        )
    edges_path = edges_file(data_dir, split, timesteps)
    if not edges_path.exists():
        raise FileNotFoundError(
            f"{edges_path} not found (its positions file {path.name} exists); regenerate the split with "
            f"`python -m examples.nri generate --timesteps {timesteps} --data-dir {data_dir}`"
        )
    data = _load_array(path, (timesteps, NUM_DIMS, NUM_VERTICES), timesteps)[:limit]
    edges = _load_array(edges_path, (NUM_VERTICES, NUM_VERTICES), timesteps)[:limit]
    if len(data) != len(edges):
        raise ValueError(
            f"{path} holds {len(data)} samples but {edges_path.name} holds {len(edges)}: the two files of the "
            f"{split!r} split come from different runs; regenerate them together"
        )
    # (N, T, 2, n) -> (N, n, T, 2): one row of T positions per particle, as the encoder reads it.
    positions = torch.from_numpy(np.ascontiguousarray(np.transpose(data, (0, 3, 1, 2)), dtype=np.float32))
    return Split(positions, torch.from_numpy(np.array(edges)))
