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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

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
FULL_SIZES = {"train": 50_000, "valid": 10_000, "test": 10_000}
# The spring-layout threshold of the original script; with one iteration it never stops early.
LAYOUT_THRESHOLD = 1e-10


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
) -> dict[str, Path]:
    """Generate train, valid and test (in that order, one stream) and save them; return the paths.

    ``sizes`` maps split names to sample counts (default: 50,000 / 10,000 / 10,000).
    """
    if timesteps not in (10, 20):
        raise ValueError(f"generate: timesteps must be 10 or 20, got {timesteps!r}")
    sizes = dict(FULL_SIZES if sizes is None else sizes)
    if set(sizes) != set(SPLITS) or any(not isinstance(v, int) or v < 1 for v in sizes.values()):
        raise ValueError(f"generate: sizes must give a positive int for each of {SPLITS}, got {sizes!r}")
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(SEED)
    rng = np.random.RandomState(SEED)
    written: dict[str, Path] = {}
    with tqdm(total=sum(sizes.values()), desc=f"generate T={timesteps}", disable=not progress) as bar:
        for split in SPLITS:
            positions, edges = [], []
            for _ in range(sizes[split]):
                p, e = sample_trajectory(timesteps, generator, rng)
                positions.append(p)
                edges.append(e)
                bar.update()
            written[f"data_{split}"] = data_file(data_dir, split, timesteps)
            written[f"edges_{split}"] = edges_file(data_dir, split, timesteps)
            np.save(written[f"data_{split}"], np.stack(positions))
            np.save(written[f"edges_{split}"], np.stack(edges))
    return written


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
    data = np.load(path, mmap_mode="r")[:limit]
    edges = np.load(edges_file(data_dir, split, timesteps), mmap_mode="r")[:limit]
    # (N, T, 2, n) -> (N, n, T, 2): one row of T positions per particle, as the encoder reads it.
    positions = torch.from_numpy(np.ascontiguousarray(np.transpose(data, (0, 3, 1, 2)), dtype=np.float32))
    return Split(positions, torch.from_numpy(np.array(edges)))
