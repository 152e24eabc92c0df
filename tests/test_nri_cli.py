"""A tiny end-to-end NRI run through the command line: generate, train, --resume, evaluate, plot."""

from __future__ import annotations

import json

import pytest
import torch

from examples.nri.__main__ import main
from examples.nri.train import Config
from tests.bad_input import PickleBomb, cli_error

TINY = ["--hidden", "8", "--batch-size", "4", "--validate-every", "2", "--log-every", "1", "--eval-batch-size", "3"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("nri_cli") / "data"
    main(["generate", "--timesteps", "10", "--train", "8", "--valid", "3", "--test", "3", "--data-dir", str(path)])
    return path


def test_generate_workers_gives_the_same_bytes(data_dir, tmp_path):
    main(["generate", "--train", "8", "--valid", "3", "--test", "3", "--data-dir", str(tmp_path), "--workers", "2"])
    files = sorted(data_dir.iterdir())
    assert len(files) == 6
    for path in files:
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), path.name


def _argv(run_dir, data_dir, *extra):
    return ["train", "--run-dir", str(run_dir), "--data-dir", str(data_dir), *TINY, *extra]


def _train(run_dir, data_dir, *extra):
    return main(_argv(run_dir, data_dir, *extra))


def test_time_limit_stops_at_a_validation_and_resumes_bit_for_bit(data_dir, tmp_path, capsys):
    straight, limited = tmp_path / "straight", tmp_path / "limited"
    _train(straight, data_dir, "--iterations", "6")
    # Any positive limit has passed by the first validation (iteration 2): the run stops there.
    _train(limited, data_dir, "--iterations", "6", "--time-limit", "1e-9")
    assert torch.load(limited / "last.pt", weights_only=True)["state"]["iteration"] == 2
    main(["train", "--run-dir", str(limited), "--data-dir", str(data_dir), "--resume"])
    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(limited / "last.pt", weights_only=True)
    assert b["state"]["iteration"] == 6
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert (straight / "log.jsonl").read_text() == (limited / "log.jsonl").read_text()
    assert "time_limit" in cli_error(capsys, main, _argv(tmp_path / "bad", data_dir, "--time-limit", "0"))


def test_resume_equals_uninterrupted_and_evaluate(data_dir, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    _train(straight, data_dir, "--iterations", "4")
    _train(resumed, data_dir, "--iterations", "2")
    # Only what is given is checked on --resume; the rest comes from the run's config.json.
    main(["train", "--run-dir", str(resumed), "--data-dir", str(data_dir), "--resume", "--iterations", "4"])

    a = torch.load(straight / "last.pt", weights_only=True)
    b = torch.load(resumed / "last.pt", weights_only=True)
    assert a["state"]["iteration"] == b["state"]["iteration"] == 4
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert float(a["model"]["tree.alpha"]) > 0  # AIMLE's λ controller state travels with the model
    assert torch.equal(a["generator"], b["generator"])
    assert (straight / "log.jsonl").read_text() == (resumed / "log.jsonl").read_text()

    records = [json.loads(line) for line in (straight / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if r["split"] == "valid"] == [2, 4]
    assert [r["iteration"] for r in records if r["split"] == "train"] == [1, 2, 3, 4]

    main(["evaluate", "--run-dir", str(straight), "--data-dir", str(data_dir)])
    result = json.loads((straight / "eval.json").read_text())
    assert result["test_samples"] == 3 and result["iterations_trained"] == 4
    assert result["elbo"] == pytest.approx(-(result["nll"] + result["kl"]))
    assert 0.0 <= result["precision"] <= 1.0 and 0.0 <= result["recall"] <= 1.0
    assert 0.0 <= result["map_true_edges"] <= 9.0

    main(["plot", "--run-dir", str(straight), "--data-dir", str(data_dir), "--count", "1"])
    for name in ("trajectories.png", "learning_curves.png"):
        assert (straight / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_decoder_and_controller_options_reach_the_model(data_dir, tmp_path):
    _train(tmp_path / "opts", data_dir, "--iterations", "2", "--skip-first", "--target-nnz", "0.5")
    config = json.loads((tmp_path / "opts" / "config.json").read_text())
    assert config["skip_first"] is True and config["target_nnz"] == 0.5
    from examples.nri.train import load_model

    model = load_model(tmp_path / "opts" / "last.pt")
    assert model.tree.target_nnz == 0.5 and model.decoder.message_types == [1]


def test_the_deterministic_preset_without_noise_trains_and_reloads(data_dir, tmp_path):
    run = tmp_path / "det"
    _train(run, data_dir, "--iterations", "2", "--controller", "deterministic", "--noise", "none")
    config = json.loads((run / "config.json").read_text())
    assert (config["controller"], config["noise"]) == ("deterministic", "none")
    from examples.nri.train import load_model

    tree = load_model(run / "last.pt").tree
    assert tree.noise is None and tree.controller == "deterministic" and 0 < float(tree.alpha) <= 1.0


def test_imle_central_runs(data_dir, tmp_path):
    _train(tmp_path / "imle", data_dir, "--estimator", "imle", "--difference", "central", "--iterations", "2")
    config = json.loads((tmp_path / "imle" / "config.json").read_text())
    assert config["estimator"] == "imle" and config["lr"] == 5e-4 and config["noise_temperature"] == 0.1


def test_run_directory_guards_and_settings(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    _train(run, data_dir, "--iterations", "2")
    message = cli_error(capsys, main, _argv(run, data_dir, "--iterations", "2"))
    assert "pass --resume" in message and "--overwrite" in message
    message = cli_error(capsys, main, ["train", "--run-dir", str(run), "--resume", "--lr", "0.1", "--seed", "3"])
    assert "lr: the run has 0.0001, now 0.1" in message and "seed: the run has 0, now 3" in message
    from examples.nri.train import train

    with pytest.raises(FileNotFoundError, match="--resume: .*last.pt does not exist"):
        train(Config(), tmp_path / "missing", data_dir, resume=True)
    # --overwrite replaces the run's files (and only those).
    (run / "notes.txt").write_text("mine")
    _train(run, data_dir, "--iterations", "2", "--overwrite")
    assert (run / "notes.txt").read_text() == "mine"
    assert "exclude each other" in cli_error(capsys, main, _argv(run, data_dir, "--resume", "--overwrite"))


def test_resume_remembers_the_data_dir_and_says_what_it_does(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    _train(run, data_dir, "--iterations", "2")
    capsys.readouterr()
    main(["train", "--run-dir", str(run), "--resume", "--iterations", "4"])  # no --data-dir: the run's
    out = capsys.readouterr().out
    assert f"resuming {run} at iteration 3 of 4" in out
    main(["train", "--run-dir", str(run), "--resume", "--iterations", "4"])
    assert f"nothing to do: {run} has finished 4 of 4 iterations" in capsys.readouterr().out
    message = cli_error(capsys, main, ["train", "--run-dir", str(run), "--resume", "--data-dir", str(tmp_path)])
    assert "was trained on --data-dir" in message
    main(["evaluate", "--run-dir", str(run)])  # the run's data directory again
    assert json.loads((run / "eval.json").read_text())["test_samples"] == 3


def test_torn_log_line_is_dropped_on_resume(data_dir, tmp_path):
    run = tmp_path / "run"
    _train(run, data_dir, "--iterations", "2")
    with (run / "log.jsonl").open("a") as f:
        f.write('{"iteration": 3, "split": "tr')  # killed during an append
    with pytest.warns(UserWarning, match="torn last line"):
        main(["train", "--run-dir", str(run), "--resume", "--iterations", "4"])
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if r["split"] == "valid"] == [2, 4]


def test_tampered_checkpoint_is_refused_not_executed(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    _train(run, data_dir, "--iterations", "2")
    marker = tmp_path / "pwned"
    torch.save({"config": PickleBomb(marker)}, run / "last.pt")  # an object that runs code when unpickled
    torch.save({"config": PickleBomb(marker)}, run / "best.pt")
    for argv in (
        ["train", "--run-dir", str(run), "--resume", "--iterations", "4"],
        ["evaluate", "--run-dir", str(run)],
        ["plot", "--run-dir", str(run), "--count", "1"],
    ):
        assert "not a readable tensors-only checkpoint" in cli_error(capsys, main, argv)
    assert not marker.exists()


def test_config_defaults_follow_the_paper():
    forward, central = Config(timesteps=10, difference="forward"), Config(timesteps=10, difference="central")
    assert (forward.lr, forward.noise_temperature) == (1e-4, 1.0)
    assert (central.lr, central.noise_temperature) == (5e-4, 0.1)
    assert Config(timesteps=20, difference="central").noise_temperature == 1.0
    assert Config(timesteps=20, difference="forward").noise_temperature == 0.1
    assert Config(timesteps=20).prediction_steps == 19
    with pytest.raises(ValueError, match="estimator must be"):
        Config(estimator="sst")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        Config(batch_size=0)
    with pytest.raises(ValueError, match="skip_first must be a bool"):
        Config(skip_first=1)
    with pytest.raises(ValueError, match="target_nnz must be a positive number"):
        Config(target_nnz=0)


def test_controller_option_selects_algorithm_1_or_aimles_defaults():
    from examples.nri.train import Model

    paper, fast = Model(Config(hidden=8)).tree, Model(Config(hidden=8, controller="fast")).tree
    assert (paper.controller, paper.initial_alpha, paper.count) == ("paper", 0.0, "entries")  # Algorithm 1
    assert (fast.controller, fast.initial_alpha, fast.count, fast.count_over) == ("fast", 1.0, "solution", "active")
    # The deterministic preset with no noise: the tree is the MAP tree of θ, the α rule stops at 1.
    det = Model(Config(hidden=8, controller="deterministic", noise="none")).tree
    assert (det.controller, det.noise, det.central, det.count) == ("deterministic", None, False, "solution")
    assert det.rule.max_alpha == 1.0
    with pytest.raises(ValueError, match="controller must be one of 'paper', 'fast', 'deterministic'"):
        Config(controller="reference")
    with pytest.raises(ValueError, match="noise must be one of"):
        Config(noise="normal")


@pytest.mark.cuda
def test_trains_on_cuda(data_dir, tmp_path):
    _train(tmp_path / "gpu", data_dir, "--iterations", "2", "--device", "cuda")
    main(["evaluate", "--run-dir", str(tmp_path / "gpu"), "--data-dir", str(data_dir), "--device", "cuda"])
    assert json.loads((tmp_path / "gpu" / "eval.json").read_text())["test_samples"] == 3
