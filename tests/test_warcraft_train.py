"""Warcraft end to end on a few dozen maps: generate, train, exact --resume, evaluate, plot; methods; executors."""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

import difftools
from examples.warcraft.__main__ import main
from examples.warcraft.labelling import dijkstra
from examples.warcraft.report import describe_settings
from examples.warcraft.train import TrainConfig, build_method, build_solver, hamming_distance, train

TRAIN = ["--batch-size", "14", "--milestones", "1", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("wcdata")
    main(["generate", "--data-dir", str(root), "--train", "28", "--val", "7", "--test", "7", "--workers", "1"])
    return str(root)


def _checkpoint(run):
    return torch.load(run / "checkpoint.pt", weights_only=True)


def test_generate_train_resume_evaluate_plot(data_dir, tmp_path, capsys):
    whole, split = tmp_path / "whole", tmp_path / "split"
    main(["train", "--data-dir", data_dir, "--out-dir", str(whole), "--epochs", "2", *TRAIN])
    main(["train", "--data-dir", data_dir, "--out-dir", str(split), "--epochs", "1", *TRAIN])
    main(["train", "--out-dir", str(split), "--epochs", "2", "--resume", "--no-progress"])
    a, b = _checkpoint(whole), _checkpoint(split)
    assert a["epoch"] == b["epoch"] == 2
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in ("alpha", "nnz_ema"):
        assert torch.equal(a["estimator"][key], b["estimator"][key])
    assert a["scheduler"] == b["scheduler"] and a["scheduler"]["last_epoch"] == 2
    for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(x[k], y[k]) for k in x)
    log = [json.loads(line) for line in (split / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2]
    assert log[1]["lr"] == pytest.approx(5e-5)  # ×0.1 after the milestone epoch
    timing = ("epoch_seconds", "solver_seconds", "solver_share", "val_seconds", "elapsed_seconds")
    assert [{k: v for k, v in r.items() if k not in timing} for r in a["history"]] == [
        {k: v for k, v in r.items() if k not in timing} for r in log
    ]

    capsys.readouterr()
    main(["evaluate", "--run-dir", str(split)])
    assert "optimal-cost acc." in capsys.readouterr().out
    metrics = json.loads((split / "test_metrics.json").read_text())
    assert metrics["maps"] == 7 and metrics["epochs"] == 2 and metrics["method"] == "AIMLE (central)"
    assert metrics["valid_path"] == 1.0  # the solver always returns a path
    for key in ("perfect_match", "optimal_cost", "hamming_accuracy", "unique_fraction"):
        assert 0.0 <= metrics[key] <= 1.0

    main(["plot", "--run-dir", str(split)])
    for name in ("paths.png", "costs.png", "learning_curves.png"):
        assert (split / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_config_names_and_validation():
    assert TrainConfig(method="aimle-forward").difference == "forward"
    assert TrainConfig(method="aimle").difference == "central"
    assert TrainConfig(method="imle").difference == "forward"
    assert TrainConfig(method="aimle", difference="forward").label == "AIMLE (forward)"
    with pytest.raises(ValueError, match="method must be one of"):
        TrainConfig(method="reinforce")
    with pytest.raises(ValueError, match="needs a scheduler address"):
        TrainConfig(solver_executor="dask")
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TrainConfig(batch_size=0)
    with pytest.raises(SystemExit):
        main(["train", "--method", "nope"])
    with pytest.raises(SystemExit):
        main(["train", "--controller", "slow"])


def test_one_noise_scale_for_every_method_and_the_old_sigma_still_loads():
    import dataclasses

    from examples import run_files
    from examples.warcraft.__main__ import _config, build_parser
    from tests.markdown import ROOT

    # perturbed-fy's Perturbed layer takes the config's noise_temperature, as AIMLE / I-MLE do.
    config = TrainConfig(method="perturbed-fy", noise_temperature=0.05, samples=8)
    fy, _ = build_method(config, difftools.get_solver("grid_shortest_path"), None)
    assert fy.perturbed.noise_temperature == 0.05
    assert "sigma" not in {f.name for f in dataclasses.fields(TrainConfig)}
    # Saved runs hold sigma: perturbed-fy's becomes noise_temperature, the other methods' is dropped.
    archived = json.loads((ROOT / "docs/examples/warcraft-runs/12x12/perturbed-fy-s0/run.json").read_text())
    assert archived["config"]["sigma"] == 1.0 and TrainConfig.from_saved(archived["config"]).noise_temperature == 1.0
    old = {"method": "perturbed-fy", "sigma": 0.5, "noise_temperature": 1.0}
    assert TrainConfig.from_saved(old).noise_temperature == 0.5 and old["sigma"] == 0.5  # the dict is not changed
    assert TrainConfig.from_saved({"method": "imle", "sigma": 0.5, "noise_temperature": 2.0}).noise_temperature == 2.0
    # The command line: --sigma still works for one release, with a warning; both spellings at once are an error.
    def parsed(*argv):
        args = build_parser().parse_args(["train", "--method", "perturbed-fy", *argv])
        args.given = run_files.given_options(build_parser, ["train", "--method", "perturbed-fy", *argv])
        return args

    assert _config(parsed("--noise-temperature", "0.3")).noise_temperature == 0.3
    with pytest.warns(DeprecationWarning, match="--sigma is deprecated.*use --noise-temperature"):
        assert _config(parsed("--sigma", "0.3")).noise_temperature == 0.3
    with pytest.raises(ValueError, match="give only --noise-temperature"):
        _config(parsed("--sigma", "0.3", "--noise-temperature", "0.3"))


@pytest.mark.parametrize("controller", ["paper", "fast"])
def test_controller_option_reaches_aimle(controller):
    config = TrainConfig(method="aimle", aimle_controller=controller)
    layer, _ = build_method(config, difftools.get_solver("grid_shortest_path"), None)
    assert layer.controller == controller


def test_max_alpha_option_caps_the_fast_rule_and_is_refused_with_another_controller():
    for controller in (None, "fast"):
        config = TrainConfig(method="aimle", aimle_controller=controller, max_alpha=0.3)
        layer, _ = build_method(config, difftools.get_solver("grid_shortest_path"), None)
        assert layer.controller == "fast" and layer.rule.max_alpha == 0.3
    layer, _ = build_method(TrainConfig(method="aimle"), difftools.get_solver("grid_shortest_path"), None)
    assert layer.rule.max_alpha == difftools.estimators.FastRule().max_alpha  # not given: AIMLE's own ceiling
    capped = TrainConfig(method="aimle", aimle_controller="deterministic", max_alpha=0.3)
    layer, _ = build_method(capped, difftools.get_solver("grid_shortest_path"), None)
    assert layer.controller == "deterministic" and layer.rule.max_alpha == 0.3 and layer.noise is None
    with pytest.raises(ValueError, match="max_alpha is the ceiling of the fast rule"):
        TrainConfig(method="aimle", aimle_controller="paper", max_alpha=1.0)
    assert describe_settings(TrainConfig(method="aimle", noise="none", max_alpha=1.0)) == "no noise, α ≤ 1"
    # The preset spelled out (forward, no noise, the fast rule at α ≤ 1) is the same computation: one row.
    spelled = TrainConfig(method="aimle", difference="forward", noise="none", max_alpha=1.0)
    assert describe_settings(spelled) == describe_settings(TrainConfig(aimle_controller="deterministic"))
    assert describe_settings(spelled) == "deterministic preset"
    capped_preset = TrainConfig(aimle_controller="deterministic", max_alpha=0.3)
    assert describe_settings(capped_preset) == "deterministic preset, α ≤ 0.3"


def test_noise_left_out_is_the_methods_own():
    """No --noise: I-MLE's Gumbel; AIMLE's controller preset (Gumbel, none and forward for deterministic)."""
    solver = difftools.get_solver("grid_shortest_path")
    imle, _ = build_method(TrainConfig(method="imle"), solver, None)
    fast, _ = build_method(TrainConfig(method="aimle"), solver, None)
    deterministic, _ = build_method(TrainConfig(method="aimle", aimle_controller="deterministic"), solver, None)
    assert isinstance(imle.noise, difftools.Gumbel) and isinstance(fast.noise, difftools.Gumbel) and fast.central
    assert deterministic.noise is None and not deterministic.central
    given, _ = build_method(TrainConfig(method="aimle", aimle_controller="deterministic", noise="gumbel"), solver, None)
    assert isinstance(given.noise, difftools.Gumbel)  # given explicitly: it wins
    assert TrainConfig(method="aimle", aimle_controller="deterministic").effective_noise == "none"


@pytest.mark.parametrize("scope", ["example", "batch"])
def test_lam_scope_option_reaches_aimle(scope):
    config = TrainConfig(method="aimle", lam_scope=scope)
    layer, _ = build_method(config, difftools.get_solver("grid_shortest_path"), None)
    assert layer.lam_scope == scope


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("aimle", {}),
        ("aimle-forward", {}),
        ("imle", {}),
        ("blackbox", {}),
        ("perturbed-fy", {"noise_temperature": 0.05, "samples": 8}),
        ("spo+", {}),
    ],
)
def test_every_method_pushes_costs_towards_the_label(method, options):
    """Costs that prefer a detour get a gradient that raises the detour and lowers the labelled diagonal."""
    config = TrainConfig(method=method, noise="none", **options)
    with build_solver(config) as solver:
        layer, loss_fn = build_method(config, solver, torch.Generator())
    costs = torch.ones(4, 5, 5)
    detour = (torch.tensor([1, 2, 3, 4, 4, 4]), torch.tensor([0, 0, 0, 1, 2, 3]))
    costs[:, detour[0], detour[1]] = 0.01  # down the first column, then along the bottom row
    label = torch.zeros(4, 5, 5)
    label[:, range(5), range(5)] = 1
    if method.startswith("aimle"):
        layer.alpha.fill_(1.0)
    true_costs = torch.ones(4, 5, 5)  # for SPO+, which is told the true costs: the diagonal is optimal
    true_costs[:, detour[0], detour[1]] = 1.5
    theta = costs.requires_grad_()
    loss_fn(theta, {"paths": label, "weights": true_costs}).backward()
    grad = theta.grad
    assert torch.isfinite(grad).all()
    # Gradient descent (θ -= lr * grad) must raise detour costs and lower the inner diagonal's.
    assert (grad[:, detour[0], detour[1]] <= 0).all() and (grad[:, detour[0], detour[1]] < 0).any()
    assert (grad[:, range(1, 4), range(1, 4)] >= 0).all() and (grad[:, range(1, 4), range(1, 4)] > 0).any()


def test_hamming_distance_averages_maps_and_samples_and_sums_cells():
    target = torch.zeros(2, 3, 3)
    out = torch.zeros(4, 2, 3, 3)
    out[0, 0, 0, 0] = 1  # one wrong cell in one of 4 samples x 2 maps
    assert hamming_distance(out, target).item() == pytest.approx(1 / 8)
    assert hamming_distance(out[0], target).item() == pytest.approx(1 / 2)


def test_dask_executor_solves_with_the_reference_dijkstra():
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp", dashboard_address=None
        ) as cluster,
        build_solver(TrainConfig(solver_executor="dask", scheduler_address=cluster.scheduler_address)) as solver,
    ):
        theta = torch.rand(5, 6, 6) + 0.1
        out = solver(theta)
    expected = np.stack([dijkstra(t.numpy()).path for t in theta])
    np.testing.assert_array_equal(out.numpy(), expected)
    assert solver.sense == "min" and solver.event_dim == 2


def _ddp_worker(rank: int, world: int, port: int, config: TrainConfig) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    train(config)


@pytest.mark.slow  # two spawned processes each import torch: tens of seconds on a shared 2-core machine
def test_ddp_on_two_cpu_processes_logs_once(data_dir, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = TrainConfig(
        data_dir=data_dir, out_dir=str(tmp_path / "ddp"), epochs=1, batch_size=14, ddp=True, progress=False
    )
    mp.spawn(_ddp_worker, args=(2, port, config), nprocs=2, join=True)
    log = (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()
    assert len(log) == 1 and json.loads(log[0])["epoch"] == 1
    assert _checkpoint(tmp_path / "ddp")["config"]["ddp"] is True
