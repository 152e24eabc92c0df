"""AIMLE's controller on host scalars (the CPU path) against its tensor path (every other device)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from difftools.solvers.topk import argmax

import difftools as dt
from difftools import _host
from difftools.estimators import AlphaRule, DeterministicRule, FastRule, PaperRule

RULES = {
    "paper": lambda: "paper",
    "reference": lambda: "reference",
    "fast": lambda: "fast",
    "deterministic": lambda: "deterministic",
    "fast-gain": lambda: FastRule(gain=0.3, max_alpha=2.5),
}
# exp is the one operation whose last bit may differ between the two paths (AlphaRule.next_alpha_on_host).
EXACT = {"paper", "reference"}


def _statistics(rng: np.random.Generator):
    """(non-zero count, instances) as AIMLE._observe hands them over: one process, active pairs, after an all-reduce."""
    for _ in range(300):
        instances = int(rng.integers(0, 9))
        kind = rng.integers(0, 4)
        count = float(rng.choice([0.0, rng.uniform(0, 3 * max(instances, 1)), float(rng.integers(0, 20))]))
        if kind == 0 and instances > 0:
            yield torch.tensor(count, dtype=torch.float32), instances  # count_over="batch"
        elif kind == 1:
            yield torch.tensor(int(count)), torch.tensor(instances)  # count="entries", active pairs
        elif kind == 2:
            yield torch.tensor(count, dtype=torch.float64), torch.tensor(float(instances), dtype=torch.float64)
        else:
            yield torch.tensor(count, dtype=torch.float32), torch.tensor(instances)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", RULES)
def test_host_update_equals_the_tensor_update(name, dtype, monkeypatch):
    """From the same state, one update on each path: equal α and ḡ (exact, or to the last bit of exp)."""
    settings = dict(target_nnz=0.7, step=3e-3, decay=0.85, initial_alpha=0.4)
    host = dt.AIMLE(argmax, controller=RULES[name](), **settings).to(dtype)
    tensor = dt.AIMLE(argmax, controller=RULES[name](), **settings).to(dtype)
    assert host.rule.has_host_form
    rng = np.random.default_rng(0)
    moved = 0
    for nonzero, instances in _statistics(rng):
        tensor.load_state_dict(host.state_dict())
        before = host.alpha.clone()
        host._update_controller(nonzero, instances)
        with monkeypatch.context() as m:
            m.setattr(_host, "reads_are_free", lambda device: False)
            tensor._update_controller(nonzero, instances)
        assert host.alpha.dtype == host.nnz_ema.dtype == dtype
        assert torch.equal(host.nnz_ema, tensor.nnz_ema), (nonzero, instances)
        if name in EXACT:
            assert torch.equal(host.alpha, tensor.alpha), (nonzero, instances)
        else:
            torch.testing.assert_close(host.alpha, tensor.alpha, rtol=2 * torch.finfo(dtype).eps, atol=0.0)
        moved += not torch.equal(before, host.alpha)
    assert moved > 100  # the trace exercised the rule, not only steps without instances


def test_host_path_is_what_the_cpu_runs_and_keeps_the_state_without_instances(monkeypatch):
    layer = dt.AIMLE(argmax, initial_alpha=0.5)
    calls = []
    update = layer.rule.next_alpha_on_host

    def spy(*args, **kwargs):
        calls.append(args)
        return update(*args, **kwargs)

    monkeypatch.setattr(layer.rule, "next_alpha_on_host", spy, raising=False)
    layer._update_controller(torch.tensor(0.0), torch.tensor(0))  # nothing active: no update
    assert calls == [] and layer.alpha.item() == 0.5 and layer.nnz_ema.item() == 1.0
    layer._update_controller(torch.tensor(0.0), 4)  # count 0 < c = 1: α up by e^κ
    assert len(calls) == 1 and isinstance(calls[0][0], np.float32)
    assert layer.alpha.item() == pytest.approx(0.5 * math.exp(dt.AIMLE.FAST_GAIN), rel=1e-6)
    assert layer.nnz_ema.item() == pytest.approx(0.9)


def test_half_precision_state_keeps_the_tensor_path():
    layer = dt.AIMLE(argmax, initial_alpha=0.5).to(torch.bfloat16)
    layer._update_controller(torch.tensor(0.0), 4)
    assert layer.alpha.dtype == torch.bfloat16
    assert layer.alpha.item() == pytest.approx(0.5 * math.exp(dt.AIMLE.FAST_GAIN), rel=1e-2)


class _Halving(FastRule):
    """A user's rule that changes next_alpha only: it must not inherit FastRule's host form."""

    def next_alpha(self, alpha, ema, count, *, target, step):
        return alpha * 0.5


class _Custom(AlphaRule):
    name = preset = "fast"

    def next_alpha(self, alpha, ema, count, *, target, step):
        return alpha + 1.0


def test_a_rule_uses_its_host_form_only_where_it_wrote_one():
    assert FastRule.has_host_form and DeterministicRule.has_host_form and PaperRule.has_host_form
    assert not _Halving.has_host_form and not _Custom.has_host_form and not AlphaRule.has_host_form
    for rule, expected in ((_Halving(), 0.25), (_Custom(), 1.5)):
        layer = dt.AIMLE(argmax, controller=rule, initial_alpha=0.5)
        layer._update_controller(torch.tensor(3.0), 2)
        assert layer.alpha.item() == expected  # the rule's own next_alpha ran, on the CPU too
