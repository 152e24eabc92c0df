"""Warcraft run directories: no silent overwrite, resume refuses other settings, clear CLI errors."""

from __future__ import annotations

import json

import pytest
import torch

from examples.warcraft.__main__ import main
from tests.bad_input import PickleBomb, cli_error

TRAIN = ["--batch-size", "14", "--milestones", "1", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("wcruns")
    main(["generate", "--data-dir", str(root), "--train", "14", "--val", "7", "--test", "7", "--workers", "1"])
    return str(root)


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("wcrun") / "run"
    main(["train", "--data-dir", data_dir, "--out-dir", str(run), "--epochs", "1", *TRAIN])
    return run


def _train(data_dir, run, *extra):
    return ["train", "--data-dir", data_dir, "--out-dir", str(run), *TRAIN, *extra]


def test_a_new_run_does_not_replace_an_existing_one(data_dir, trained, capsys):
    log = (trained / "log.jsonl").read_text()
    message = cli_error(capsys, main, _train(data_dir, trained, "--epochs", "1"))
    assert "already holds a run" in message and "--resume" in message and "--overwrite" in message
    assert (trained / "log.jsonl").read_text() == log  # untouched


def test_overwrite_replaces_the_run_explicitly(data_dir, tmp_path):
    run = tmp_path / "run"
    main(_train(data_dir, run, "--epochs", "1"))
    (run / "notes.txt").write_text("mine")
    main(_train(data_dir, run, "--epochs", "1", "--seed", "1", "--overwrite"))
    assert torch.load(run / "checkpoint.pt", weights_only=True)["config"]["seed"] == 1
    assert len((run / "log.jsonl").read_text().splitlines()) == 1
    assert (run / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("option", "value", "phrase"),
    [
        ("--lr", "0.01", "lr: the run has 0.0005, now 0.01"),
        ("--method", "blackbox", "method: the run has 'aimle', now 'blackbox'"),
        ("--batch-size", "7", "batch_size: the run has 14, now 7"),
        ("--seed", "2", "seed: the run has 0, now 2"),
        ("--data-dir", "elsewhere", "data_dir: the run has"),
    ],
)
def test_resume_refuses_other_settings_and_names_them(trained, capsys, option, value, phrase):
    message = cli_error(capsys, main, ["train", "--out-dir", str(trained), "--resume", option, value])
    assert phrase in message and "only --epochs, --device, --precision" in message


def test_resume_says_what_it_resumes_or_that_there_is_nothing_to_do(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    main(_train(data_dir, run, "--epochs", "1"))
    capsys.readouterr()
    main(["train", "--out-dir", str(run), "--resume", "--epochs", "1", "--no-progress"])
    assert f"nothing to do: {run} has finished 1 of 1 epochs" in capsys.readouterr().out
    main(["train", "--out-dir", str(run), "--resume", "--epochs", "2", "--no-progress"])
    assert f"resuming {run} at epoch 2 of 2" in capsys.readouterr().out
    assert [r["epoch"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines())] == [1, 2]


def test_user_errors_print_a_message_and_exit_2(data_dir, tmp_path, capsys):
    message = cli_error(capsys, main, ["train", "--out-dir", str(tmp_path / "none"), "--resume"])
    assert "checkpoint.pt does not exist" in message
    message = cli_error(capsys, main, ["evaluate", "--run-dir", str(tmp_path / "none")])
    assert "no checkpoint" in message and "train first" in message
    message = cli_error(capsys, main, _train(str(tmp_path / "nodata"), tmp_path / "r", "--epochs", "1"))
    assert "nodata" in message


def test_a_tampered_checkpoint_is_refused_not_executed(trained, tmp_path, capsys):
    run = tmp_path / "tampered"
    run.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"config": PickleBomb(marker)}, run / "checkpoint.pt")
    (run / "log.jsonl").write_text("")
    for argv in (["evaluate", "--run-dir", str(run)], ["train", "--out-dir", str(run), "--resume"]):
        assert "not a readable tensors-only checkpoint" in cli_error(capsys, main, argv)
    assert not marker.exists()


def test_full_command_generates_trains_continues_and_reports(tmp_path, monkeypatch, capsys):
    import examples.warcraft.__main__ as cli
    from examples.warcraft.train import resolve_precision

    monkeypatch.setattr(cli, "DEFAULT_COUNTS", {"train": 14, "val": 7, "test": 7})
    data, runs = str(tmp_path / "data"), tmp_path / "runs"
    common = ["full", "--data-dir", data, "--threads", "1", "--no-progress"]
    for seed in ("0", "1"):
        main([*common, "--seed", seed, "--epochs", "1", "--out-dir", str(runs / f"aimle-s{seed}")])
    main([*common, "--method", "blackbox", "--epochs", "1", "--out-dir", str(runs / "blackbox-s0")])
    capsys.readouterr()
    main([*common, "--seed", "0", "--epochs", "2", "--out-dir", str(runs / "aimle-s0")])  # continues the run
    assert "at epoch 2 of 2" in capsys.readouterr().out
    config = torch.load(runs / "aimle-s0" / "checkpoint.pt", weights_only=True)["config"]
    # The deterministic preset, and everything else AIMLE's (noise, c, ... left to it).
    assert (config["aimle_controller"], config["difference"]) == ("deterministic", "forward")
    # --precision auto (the default of `full`): bf16 where this CPU does it natively, else fp32.
    precision = resolve_precision("auto", "cpu")
    assert (config["noise"], config["target_nnz"], config["precision"]) == (None, None, precision)

    main(["report", "--runs-dir", str(runs), "--out-dir", str(tmp_path / "report"), "--name", "t"])
    table = (tmp_path / "report" / "t.md").read_text().splitlines()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table[2:]}
    assert set(rows) == {"AIMLE (forward)", "Blackbox"}
    aimle_row = rows["AIMLE (forward)"]
    assert f" | deterministic preset | 0, 1 | 1/2 | {precision} | " in aimle_row and " ± " in aimle_row
    summary = json.loads((tmp_path / "report" / "t.json").read_text())
    assert len(summary) == 3 and all(r["elapsed_seconds"] > 0 for r in summary)
    assert (tmp_path / "report" / "t_curves.png").read_bytes()[:4] == b"\x89PNG"

    # Archived (no weights), the same table comes back; combined with the training runs, a seed counts once.
    archive = tmp_path / "archive"
    report = ["report", "--out-dir", str(tmp_path / "r2"), "--name", "t"]
    main([*report, "--runs-dir", str(runs), "--archive", str(archive)])
    assert sorted(p.name for p in archive.iterdir()) == ["aimle-s0", "aimle-s1", "blackbox-s0"]
    assert not list(archive.rglob("*.pt"))
    main(["report", "--runs-dir", str(archive), "--out-dir", str(tmp_path / "r3"), "--name", "t"])
    assert (tmp_path / "r3" / "t.md").read_text() == (tmp_path / "report" / "t.md").read_text()
    message = cli_error(capsys, main, ["report", "--runs-dir", str(runs), str(archive), "--out-dir", str(tmp_path)])
    assert "are the same run" in message


def test_archived_run_without_log_and_with_unrecorded_metrics(tmp_path):
    from examples.warcraft.report import ARCHIVE, collect_runs, summary_table
    from examples.warcraft.train import TrainConfig

    metrics = {"optimal_cost": 0.9, "perfect_match": 0.8, "valid_path": 1.0, "regret": 0.002, "hamming_accuracy": 0.99}
    for seed, regret in ((0, None), (1, 0.004)):
        run = tmp_path / f"blackbox-s{seed}"
        run.mkdir()
        config = TrainConfig(method="blackbox", seed=seed, precision="bf16").__dict__
        note = {"config": config, "epochs": 50, "elapsed_seconds": 600.0 * (seed + 1), "note": "log not kept"}
        (run / ARCHIVE).write_text(json.dumps(note))
        (run / "test_metrics.json").write_text(json.dumps({**metrics, "regret": regret, "epochs": 50}))
    runs = collect_runs(tmp_path)
    assert [r["history"] for r in runs] == [[], []] and runs[0]["note"] == "log not kept"
    row = summary_table(runs).splitlines()[2]
    # regret recorded for one seed only: that seed's value, marked †; accuracy over both seeds
    assert "| 0.0040† |" in row and "| 90.0 ± 0.0% |" in row and "| 10 / 20 |" in row
