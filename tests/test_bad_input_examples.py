"""Bad inputs to the examples' files and run directories: each gives a clear error or warning, never silence."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from examples import common
from examples.nri.data import data_file, edges_file, load_split
from tests.bad_input import PickleBomb


def _nri_files(tmp_path, n=4, edges_n=None, t=10):
    np.save(data_file(tmp_path, "train", t), np.zeros((n, t, 2, 10)))
    np.save(edges_file(tmp_path, "train", t), np.zeros((n if edges_n is None else edges_n, 10, 10), np.float32))


def _truncated(tmp_path):
    _nri_files(tmp_path)
    path = data_file(tmp_path, "train", 10)
    path.write_bytes(path.read_bytes()[:200])


def _wrong_shape(tmp_path):
    _nri_files(tmp_path)
    np.save(data_file(tmp_path, "train", 10), np.zeros((4, 9, 2, 10)))


def _lengths(tmp_path):
    _nri_files(tmp_path, n=4, edges_n=3)


def _no_edges(tmp_path):
    _nri_files(tmp_path)
    edges_file(tmp_path, "train", 10).unlink()


def _integer_positions(tmp_path):
    _nri_files(tmp_path)
    np.save(data_file(tmp_path, "train", 10), np.zeros((4, 10, 2, 10), np.int64))


@pytest.mark.parametrize(
    ("make", "error", "phrase"),
    [
        (_truncated, ValueError, "is not a readable .npy array .* truncated"),
        (_wrong_shape, ValueError, r"has shape \(4, 9, 2, 10\), expected \(N, 10, 2, 10\)"),
        (_lengths, ValueError, "holds 4 samples but edges_train.* holds 3"),
        (_no_edges, FileNotFoundError, "edges_train.* not found"),
        (_integer_positions, ValueError, "dtype int64, expected floating point"),
    ],
)
def test_nri_data_files(tmp_path, make, error, phrase):
    make(tmp_path)
    with pytest.raises(error, match=phrase):
        load_split(tmp_path, "train", 10)


def _log(tmp_path, text):
    path = tmp_path / "log.jsonl"
    path.write_text(text)
    return path


def test_a_torn_last_log_line_is_dropped_with_a_warning(tmp_path):
    path = _log(tmp_path, '{"epoch": 1}\n{"epoch": 2}\n{"epo')
    with pytest.warns(UserWarning, match="dropped a torn last line 3"):
        assert common.read_log(path) == [{"epoch": 1}, {"epoch": 2}]


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        ('{"epoch": 1}\n{"epo\n{"epoch": 3}\n', "line 2: not a JSON record"),
        ('{"epoch": 1}\n[1, 2]\n', "line 2: not a JSON record"),
        ('{"epoch": 1}\n{"epo\n', "line 2: not a JSON record"),  # complete line (ends in a newline): damage
    ],
)
def test_a_damaged_log_is_an_error_naming_the_line(tmp_path, text, phrase):
    with pytest.raises(ValueError, match=phrase):
        common.read_log(_log(tmp_path, text))


def test_complete_logs_read_back_without_warnings(tmp_path):
    path = tmp_path / "log.jsonl"
    for epoch in (1, 2):
        common.append_log(path, {"epoch": epoch})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert common.read_log(path) == [{"epoch": 1}, {"epoch": 2}]
    common.rewrite_log(path, [{"epoch": 1}])
    assert path.read_text() == '{"epoch": 1}\n' and not list(tmp_path.glob(".*.tmp"))
    assert common.read_log(tmp_path / "missing.jsonl") == []


def test_checkpoints_load_tensors_only(tmp_path):
    good = common.save_checkpoint(tmp_path / "good.pt", {"w": torch.ones(2), "config": {"lr": 0.1}})
    assert common.load_checkpoint(good)["config"] == {"lr": 0.1}
    marker = tmp_path / "ran"
    torch.save({"x": PickleBomb(marker)}, tmp_path / "bomb.pt")
    with pytest.raises(ValueError, match="bomb.pt is not a readable tensors-only checkpoint"):
        common.load_checkpoint(tmp_path / "bomb.pt")
    assert not marker.exists()
    (tmp_path / "torn.pt").write_bytes(good.read_bytes()[:100])
    with pytest.raises(ValueError, match="torn.pt is not a readable"):
        common.load_checkpoint(tmp_path / "torn.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="holds a list, expected a checkpoint dict"):
        common.load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint .*nothing.pt; train first"):
        common.load_checkpoint(tmp_path / "nothing.pt", hint="train first")


def test_an_interrupted_atomic_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = common.atomic_write_bytes(tmp_path / "config.json", json.dumps({"v": 1}).encode())

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(common.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        common.atomic_write_bytes(path, b"{broken")
    assert json.loads(path.read_text()) == {"v": 1}


def test_run_directory_rules(tmp_path):
    run = tmp_path / "run"
    common.prepare_run_dir(run, ["last.pt", "log.jsonl"], resume=False, overwrite=False)
    (run / "log.jsonl").write_text("")
    with pytest.raises(FileExistsError, match=r"already holds a run \(log.jsonl\).*--resume.*--overwrite"):
        common.prepare_run_dir(run, ["last.pt", "log.jsonl"], resume=False, overwrite=False)
    with pytest.raises(FileNotFoundError, match="last.pt does not exist"):
        common.prepare_run_dir(run, ["last.pt", "log.jsonl"], resume=True, overwrite=False)
    with pytest.raises(ValueError, match="exclude each other"):
        common.prepare_run_dir(run, ["last.pt"], resume=True, overwrite=True)
    common.prepare_run_dir(run, ["last.pt", "log.jsonl"], resume=False, overwrite=True)
    assert not (run / "log.jsonl").exists()


def test_given_options_sees_only_what_was_typed():
    from examples.warcraft.__main__ import build_parser

    given = common.given_options(build_parser, ["train", "--lr", "0.0005", "--resume", "--no-progress"])
    assert given == {"command", "lr", "resume", "no_progress"}  # --lr at its default value still counts
