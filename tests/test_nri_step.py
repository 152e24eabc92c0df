"""The NRI training step: no read-back from the device, the check-free tree solver, torch.compile."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import difftools
from difftools import _host
from examples.nri.__main__ import main
from examples.nri.data import data_file
from examples.nri.step import SpanningTreeNoCheck, TrainStep
from examples.nri.train import Config, Model, train
from tests.host_reads import HostReads

TINY = {"hidden": 8, "batch_size": 4, "validate_every": 2, "log_every": 1, "eval_batch_size": 3}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("nri_step") / "data"
    main(["generate", "--timesteps", "10", "--train", "8", "--valid", "3", "--test", "3", "--data-dir", str(path)])
    return path


def test_check_free_solver_returns_the_registered_solvers_trees():
    registered = difftools.get_solver("spanning_tree")
    solver = SpanningTreeNoCheck(10)
    torch.manual_seed(0)
    for theta in (
        torch.randn(64, 45),
        torch.randn(2, 3, 45, dtype=torch.float64),
        torch.randint(0, 3, (64, 45)).float(),  # many ties: the same tie-breaking
    ):
        z = solver(theta)
        assert z.dtype == theta.dtype and z.shape == theta.shape
        assert torch.equal(z, registered(theta))
    assert torch.equal(SpanningTreeNoCheck(4)(torch.arange(6.0)), registered(torch.arange(6.0)))
    with pytest.raises(ValueError, match="last dim must be 45"):
        solver(torch.randn(3, 44))


def _step_reads(check_finite: bool) -> list:
    torch.manual_seed(0)
    config = Config(**{k: v for k, v in TINY.items() if k in ("hidden", "batch_size")})
    model = Model(config, torch.Generator().manual_seed(0), check_finite=check_finite)
    step = TrainStep(model, list(model.parameters()), config.lr, "cpu")
    x = torch.randn(4, 10, 10, 2)
    step(x)  # Adam creates its state here
    # Adam's step counters live on the host (CPU tensors, also on a GPU): reading them waits for nothing.
    counters = {id(s["step"]) for s in step.optimizer.state.values()}
    with HostReads() as mode:
        step(x)
    return [read for read in mode.reads if id(read[1]) not in counters]


def test_training_step_reads_nothing_back_from_the_device(monkeypatch):
    # Run as on a GPU: on the CPU the exact gamma sampler redraws its rejected proposals, which reads
    # their number back (from host memory: it waits for nothing), and so does the checked norm of large tensors.
    monkeypatch.setattr(_host, "reads_are_free", lambda device: False)
    assert _step_reads(check_finite=False) == []
    # The detector sees the estimator's own NaN checks, which the training loop turns off.
    assert _step_reads(check_finite=True)


def _compile_works() -> bool:
    try:
        torch.compile(lambda x: x + 1, backend="aot_eager")(torch.ones(1))
    except Exception:  # no dynamo on this platform / Python
        return False
    return True


def test_compiled_training_gives_the_eager_losses(data_dir, tmp_path):
    if not _compile_works():
        pytest.skip("torch.compile cannot run here")
    # aot_eager captures through Dynamo and AOTAutograd like inductor does, without generating
    # C++ (inductor would take minutes on a small CPU); one-step predictions keep the graph small.
    config = Config(**TINY, iterations=3, prediction_steps=1)
    train(config, tmp_path / "eager", data_dir, progress=False)
    train(config, tmp_path / "compiled", data_dir, progress=False, compile=True, compile_backend="aot_eager")
    logs = [
        [json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        for run in ("eager", "compiled")
    ]
    assert [r["iteration"] for r in logs[0]] == [r["iteration"] for r in logs[1]] == [1, 2, 2, 3, 3]
    for a, b in zip(*logs):
        for key in ("elbo", "nll", "kl"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), (a["iteration"], key)
    a, b = (torch.load(tmp_path / run / "last.pt", weights_only=True)["model"] for run in ("eager", "compiled"))
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=1e-4, atol=1e-6, msg=key)
    assert float(a["tree.alpha"]) == float(b["tree.alpha"]) > 0


def test_a_nan_loss_stops_the_run_at_the_next_record(data_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for path in data_dir.iterdir():
        (bad / path.name).write_bytes(path.read_bytes())
    train_file = data_file(bad, "train", 10)
    positions = np.load(train_file)
    positions[5, 3, 1, 2] = np.nan  # sample 5 is in the second batch of 4
    np.save(train_file, positions)
    with pytest.raises(FloatingPointError, match=r"training loss is nan .* iterations 2\.\.2"):
        train(Config(**TINY, iterations=4), tmp_path / "run", bad, progress=False)


def test_variant_options_reach_the_model(data_dir, tmp_path):
    config = Config(**TINY, iterations=1, lam_scope="batch", noise="gumbel", kl_weight=0.0)
    model = Model(config)
    assert model.tree.lam_scope == "batch" and isinstance(model.tree.noise, difftools.Gumbel)
    assert isinstance(Model(Config()).tree.noise, difftools.SumOfGamma)
    main(
        [
            "train",
            "--run-dir",
            str(tmp_path / "run"),
            "--data-dir",
            str(data_dir),
            "--iterations",
            "1",
            "--hidden",
            "8",
            "--lam-scope",
            "batch",
            "--noise",
            "gumbel",
            "--kl-weight",
            "0",
        ]
    )
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["lam_scope"], saved["noise"], saved["kl_weight"]) == ("batch", "gumbel", 0.0)
    for bad, message in (
        ({"lam_scope": "pair"}, "lam_scope must be"),
        ({"noise": "normal"}, "noise must be one of"),
        ({"kl_weight": -1.0}, "kl_weight must be"),
    ):
        with pytest.raises(ValueError, match=message):
            Config(**bad)


def test_kl_weight_zero_trains_on_the_nll_alone():
    x = torch.randn(4, 10, 10, 2)
    params = []
    for manual in (False, True):
        torch.manual_seed(0)
        model = Model(Config(hidden=8, kl_weight=0.0), torch.Generator().manual_seed(0), check_finite=False)
        if manual:
            optimizer = torch.optim.Adam(model.parameters(), lr=model.config.lr)
            model(x)["nll"].mean().backward()
            optimizer.step()
        else:
            TrainStep(model, list(model.parameters()), model.config.lr, "cpu", kl_weight=0.0)(x)
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(params[0], params[1])


def test_compile_flag_reaches_train(monkeypatch, data_dir, tmp_path):
    seen = {}
    monkeypatch.setattr("examples.nri.train.train", lambda *args, **kwargs: seen.update(kwargs) or {})
    main(["train", "--run-dir", str(tmp_path / "run"), "--data-dir", str(data_dir), "--compile"])
    assert seen["compile"] is True
    main(["train", "--run-dir", str(tmp_path / "run"), "--data-dir", str(data_dir)])
    assert seen["compile"] is False


@pytest.mark.cuda
def test_training_step_does_not_synchronise_on_cuda():
    torch.manual_seed(0)
    config = Config(hidden=8, batch_size=4)
    model = Model(config, torch.Generator(device="cuda").manual_seed(0), check_finite=False).cuda()
    step = TrainStep(model, list(model.parameters()), config.lr, "cuda")
    x = torch.randn(4, 10, 10, 2, device="cuda")
    step(x)
    torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
    try:
        for _ in range(3):
            step(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.cuda
def test_captured_training_on_cuda_gives_the_eager_losses(data_dir, tmp_path):
    # inductor with CUDA graphs (mode="reduce-overhead"), the path of the full recipe on a GPU.
    config = Config(**TINY, iterations=4)
    train(config, tmp_path / "eager", data_dir, "cuda", progress=False)
    train(config, tmp_path / "compiled", data_dir, "cuda", progress=False, compile=True)
    logs = [
        [json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
        for run in ("eager", "compiled")
    ]
    for a, b in zip(*logs, strict=True):
        assert b["elbo"] == pytest.approx(a["elbo"], rel=1e-4), a["iteration"]
