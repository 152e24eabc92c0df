"""Warcraft data: generator (layout, determinism, statistics, labels) and loader (original layout, errors)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from examples.warcraft.data import dataset_dir, generate, load_split
from examples.warcraft.labelling import dijkstra
from examples.warcraft.terrain import CELL_PIXELS, COLOURS, COSTS, FREQUENCIES, render_maps

PUBLISHED_MEAN = np.array([0.2411, 0.2741, 0.1212])
PUBLISHED_STD = np.array([0.1595, 0.0650, 0.1601])
TINY = {"train": 6, "val": 3, "test": 3}


@pytest.fixture(scope="module")
def tiny12(tmp_path_factory):
    root = tmp_path_factory.mktemp("wc12")
    generate(root, 12, TINY, seed=3, workers=1, progress=False)
    return root


def test_generator_writes_the_original_layout(tiny12):
    directory = dataset_dir(tiny12, 12)
    names = {p.name for p in directory.iterdir()}
    expected = {f"{s}_{f}.npy" for s in TINY for f in ("maps", "vertex_weights", "shortest_paths", "unique")}
    assert names == expected
    for split, n in TINY.items():
        maps = np.load(directory / f"{split}_maps.npy")
        weights = np.load(directory / f"{split}_vertex_weights.npy")
        paths = np.load(directory / f"{split}_shortest_paths.npy")
        unique = np.load(directory / f"{split}_unique.npy")
        assert maps.shape == (n, 96, 96, 3) and maps.dtype == np.uint8
        assert weights.shape == (n, 12, 12) and weights.dtype == np.float16
        assert paths.shape == (n, 12, 12) and paths.dtype == np.uint8
        assert unique.shape == (n,) and unique.dtype == bool
        assert set(np.unique(weights.astype(np.float64))) <= set(COSTS.astype(np.float16).astype(np.float64))
        assert paths[:, 0, 0].all() and paths[:, -1, -1].all()


def test_generator_is_deterministic_from_the_seed(tiny12, tmp_path):
    generate(tmp_path / "same", 12, TINY, seed=3, workers=2, progress=False)
    generate(tmp_path / "other", 12, TINY, seed=4, workers=1, progress=False)
    for split in TINY:
        a, b, c = (load_split(root, 12, split) for root in (tiny12, tmp_path / "same", tmp_path / "other"))
        # Same seed, different number of worker processes: byte-identical data.
        for field in ("maps", "weights", "paths", "unique"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert not np.array_equal(a.maps, c.maps)


def _networkx_cost(weights: np.ndarray) -> float:
    """Independent oracle: vertex-weighted 8-neighbour shortest path cost with networkx."""
    k = weights.shape[0]
    graph = nx.DiGraph()
    for r in range(k):
        for c in range(k):
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    if (dr or dc) and 0 <= r + dr < k and 0 <= c + dc < k:
                        graph.add_edge((r, c), (r + dr, c + dc), weight=float(weights[r + dr, c + dc]))
    return float(weights[0, 0]) + nx.dijkstra_path_length(graph, (0, 0), (k - 1, k - 1))


def test_labels_are_reference_dijkstra_paths_and_optimal(tiny12):
    for split in TINY:
        data = load_split(tiny12, 12, split)
        for w, path, unique in zip(data.weights.astype(np.float64), data.paths, data.unique):
            reference = dijkstra(w)
            np.testing.assert_array_equal(path, reference.path)
            assert unique == reference.unique
            assert (path * w).sum() == pytest.approx(_networkx_cost(w), rel=1e-12)


def test_class_frequencies_and_channel_statistics_match_the_spec():
    maps, classes = render_maps(np.random.default_rng(11), 200, 12)
    frequencies = np.bincount(classes.ravel(), minlength=5) / classes.size
    np.testing.assert_allclose(frequencies, FREQUENCIES, atol=0.05)
    pixels = maps.reshape(-1, 3) / 255.0
    np.testing.assert_allclose(pixels.mean(0), PUBLISHED_MEAN, atol=0.03)
    np.testing.assert_allclose(pixels.std(0), PUBLISHED_STD, atol=0.03)


def test_each_cell_centre_shows_its_own_terrain():
    maps, classes = render_maps(np.random.default_rng(12), 40, 12)
    c = CELL_PIXELS
    centre = maps.reshape(40, 12, c, 12, c, 3)[:, :, c // 4 : 3 * c // 4, :, c // 4 : 3 * c // 4].mean(axis=(2, 4))
    nearest = np.linalg.norm(centre[..., None, :] - COLOURS, axis=-1).argmin(-1)
    assert (nearest == classes).mean() > 0.97


def test_k30_is_stored_in_two_train_parts(tmp_path):
    generate(tmp_path, 30, {"train": 2, "val": 1, "test": 1}, seed=0, workers=1, progress=False)
    directory = dataset_dir(tmp_path, 30)
    for field in ("maps", "vertex_weights", "shortest_paths"):
        assert not (directory / f"train_{field}.npy").exists()
        assert len(np.load(directory / f"train_{field}_part0.npy")) == 1
        assert len(np.load(directory / f"train_{field}_part1.npy")) == 1
    data = load_split(tmp_path, 30, "train")
    assert data.maps.shape == (2, 240, 240, 3) and data.paths.shape == (2, 30, 30)
    for w, path in zip(data.weights.astype(np.float64), data.paths):
        np.testing.assert_array_equal(path, dijkstra(w).path)


# ------------------------------------------------------------------------------------ loader
def _write_original(root, size=18, n_train=(3, 2), n_other=2):
    """A hand-made dataset in the original layout: train in two parts, no *_unique files."""
    directory = dataset_dir(root, size)
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def arrays(n):
        weights = rng.choice(COSTS, size=(n, size, size)).astype(np.float16)
        paths = np.zeros((n, size, size), dtype=np.uint8)
        paths[:, np.arange(size), np.arange(size)] = 1
        maps = rng.integers(0, 256, size=(n, 8 * size, 8 * size, 3), dtype=np.uint8)
        return {"maps": maps, "vertex_weights": weights, "shortest_paths": paths}

    parts = [arrays(n) for n in n_train]
    for i, part in enumerate(parts):
        for field, a in part.items():
            np.save(directory / f"train_{field}_part{i}.npy", a)
    for split in ("val", "test"):
        for field, a in arrays(n_other).items():
            np.save(directory / f"{split}_{field}.npy", a)
    return directory, parts


def test_loader_reads_the_original_layout_with_parts(tmp_path):
    _, parts = _write_original(tmp_path)
    data = load_split(tmp_path, 18, "train")
    assert len(data) == 5 and data.size == 18 and data.unique is None
    np.testing.assert_array_equal(data.maps, np.concatenate([p["maps"] for p in parts]))
    np.testing.assert_array_equal(data.weights, np.concatenate([p["vertex_weights"] for p in parts]))
    assert len(load_split(tmp_path, 18, "test")) == 2


@pytest.mark.parametrize(
    ("corrupt", "error", "match"),
    [
        (lambda d: (d / "val_maps.npy").write_bytes(b"not an npy file"), ValueError, "val_maps.npy is not a readable"),
        (lambda d: (d / "val_shortest_paths.npy").unlink(), FileNotFoundError, "missing val_shortest_paths.npy"),
        (
            lambda d: np.save(d / "val_vertex_weights.npy", np.ones((2, 18, 18), np.float32)),
            ValueError,
            "val_vertex_weights has dtype float32, expected float16",
        ),
        (
            lambda d: np.save(d / "val_maps.npy", np.zeros((2, 96, 96, 3), np.uint8)),
            ValueError,
            r"val_maps has shape \(2, 96, 96, 3\), expected \(N, 144, 144, 3\) for 18x18",
        ),
        (
            lambda d: np.save(d / "val_shortest_paths.npy", np.ones((3, 18, 18), np.uint8)),
            ValueError,
            "val_shortest_paths has 3 entries but val_maps has 2",
        ),
        (
            lambda d: np.save(d / "val_shortest_paths.npy", np.zeros((2, 18, 18), np.uint8)),
            ValueError,
            "both corner cells",
        ),
        (
            lambda d: np.save(d / "val_shortest_paths.npy", np.full((2, 18, 18), 2, np.uint8)),
            ValueError,
            "0/1 mask",
        ),
        (
            lambda d: np.save(d / "val_vertex_weights.npy", -np.ones((2, 18, 18), np.float16)),
            ValueError,
            "finite and positive",
        ),
        (
            lambda d: np.save(d / "val_unique.npy", np.ones(5, bool)),
            ValueError,
            r"val_unique.npy has shape \(5,\)",
        ),
    ],
)
def test_loader_rejects_corrupt_and_mismatched_files(tmp_path, corrupt, error, match):
    directory, _ = _write_original(tmp_path)
    corrupt(directory)
    with pytest.raises(error, match=match):
        load_split(tmp_path, 18, "val")


def test_loader_rejects_mismatched_train_parts_and_missing_data(tmp_path):
    directory, _ = _write_original(tmp_path)
    np.save(directory / "train_maps_part1.npy", np.zeros((2, 96, 96, 3), np.uint8))
    with pytest.raises(ValueError, match="train_maps_part0.npy .* do not match"):
        load_split(tmp_path, 18, "train")
    with pytest.raises(FileNotFoundError, match="no directory .*24x24"):
        load_split(tmp_path, 24, "train")
    with pytest.raises(ValueError, match="size must be one of"):
        load_split(tmp_path, 13, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        load_split(tmp_path, 18, "dev")
    with pytest.raises(ValueError, match="number of val maps must be a positive int"):
        generate(tmp_path, 12, {"val": 0})
