"""benchmarks.timing: interleaved rounds, untimed settling calls, medians."""

from __future__ import annotations

from benchmarks.timing import interleaved_medians


def test_each_round_settles_each_function_before_timing_it():
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "ab"}
    medians = interleaved_medians(fns, rounds=2, inner=3, warmup=1, settle=1)
    assert set(medians) == {"a", "b"} and all(t >= 0 for t in medians.values())
    # warm-up once each, then per round: a once untimed + 3 timed, b likewise (interleaved, a first).
    assert calls == ["a", "b"] + (["a"] * 4 + ["b"] * 4) * 2
    calls.clear()
    interleaved_medians(fns, rounds=1, inner=2, warmup=0, settle=0)
    assert calls == ["a", "a", "b", "b"]
