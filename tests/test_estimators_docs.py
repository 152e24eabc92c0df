"""The estimator guide's comparison runs, and every trained method beats the untrained start."""

from __future__ import annotations

import torch

from tests.markdown import run_blocks


def test_choosing_an_estimator_page_runs(capsys):
    threads = torch.get_num_threads()
    # Tiny tensors: one thread avoids spin-waiting on a shared machine.
    torch.set_num_threads(1)
    try:
        namespace = run_blocks("docs/choosing-an-estimator.md")
    finally:
        torch.set_num_threads(threads)
    results = namespace["results"]
    assert set(results) == {"untrained", *namespace["methods"]}
    untrained_hamming, untrained_regret = results["untrained"]
    for name, (hamming, normalised_regret) in results.items():
        if name != "untrained":
            assert hamming < 0.5 * untrained_hamming, name
            assert 0 <= normalised_regret < untrained_regret, name
    assert "FenchelYoungLoss" in capsys.readouterr().out
