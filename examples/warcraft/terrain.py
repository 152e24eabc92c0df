"""Procedural Warcraft-like terrain: vectorised numpy rendering of maps and their cell classes.

The original Warcraft II tiles cannot be redistributed, so maps are painted from five terrain
classes with the spec's costs, mean colours, looks and frequencies (docs/examples/warcraft.md).
Everything here works on a chunk of maps at once; nothing loops over pixels or maps in Python.
Labelling (shortest paths) and the file layout live in :mod:`examples.warcraft.data`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CELL_PIXELS", "TERRAINS", "COSTS", "COLOURS", "FREQUENCIES", "render_maps"]

CELL_PIXELS = 8
TERRAINS = ("grass", "dirt", "forest", "water", "rock")
COSTS = np.array([0.8, 1.2, 5.3, 7.7, 9.2])
# Mean RGB (0-255) inside cells of the published figures; the textures below are zero-mean.
COLOURS = np.array([(45, 81, 11), (105, 64, 5), (17, 79, 8), (10, 52, 100), (74, 74, 74)], dtype=np.float32)
FREQUENCIES = np.array([0.24, 0.34, 0.12, 0.14, 0.16])

# Per-class, per-channel texture amplitudes (0-255 units), chosen so that the pooled within-class
# spread plus the between-class spread reproduce the published channel standard deviations.
_AMPLITUDES = np.array([(11, 6, 4), (20, 6, 2), (6, 7, 3), (4, 6, 30), (27, 27, 27)], dtype=np.float32)
# Score offsets of the terrain fields, calibrated once on 2,000 maps so that the cell-class
# frequencies match FREQUENCIES (fixed-point iteration b += log(target) - log(measured); it converges
# in three steps and the values do not depend on K because the field scales are in cell units).
_BIASES = np.array([0.16, 0.46, -0.31, -0.21, -0.10])
_BIAS_JITTER = 0.35  # per-map spread of the offsets: some maps are wetter or rockier than others
_CENTRE_PULL = 1.0  # how strongly a cell's own class is pulled into its centre (field-std units)
_SHORE_SHADE = 0.6  # brightness of water pixels next to land


def _bspline_matrix(pixels: int, spacing: float) -> np.ndarray:
    """``[pixels, nodes]`` cubic B-spline weights: node values -> a C2-smooth pixel profile."""
    nodes = int(np.ceil(pixels / spacing)) + 4
    x = (np.arange(pixels) + 0.5) / spacing + 1.5  # pixel position in node units, away from the edge
    d = np.abs(x[:, None] - np.arange(nodes)[None, :])
    w = np.where(d < 1, 2 / 3 - d**2 + d**3 / 2, np.where(d < 2, (2 - d) ** 3 / 6, 0.0))
    return w


def _smooth_noise(rng: np.random.Generator, n: int, pixels: int, spacing: float) -> np.ndarray:
    """``[n, pixels, pixels]`` Gaussian random field with correlation length ``spacing`` pixels, unit std."""
    a = _bspline_matrix(pixels, spacing)
    a = a.astype(np.float32)
    nodes = rng.standard_normal((n, a.shape[1], a.shape[1]), dtype=np.float32)
    field = a @ nodes @ a.T
    # Cubic B-spline smoothing of white noise divides the variance by this constant (1D: 151/315).
    return field * np.float32(315 / 151)


def _blocky_noise(rng: np.random.Generator, n: int, pixels: int, block: int, spacing: float) -> np.ndarray:
    """Smooth noise sampled once per ``block``×``block`` pixel square: blocky, outcrop-like regions."""
    blocks = -(-pixels // block) + 1
    coarse = _smooth_noise(rng, n, blocks * block, spacing)[:, block // 2 :: block, block // 2 :: block]
    offset = rng.integers(0, block, size=2)  # so that block edges do not line up with cell edges
    up = np.repeat(np.repeat(coarse, block, axis=1), block, axis=2)
    return up[:, offset[0] : offset[0] + pixels, offset[1] : offset[1] + pixels]


def _terrain_scores(rng: np.random.Generator, n: int, k: int) -> list[np.ndarray]:
    """Five ``[n, P, P]`` class scores (grass, dirt, forest, water, rock); a pixel's class is the argmax."""
    p, c = k * CELL_PIXELS, CELL_PIXELS
    scores = [
        _smooth_noise(rng, n, p, 4.0 * c) + 0.3 * _smooth_noise(rng, n, p, 1.5 * c),  # grass: large regions
        _smooth_noise(rng, n, p, 4.0 * c) + 0.3 * _smooth_noise(rng, n, p, 1.5 * c),  # dirt: large regions
        _smooth_noise(rng, n, p, 1.6 * c),  # forest: organic blobs
        _smooth_noise(rng, n, p, 2.0 * c),  # water: lakes
        _blocky_noise(rng, n, p, 6, 1.8 * c),  # rock: blocky outcrops
    ]
    offsets = (_BIASES + _BIAS_JITTER * rng.standard_normal((n, 5))).astype(np.float32)
    for i, score in enumerate(scores):
        score += offsets[:, i, None, None]
    return scores


def _argmax(arrays: list[np.ndarray]) -> np.ndarray:
    """Index of the largest array, elementwise (faster than stacking and ``argmax`` over a new axis)."""
    best, index = arrays[0].copy(), np.zeros(arrays[0].shape, dtype=np.int64)
    for i, a in enumerate(arrays[1:], start=1):
        better = a > best
        np.copyto(best, a, where=better)
        index[better] = i
    return index


def _cell_classes(scores: list[np.ndarray], k: int) -> np.ndarray:
    """``[n, K, K]`` class of each cell: the argmax of the scores at the cell's centre (2×2 pixels)."""
    c = CELL_PIXELS
    mid = slice(c // 2 - 1, c // 2 + 1)
    return _argmax([s.reshape(-1, k, c, k, c)[:, :, mid, :, mid].mean(axis=(2, 4)) for s in scores])


def _pixel_classes(scores: list[np.ndarray], cells: np.ndarray) -> np.ndarray:
    """``[n, P, P]`` pixel classes: organic boundaries, but each cell's centre shows its own class."""
    p = scores[0].shape[-1]
    c = CELL_PIXELS
    d = np.abs(np.arange(c) + 0.5 - c / 2)
    ring = np.maximum(d[:, None], d[None, :])  # Chebyshev distance from the cell centre
    bump = np.tile(np.clip(1 - ring / (c / 2), 0, None), (p // c, p // c)).astype(np.float32)
    own = np.repeat(np.repeat(cells, c, axis=1), c, axis=2)
    pulled = [s + (_CENTRE_PULL * bump) * (own == i) for i, s in enumerate(scores)]
    classes = _argmax(pulled)
    core = np.tile(ring <= c / 4, (p // c, p // c))  # the central 4×4 pixels always show the cell's class
    return np.where(core[None], own, classes)


def _unit(x: np.ndarray) -> np.ndarray:
    """Standardise a texture over the whole chunk (zero mean, unit std), so amplitudes are in 0-255 units."""
    return (x - x.mean()) / (x.std() + 1e-12)


def _texture(rng: np.random.Generator, pixels: np.ndarray) -> np.ndarray:
    """``[n, P, P]`` zero-mean, unit-std texture: each pixel shows the pattern of its terrain class."""
    n, p, _ = pixels.shape
    # A pixel shows one class only, so all classes may share the same grain and blotch noise.
    grain = rng.standard_normal((n, p, p), dtype=np.float32)
    blotch = _smooth_noise(rng, n, p, 2.5)
    # grass: mottled -- blotches of a few pixels plus fine grain
    grass = blotch + 0.5 * grain
    # dirt: nearly flat with sparse dark specks
    specks = rng.random((n, p, p), dtype=np.float32) < 0.07
    dirt = 0.25 * grain - 3.0 * specks
    # forest: staggered lattice of conifer crowns, period 4 px, dark gaps between crowns; the
    # 8×4 tile (rows of crowns shifted by half a period every other row) is indexed per map.
    ty, tx = np.meshgrid(np.arange(8), np.arange(4), indexing="ij")
    tile = np.clip(1.0 - ((ty % 4 - 1.5) ** 2 + ((tx + 2 * (ty // 4)) % 4 - 1.5) ** 2) / 3.0, 0, None)
    phase = rng.integers(0, 8, size=(n, 2))
    rows = (np.arange(p)[None] + phase[:, :1]) % 8
    cols = (np.arange(p)[None] + phase[:, 1:]) % 4
    crown = tile.astype(np.float32)[rows[:, :, None], cols[:, None, :]]
    forest = crown + 0.25 * grain
    # water: wavy ripples along a drifting phase
    drift = 2.0 * _smooth_noise(rng, n, p, 10.0)
    yy, xx = np.meshgrid(np.arange(p, dtype=np.float32), np.arange(p, dtype=np.float32), indexing="ij")
    water = np.sin((2 * np.pi / 5.0) * (yy + 0.15 * xx) + drift) + 0.3 * grain
    # rock: high-contrast boulders -- saturated blobs of a few pixels with an embossed light side
    emboss = blotch - np.roll(blotch, (1, 1), axis=(1, 2))
    rock = np.tanh(2.0 * blotch) + 0.8 * emboss
    pattern = np.empty((n, p, p), dtype=np.float32)
    for i, t in enumerate((grass, dirt, forest, water, rock)):
        np.copyto(pattern, _unit(t), where=pixels == i)
    return pattern


def _shoreline(pixels: np.ndarray, width: int = 2) -> np.ndarray:
    """Water pixels within ``width`` pixels (Chebyshev) of land: drawn darker."""
    land = pixels != TERRAINS.index("water")
    near = land.copy()
    padded = np.pad(land, ((0, 0), (width, width), (width, width)), mode="edge")
    p = pixels.shape[-1]
    for dy in range(-width, width + 1):
        for dx in range(-width, width + 1):
            near |= padded[:, width + dy : width + dy + p, width + dx : width + dx + p]
    return near & ~land


def render_maps(rng: np.random.Generator, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n`` maps of ``k``×``k`` cells.

    Returns ``(maps, classes)``: ``maps`` ``[n, 8k, 8k, 3]`` uint8 RGB (channels last, as in the
    original files) and ``classes`` ``[n, k, k]`` int64 indices into :data:`TERRAINS`.
    """
    scores = _terrain_scores(rng, n, k)
    cells = _cell_classes(scores, k)
    pixels = _pixel_classes(scores, cells)
    pattern = _texture(rng, pixels)
    rgb = COLOURS[pixels] + _AMPLITUDES[pixels] * pattern[..., None]
    # A darker rim along the shore, compensated inside the lakes so that water keeps its mean colour.
    shore = _shoreline(pixels)
    water = pixels == TERRAINS.index("water")
    rim = shore.sum() / max(water.sum(), 1)
    rgb[shore] *= _SHORE_SHADE
    rgb[water & ~shore] *= (1 - _SHORE_SHADE * rim) / max(1 - rim, 1e-6)
    # Map-level colour jitter: gain per channel and overall brightness vary from map to map.
    gain = (1 + 0.04 * rng.standard_normal((n, 1, 1, 3))) * (1 + 0.05 * rng.standard_normal((n, 1, 1, 1)))
    gain = gain.astype(np.float32)
    maps = np.clip(np.rint(rgb * gain), 0, 255).astype(np.uint8)
    return maps, cells
