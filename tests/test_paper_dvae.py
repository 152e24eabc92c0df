"""DVAE example: the IDX reader on hand-written files, datasets, the loss, the line-up and a tiny run."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch

from examples.common import read_csv
from examples.dvae.__main__ import main
from examples.dvae.data import load_dataset, load_digits, load_idx, load_mnist
from examples.dvae.model import Method, make_sampler, methods, train, vae_loss
from tests.bad_input import cli_error


def _idx(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def test_idx_reader_on_hand_written_files(tmp_path):
    (tmp_path / "u8").write_bytes(_idx(0x08, (2, 2, 3), bytes(range(12))))
    np.testing.assert_array_equal(load_idx(tmp_path / "u8"), np.arange(12, dtype=np.uint8).reshape(2, 2, 3))
    # int16, big-endian on disk: -2 is ff fe, 300 is 01 2c
    (tmp_path / "i16").write_bytes(_idx(0x0B, (2,), b"\xff\xfe\x01\x2c"))
    out = load_idx(tmp_path / "i16")
    np.testing.assert_array_equal(out, [-2, 300])
    assert out.dtype == np.int16 and out.dtype.isnative
    (tmp_path / "f.gz").write_bytes(gzip.compress(_idx(0x0D, (1,), struct.pack(">f", 1.5))))
    np.testing.assert_array_equal(load_idx(tmp_path / "f.gz"), [1.5])


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"\x01\x00\x08\x01", "not an IDX file"), (_idx(0x07, (1,), b"\x00"), "unknown IDX type code 0x07"),
     (_idx(0x08, (4,), b"\x00\x01"), "holds 2 data bytes, expected 4"), (b"\x00\x00\x08\x02\x00", "truncated")],
)
def test_idx_reader_rejects_bad_files(tmp_path, content, match):
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_idx(tmp_path / "bad")


def test_mnist_loader_reads_idx_folder_and_splits(tmp_path):
    train = np.arange(20 * 2 * 2, dtype=np.uint8).reshape(20, 2, 2)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(0x08, (20, 2, 2), train.tobytes())))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx(0x08, (3, 2, 2), bytes(12)))
    x_train, x_test = load_mnist(tmp_path)
    np.testing.assert_allclose(x_train, train.reshape(20, 4) / 255.0, rtol=1e-6)
    assert x_test.shape == (3, 4) and x_test.dtype == np.float32
    tr, va, te = load_dataset("mnist", tmp_path)
    assert (len(tr), len(va), len(te)) == (18, 2, 3)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        load_mnist(tmp_path / "missing")
    with pytest.raises(ValueError, match="needs data_dir"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


def test_digits_dataset():
    from sklearn.datasets import load_digits as sk

    np.testing.assert_allclose(load_digits(8), sk().data / 16.0, rtol=1e-6)
    tr, va, te = load_dataset("digits", image_size=12)
    assert tr.shape[1] == 144 and len(tr) + len(va) + len(te) == 1797
    assert 0.0 <= min(a.min() for a in (tr, va, te)) and max(a.max() for a in (tr, va, te)) <= 1.0


def test_vae_loss_by_hand():
    theta = torch.zeros(1, 2, 3)  # uniform q ⇒ KL = 0
    rec, x = torch.tensor([[[0.0, 2.0]]]), torch.tensor([[1.0, 0.0]])
    expected = math.log(2) + math.log(1 + math.exp(2.0))  # BCE(1 | logit 0) + BCE(0 | logit 2)
    assert vae_loss(theta, rec, x).item() == pytest.approx(expected, rel=1e-6)
    theta = torch.tensor([[[30.0, 0.0, 0.0]]])  # a one-hot q has KL = log N to uniform
    assert vae_loss(theta, torch.zeros(1, 1, 2), torch.zeros(1, 2)).item() == pytest.approx(
        2 * math.log(2) + math.log(3), rel=1e-4)


def test_method_line_up_and_gumbel_softmax_only_for_k1():
    names1, names10 = [m.name for m in methods(1)], [m.name for m in methods(10)]
    assert "Gumbel-softmax" in names1 and "Gumbel-softmax" not in names10
    assert {"AIMLE (forward, S=5)", "AIMLE (central, S=10)", "IMLE (central, λ=100)", "STE"} <= set(names10)
    with pytest.raises(ValueError, match="K = 1"):
        make_sampler(Method("GS", "gumbel-softmax"), 10, torch.Generator())


def test_k10_with_sum_of_gamma_trains_and_samples_k_hot_codes():
    rng = np.random.default_rng(0)
    data = tuple(rng.random((n, 16), dtype=np.float32) for n in (8, 4, 4))
    rows = train(Method("AIMLE (central, S=2)", "aimle", 2, True), 10, data, epochs=1, seed=0, batch_size=4)
    assert len(rows) == 1 and math.isfinite(rows[0]["test_loss"]) and rows[0]["alpha"] > 0
    sampler = make_sampler(Method("STE", "ste"), 10, torch.Generator().manual_seed(0))
    z = sampler(torch.randn(3, 20, 20))
    assert z.shape == (1, 3, 20, 20) and torch.all(z.sum(-1) == 10)


def test_tiny_cli_run(tmp_path, capsys):
    paths = main(["run", "--quick", "--image-size", "8", "--only", "central, S=1)", "Gumbel", "--out", str(tmp_path)])
    rows = read_csv(paths["csv"])
    assert {r["method"] for r in rows} == {"AIMLE (central, S=1)", "Gumbel-softmax"}
    assert all(math.isfinite(r["test_loss"]) for r in rows)
    assert all(paths[f].stat().st_size > 0 for f in ("fig5", "fig6", "fig7", "fig8"))
    replot = main(["plot", "--csv", str(paths["csv"]), "--out", str(tmp_path / "again")])
    assert set(replot) == {"fig5", "fig6", "fig7", "fig8"}  # re-plotting writes no CSV
    assert "plot needs --csv" in cli_error(capsys, main, ["plot"])
    assert "--epochs must be >= 1" in cli_error(capsys, main, ["run", "--epochs", "0"])
