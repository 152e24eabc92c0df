"""The inverted-tree study script: run order, resuming by result files, and the table's fractions."""

from __future__ import annotations

import json

import pytest

from benchmarks import nri_seed_study as study
from examples.nri.__main__ import main


def test_order_runs_the_baseline_first_then_variants_seed_by_seed():
    assert study._order(["baseline", "a", "b"], 2) == [
        ("baseline", 0),
        ("baseline", 1),
        ("a", 0),
        ("b", 0),
        ("a", 1),
        ("b", 1),
    ]
    assert study._order(["baseline", "a"], [3, 2]) == [("baseline", 3), ("baseline", 2), ("a", 3), ("a", 2)]
    assert set(study.VARIANTS) == {
        "baseline",
        "nnz-90",
        "lam-batch",
        "reference",
        "skip-first",
        "no-prior",
        "gumbel",
        "fast",
        "deterministic",
    }
    from examples.nri.train import Config

    for name, variant in study.VARIANTS.items():  # every variant is a valid run configuration
        assert Config(**study.QUICK, **variant).hidden == 64, name


def _result(variant, seed, curve):
    return {
        "variant": variant,
        "seed": seed,
        "seconds": 10.0,
        "valid": [
            {"iteration": it, "elbo": -1.0, "precision": p, "flipped": p < 0.25, "map_true_edges": e}
            for it, p, e in curve
        ],
    }


def test_table_counts_the_seeds_that_learn_at_the_chosen_iteration(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    runs = [
        _result("baseline", 0, [(100, 0.30, 2.5), (200, 0.40, 3.5)]),  # learns, but only by 200
        _result("baseline", 1, [(100, 0.21, 1.1), (200, 0.21, 1.0)]),  # inverted
        _result("baseline", 2, [(100, 0.36, 3.0), (200, 0.42, 3.6)]),
        _result("gumbel", 0, [(100, 0.22, 1.2), (200, 0.22, 1.2)]),
    ]
    for r in runs:
        (results / f"{r['variant']}-s{r['seed']}.json").write_text(json.dumps(r))
    args = type("Args", (), {"out": tmp_path, "at": None, "threshold": 0.35, "edges": 2.25})
    lines = study.table(args).splitlines()
    assert lines[2] == "| baseline | 3 | 200 | 2 | 0.67 | 2 | 0.67 | s0 40 (3.5), s1 21* (1.0), s2 42 (3.6) | 10 |"
    assert lines[3].startswith("| gumbel | 1 | 200 | 0 | 0.00 | 0 | 0.00 | s0 22* (1.2) |")
    args.at = 150  # the last validation at or before 150: iteration 100
    assert "| baseline | 3 | 100 | 1 | 0.33 | 2 | 0.67 |" in study.table(args)
    args.at = 50
    with pytest.raises(ValueError, match="baseline seed 0: no validation at or before 50"):
        study.table(args)


def test_run_writes_one_result_per_run_and_skips_finished_ones(tmp_path, capsys):
    data = tmp_path / "data"
    main(["generate", "--timesteps", "10", "--train", "8", "--valid", "3", "--test", "3", "--data-dir", str(data)])
    argv = ["run", "--data-dir", str(data), "--out", str(tmp_path / "study"), "--iterations", "1"]
    argv += ["--validate-every", "1", "--valid-size", "3", "--seeds", "1", "--variants", "baseline", "gumbel"]
    study.main(argv)
    results = tmp_path / "study" / "results"
    assert sorted(p.name for p in results.iterdir()) == ["baseline-s0.json", "gumbel-s0.json"]
    record = json.loads((results / "gumbel-s0.json").read_text())
    assert record["settings"]["noise"] == "gumbel" and record["settings"]["hidden"] == 64
    assert [r["iteration"] for r in record["valid"]] == [1]
    capsys.readouterr()
    study.main(argv)  # everything is done: nothing runs
    assert "seed" not in capsys.readouterr().out
    study.main([*argv, "--iterations", "2", "--variants", "gumbel"])  # continued from last.pt
    assert "resuming" in capsys.readouterr().out
    record = json.loads((results / "gumbel-s0.json").read_text())
    assert record["resumed"] and [r["iteration"] for r in record["valid"]] == [1, 2]
