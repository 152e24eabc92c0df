"""Datasets for the discrete VAE: scikit-learn's bundled 8×8 digits, or MNIST from local IDX files.

Nothing is downloaded: the digits ship with scikit-learn, and MNIST is read from the IDX files
(``train-images-idx3-ubyte`` and ``t10k-images-idx3-ubyte``, optionally ``.gz``) a user already has.
"""

from __future__ import annotations

import functools
import gzip
import struct
from pathlib import Path

import numpy as np

__all__ = ["load_idx", "load_digits", "load_mnist", "load_dataset", "Splits"]

# IDX type codes (LeCun's format description) -> big-endian numpy dtypes.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

Splits = tuple[np.ndarray, np.ndarray, np.ndarray]


def load_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzipped if the name ends in .gz): magic 0,0,type,ndim; ndim big-endian uint32 dims; data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"load_idx: {path} is not an IDX file (expected the magic bytes 00 00)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_TYPES:
        raise ValueError(f"load_idx: {path} has unknown IDX type code 0x{code:02x}; known: "
                         + ", ".join(f"0x{c:02x}" for c in _IDX_TYPES))
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"load_idx: {path} is truncated in its header ({ndim} dims declared)")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"load_idx: {path} holds {len(raw) - header} data bytes, expected {expected} for "
                         f"shape {dims} of {dtype}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


@functools.cache
def _sklearn_digits() -> np.ndarray:
    from sklearn.datasets import load_digits as sk_load_digits

    return sk_load_digits().data


def load_digits(size: int = 28) -> np.ndarray:
    """scikit-learn's 1,797 8×8 digits as float32 ``[1797, size²]`` intensities in [0, 1].

    Resized bilinearly to ``size × size`` (default MNIST's 28 × 28; 8 keeps the originals). At
    8 × 8 the reconstruction term (≈ 27 nats for the mean image) is too small against the KL
    to uniform (up to 20 · log 20 ≈ 60 nats) and every estimator, Gumbel-softmax included,
    collapses to the mean image; at 28 × 28 the terms have MNIST's proportions.
    """
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(_sklearn_digits() / 16.0).float().view(-1, 1, 8, 8)
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0.0, 1.0)
    return x.reshape(len(x), -1).numpy()


def _find(data_dir: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx3-", ".idx3-"), stem.replace("-idx3-", ".idx3-") + ".gz"):
        if (data_dir / name).exists():
            return data_dir / name
    raise FileNotFoundError(f"MNIST: no {stem}[.gz] in {data_dir}; put the IDX image files there (nothing is "
                            "downloaded), or use --dataset digits")


def load_mnist(data_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """MNIST train and test images from IDX files in ``data_dir``, flattened to ``[N, 784]`` in [0, 1]."""
    data_dir = Path(data_dir)
    out = []
    for stem in ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"):
        images = load_idx(_find(data_dir, stem))
        if images.ndim != 3:
            raise ValueError(f"MNIST: {stem} should hold [N, H, W] images, got shape {images.shape}")
        out.append((images.reshape(len(images), -1) / 255.0).astype(np.float32))
    return out[0], out[1]


def load_dataset(name: str, data_dir: str | Path | None = None, seed: int = 0, image_size: int = 28) -> Splits:
    """(train, validation, test) arrays ``[N, D]`` in [0, 1].

    ``digits``: a seeded 70/15/15 split of the 1,797 images, resized to ``image_size``² pixels.
    ``mnist``: the last 10% of the training file is held out for validation; the t10k file is the test set.
    """
    if name == "digits":
        x = load_digits(image_size)
        perm = np.random.default_rng(seed).permutation(len(x))
        n_train, n_val = int(0.7 * len(x)), int(0.15 * len(x))
        return x[perm[:n_train]], x[perm[n_train : n_train + n_val]], x[perm[n_train + n_val :]]
    if name == "mnist":
        if data_dir is None:
            raise ValueError("load_dataset: mnist needs data_dir, the folder holding the IDX files")
        train, test = load_mnist(data_dir)
        n_val = len(train) // 10
        return train[:-n_val], train[-n_val:], test
    raise ValueError(f"load_dataset: unknown dataset {name!r}; expected 'digits' or 'mnist'")
