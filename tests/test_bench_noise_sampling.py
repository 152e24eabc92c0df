"""benchmarks/noise_sampling.py: every noise is drawn and timed, the table prints one row per shape."""

from __future__ import annotations

from benchmarks import noise_sampling


def test_measure_times_every_noise():
    ms = noise_sampling.measure((4, 6), "cpu", rounds=1, k=3.0, budget=24)
    assert list(ms) == ["gumbel", "normal", "sog(3)", "sog(3), generator", "sog(3), torch's gamma"]
    assert all(t > 0 for t in ms.values())


def test_main_prints_a_row_per_shape(capsys, monkeypatch):
    monkeypatch.setattr(noise_sampling, "SHAPES", [(20, 30), (30, 40)])
    rows = noise_sampling.main(["--quick"])
    out = capsys.readouterr().out
    assert [r["shape"] for r in rows] == [[20, 30], [30, 40]]
    assert "20×30" in out and "30×40" in out and "× Gumbel's" in out
