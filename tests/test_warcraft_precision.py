"""Warcraft training in fp32 and bf16, channels-last against NCHW, and resuming across precisions."""

from __future__ import annotations

import pytest
import torch

import difftools
from examples.warcraft.__main__ import main
from examples.warcraft.model import CombResNet18
from examples.warcraft.train import TrainConfig, build_method, native_bf16, network_costs, resolve_precision

TRAIN = ["--batch-size", "14", "--milestones", "1", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("wcprec")
    main(["generate", "--data-dir", str(root), "--train", "28", "--val", "7", "--test", "7", "--workers", "1"])
    return str(root)


def test_channels_last_gives_the_nchw_outputs_and_gradients():
    torch.manual_seed(0)
    nchw = CombResNet18(5).double()
    last = CombResNet18(5).double().to(memory_format=torch.channels_last)
    last.load_state_dict(nchw.state_dict())
    images = torch.randn(3, 3, 40, 40, dtype=torch.float64)
    a = nchw(images)
    b = last(images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    a.square().sum().backward()
    b.square().sum().backward()
    for (name, p), q in zip(nchw.named_parameters(), last.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-11, msg=name)


def test_bf16_costs_are_fp32_and_close_to_fp32():
    torch.manual_seed(0)
    model = CombResNet18(12).to(memory_format=torch.channels_last)
    images = torch.randn(4, 3, 96, 96).contiguous(memory_format=torch.channels_last)
    full, half = network_costs(model, images, "fp32"), network_costs(model, images, "bf16")
    assert full.dtype == half.dtype == torch.float32
    assert not torch.equal(full, half)  # autocast really ran in bfloat16
    # bfloat16 keeps 8 significant bits: a relative error of a few 1e-3 through a few layers.
    assert ((half - full).norm() / full.norm()).item() < 0.05


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_training_step_in_each_precision_is_finite_and_updates_the_model(precision):
    torch.manual_seed(0)
    model = CombResNet18(6).to(memory_format=torch.channels_last)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(size=6, noise="none", target_nnz=6.0)
    layer, loss_fn = build_method(config, difftools.get_solver("grid_shortest_path"), torch.Generator())
    layer.alpha.fill_(1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.randn(4, 3, 48, 48).contiguous(memory_format=torch.channels_last)
    paths = torch.zeros(4, 6, 6)
    paths[:, range(6), range(6)] = 1
    loss = loss_fn(network_costs(model, images, precision), {"paths": paths})
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    optimizer.step()
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32 under autocast
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_bf16_checkpoint_resumes_in_fp32_with_a_message(data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    main(["train", "--data-dir", data_dir, "--out-dir", str(run), "--epochs", "1", "--precision", "bf16", *TRAIN])
    capsys.readouterr()
    main(["train", "--out-dir", str(run), "--epochs", "2", "--resume", "--precision", "fp32", "--no-progress"])
    out = capsys.readouterr().out
    assert "resuming a bf16 run in fp32" in out and "at epoch 2 of 2" in out
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["config"]["precision"] == "fp32"
    assert all(v.dtype != torch.bfloat16 for v in checkpoint["model"].values())


def test_precision_is_validated():
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        TrainConfig(precision="fp16")


@pytest.mark.parametrize(
    ("avx512_bf16", "amx", "expected"), [(True, False, "bf16"), (False, True, "bf16"), (False, False, "fp32")]
)
def test_auto_precision_is_bf16_only_where_the_cpu_does_it_natively(monkeypatch, avx512_bf16, amx, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert native_bf16("cpu") == (expected == "bf16")
    assert resolve_precision("auto", "cpu") == expected
    # An explicit choice is kept as given, whatever the CPU.
    assert resolve_precision("bf16", "cpu") == "bf16" and resolve_precision("fp32", "cpu") == "fp32"


def test_auto_precision_without_torchs_cpu_helpers_is_fp32(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", "meta") == "fp32"  # neither a CPU nor a GPU: no native bf16 claimed


def test_an_unknown_precision_is_refused_by_name():
    with pytest.raises(ValueError, match="precision must be 'auto' or one of fp32, bf16, got 'fp16'"):
        resolve_precision("fp16", "cpu")


def test_the_cli_says_what_auto_chose(monkeypatch, capsys):
    from examples.warcraft.__main__ import _precision, build_parser

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert build_parser().parse_args(["full"]).precision == "auto"  # the default of the full recipe
    assert build_parser().parse_args(["train"]).precision == "fp32"
    assert _precision("auto", "cpu") == "fp32"
    assert "--precision auto: fp32 on cpu (no native bfloat16 arithmetic" in capsys.readouterr().out
    assert _precision("bf16", "cpu") == "bf16" and capsys.readouterr().out == ""
