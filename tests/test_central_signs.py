"""The central difference's cached ±1 tensor is an ordinary eager tensor, whatever mode made the first one."""

from __future__ import annotations

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import difftools as dt
from difftools.estimators import finite_difference as fd


def _fresh_cache(monkeypatch):
    monkeypatch.setattr(fd, "_SIGNS", {})


def test_signs_are_plus_minus_one_and_reused_in_eager(monkeypatch):
    _fresh_cache(monkeypatch)
    a = fd._central_signs(torch.float32, torch.device("cpu"), 2)
    assert a.shape == (2, 1, 1) and a.flatten().tolist() == [1.0, -1.0]
    assert fd._central_signs(torch.float32, torch.device("cpu"), 2) is a
    assert fd._central_signs(torch.float64, torch.device("cpu"), 2).dtype == torch.float64


def test_signs_made_under_fake_mode_are_not_kept(monkeypatch):
    _fresh_cache(monkeypatch)
    with FakeTensorMode():
        fake = fd._central_signs(torch.float32, torch.device("cpu"), 2)
        assert type(fake) is not torch.Tensor
    eager = fd._central_signs(torch.float32, torch.device("cpu"), 2)
    assert type(eager) is torch.Tensor
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(torch.addcmul(x, eager, x), x * torch.tensor([2.0, 0.0]).view(2, 1, 1))


def test_signs_kept_in_eager_are_not_handed_to_fake_mode(monkeypatch):
    _fresh_cache(monkeypatch)
    eager = fd._central_signs(torch.float32, torch.device("cpu"), 1)
    with FakeTensorMode() as mode:
        fake = fd._central_signs(torch.float32, torch.device("cpu"), 1)
        assert fake is not eager
        torch.addcmul(mode.from_tensor(torch.randn(2, 3)), fake, mode.from_tensor(torch.randn(2, 3)))


def test_signs_made_in_inference_mode_are_not_kept(monkeypatch):
    _fresh_cache(monkeypatch)
    with torch.inference_mode():
        assert fd._central_signs(torch.float32, torch.device("cpu"), 1).is_inference()
    signs = fd._central_signs(torch.float32, torch.device("cpu"), 1)
    assert not signs.is_inference()
    y = torch.randn(2, 3, requires_grad=True)
    torch.addcmul(y, signs, y).sum().backward()  # an inference tensor could not be saved for backward
    torch.testing.assert_close(y.grad, torch.tensor([[2.0] * 3, [0.0] * 3]))


def test_central_aimle_gradient_unchanged_after_a_fake_mode_call(monkeypatch):
    _fresh_cache(monkeypatch)
    theta = torch.randn(4, 10)
    target = torch.randn(4, 10)

    def grad():
        layer = dt.AIMLE(dt.get_solver("topk", k=3), noise=None, controller="deterministic", central=True)
        t = theta.clone().requires_grad_()
        ((layer(t) - target) ** 2).sum().backward()
        return t.grad

    with FakeTensorMode():  # the first signs of this process made under a fake mode (as by a tracer)
        for dim in range(1, 5):
            fd._central_signs(torch.float32, torch.device("cpu"), dim)
    after = grad()
    _fresh_cache(monkeypatch)
    torch.testing.assert_close(after, grad())
    assert after.abs().sum() > 0
