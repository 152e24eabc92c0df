"""The NRI dataset recipe: files, determinism, the RNG order, spanning trees and frame normalisation."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

import difftools
from examples.nri import data as nri_data
from examples.nri.data import (
    data_file,
    edges_file,
    generate,
    kruskal_maximum_tree,
    load_split,
    recipe_gumbels,
    sample_trajectory,
)

SIZES = {"train": 5, "valid": 2, "test": 2}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("nri_data")
    generate(10, SIZES, data_dir, progress=False)
    return data_dir


def _load(data_dir, split, timesteps=10):
    return np.load(data_file(data_dir, split, timesteps)), np.load(edges_file(data_dir, split, timesteps))


def test_files_have_original_names_shapes_and_dtypes(tiny):
    for split, size in SIZES.items():
        assert data_file(tiny, split, 10).name == f"data_{split}_novar_1skip_10t_1r_graph10.npy"
        assert edges_file(tiny, split, 10).name == f"edges_{split}_novar_1skip_10t_1r_graph10.npy"
        data, edges = _load(tiny, split)
        assert data.shape == (size, 10, 2, 10) and data.dtype == np.float64
        assert edges.shape == (size, 10, 10) and edges.dtype == np.float32


def test_twenty_timesteps_shape():
    positions, edges = sample_trajectory(20, torch.Generator().manual_seed(42), np.random.RandomState(42))
    assert positions.shape == (20, 2, 10) and positions.dtype == np.float64
    assert edges.shape == (10, 10)


def test_generation_is_bit_exact(tiny, tmp_path):
    generate(10, SIZES, tmp_path, progress=False)
    for split in SIZES:
        assert data_file(tmp_path, split, 10).read_bytes() == data_file(tiny, split, 10).read_bytes()
        assert edges_file(tmp_path, split, 10).read_bytes() == edges_file(tiny, split, 10).read_bytes()


def _literal_recipe(num_samples: int, timesteps: int, n: int = 10) -> list[tuple[np.ndarray, np.ndarray]]:
    """The spec's recipe transcribed with the GLOBAL numpy and torch streams."""
    np.random.seed(42)
    torch.manual_seed(42)
    samples = []
    for _ in range(num_samples):
        gumbels = -torch.log(-torch.log(torch.rand(n * (n - 1))))
        adj = kruskal_maximum_tree(gumbels, n)
        init = np.random.randn(n, 2)
        graph = nx.Graph()
        graph.add_edges_from(zip(*np.where(adj == 1.0)))
        pos = nx.spring_layout(
            graph, pos={i: init[i] for i in range(n)}, iterations=1, threshold=1e-10, center=np.zeros(2)
        )
        frames = [[pos[i] for i in range(n)]]
        for _ in range(timesteps - 1):
            pos = nx.spring_layout(graph, pos=pos, iterations=1, threshold=1e-10, center=np.zeros(2))
            for i in range(n):
                pos[i] = pos[i] + np.random.randn(2) * 0.0
            frames.append([pos[i] for i in range(n)])
        samples.append((np.transpose(np.stack(frames), (0, 2, 1)), adj))
    return samples


def test_generator_follows_the_global_stream_recipe(tiny):
    state = np.random.get_state(), torch.random.get_rng_state()
    try:
        expected = _literal_recipe(sum(SIZES.values()), 10)
    finally:
        np.random.set_state(state[0])
        torch.random.set_rng_state(state[1])
    stored = [_load(tiny, split) for split in ("train", "valid", "test")]
    positions = np.concatenate([d for d, _ in stored])
    edges = np.concatenate([e for _, e in stored])
    for k, (p, e) in enumerate(expected):
        assert np.array_equal(positions[k], p) and np.array_equal(edges[k], e)


def test_small_runs_are_prefixes_of_one_stream(tiny, tmp_path):
    # (7, 1, 1): its train split must start with (5, 2, 2)'s train split, and (5, 2, 2)'s valid
    # split is the continuation of the stream: samples 5..6, i.e. (7, 1, 1)'s train[5:7].
    generate(10, {"train": 7, "valid": 1, "test": 1}, tmp_path, progress=False)
    long_data, long_edges = _load(tmp_path, "train")
    short_data, short_edges = _load(tiny, "train")
    assert np.array_equal(long_data[:5], short_data) and np.array_equal(long_edges[:5], short_edges)
    valid_data, valid_edges = _load(tiny, "valid")
    assert np.array_equal(long_data[5:7], valid_data) and np.array_equal(long_edges[5:7], valid_edges)


def test_trees_are_the_maximum_spanning_trees_of_the_recipe_gumbels(tiny):
    generator = torch.Generator().manual_seed(42)  # only the tree prior draws from torch
    solver = difftools.get_solver("spanning_tree")
    rows, cols = torch.triu_indices(10, 10, 1).tolist()
    for split in ("train", "valid", "test"):
        _, edges = _load(tiny, split)
        for adj in edges:
            weights = recipe_gumbels(generator)[:45]
            assert np.array_equal(adj, adj.T) and np.all(np.diag(adj) == 0)
            assert set(np.unique(adj)) <= {0.0, 1.0} and adj.sum() == 18
            graph = nx.Graph()
            graph.add_weighted_edges_from((rows[p], cols[p], float(weights[p])) for p in range(45))
            expected = nx.to_numpy_array(nx.maximum_spanning_tree(graph), nodelist=range(10), weight=None)
            assert nx.is_tree(nx.from_numpy_array(adj))
            assert np.array_equal(adj, expected.astype(np.float32))
            assert torch.equal(solver(weights), torch.from_numpy(adj)[rows, cols])


def test_frames_are_centred_and_scaled(tiny):
    for split in SIZES:
        data, _ = _load(tiny, split)
        np.testing.assert_allclose(np.abs(data).max(axis=(2, 3)), 1.0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(data.mean(axis=3), 0.0, rtol=0, atol=1e-12)


def test_load_split_layout(tiny):
    split = load_split(tiny, "train", 10, limit=3)
    data, edges = _load(tiny, "train")
    assert split.positions.shape == (3, 10, 10, 2) and split.positions.dtype == torch.float32
    assert torch.equal(split.positions[1, 4, :, 0], torch.from_numpy(data[1, :, 0, 4]).float())
    assert torch.equal(split.edges, torch.from_numpy(edges[:3]))


PARALLEL_SIZES = {"train": 30, "valid": 7, "test": 5}


def test_parallel_generation_is_byte_identical(tmp_path):
    # Chunks of 4 samples: 11 chunks on 2 processes, two of them (28..31, 36..39) across split boundaries.
    sequential = generate(10, PARALLEL_SIZES, tmp_path / "sequential", progress=False)
    parallel = generate(10, PARALLEL_SIZES, tmp_path / "parallel", progress=False, workers=2, chunk_size=4)
    assert list(parallel) == list(sequential)
    for name, path in sequential.items():
        assert parallel[name].name == path.name
        assert parallel[name].read_bytes() == path.read_bytes(), name


def test_parallel_generation_refuses_a_stream_that_differs_from_the_replay(tmp_path, monkeypatch):
    replay = nri_data._replay_chunks

    def wrong_replay(timesteps, total, chunk_size):
        chunks = list(replay(timesteps, total, chunk_size))
        start, count, _, end = chunks[1]
        chunks[1] = (start, count, chunks[0][2], end)  # chunk 1 starts from the seed state instead
        yield from chunks

    monkeypatch.setattr(nri_data, "_replay_chunks", wrong_replay)
    with pytest.raises(RuntimeError, match=r"samples 4\.\.7 left the torch and numpy stream .* workers=1"):
        generate(10, {"train": 5, "valid": 2, "test": 2}, tmp_path, progress=False, workers=2, chunk_size=4)
    assert not list(tmp_path.iterdir())  # nothing is written when a chunk fails


def test_stream_state_check_names_the_stream():
    generator, rng = torch.Generator().manual_seed(42), np.random.RandomState(42)
    nri_data._skip_sample(10, generator, rng)
    states = nri_data._stream_states(generator, rng)
    nri_data._check_states(states, states, 0, 1)
    rng.randn()  # one Gaussian more: the numpy stream moves, the torch stream does not
    with pytest.raises(RuntimeError, match="left the numpy stream"):
        nri_data._check_states(nri_data._stream_states(generator, rng), states, 0, 1)
    torch.rand(1, generator=generator)
    with pytest.raises(RuntimeError, match="left the torch and numpy stream"):
        nri_data._check_states(nri_data._stream_states(generator, rng), states, 0, 1)


def test_bad_arguments_are_named(tiny, tmp_path):
    with pytest.raises(ValueError, match="timesteps must be 10 or 20"):
        generate(15, SIZES, tmp_path, progress=False)
    with pytest.raises(ValueError, match="sizes must give a positive int"):
        generate(10, {"train": 0, "valid": 1, "test": 1}, tmp_path, progress=False)
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(ValueError, match="workers must be a positive int"):
            generate(10, SIZES, tmp_path, progress=False, workers=bad)
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        generate(10, SIZES, tmp_path, progress=False, workers=2, chunk_size=0)
    with pytest.raises(FileNotFoundError, match="python -m examples.nri generate"):
        load_split(tmp_path, "train", 20)
    with pytest.raises(ValueError, match="split must be one of"):
        load_split(tiny, "training", 10)
