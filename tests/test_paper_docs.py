"""The paper examples' pages: the synthetic page's code runs, and every image a page shows exists."""

from __future__ import annotations

import re

import pytest
import torch

from tests.markdown import ROOT, run_blocks

PAGES = ["docs/examples/synthetic.md", "docs/examples/dvae.md", "docs/examples/l2x.md"]


def test_synthetic_page_code_runs_and_fast_controller_wins(capsys):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread avoids spin-waiting on a shared machine
    try:
        results = run_blocks("docs/examples/synthetic.md")["results"]
    finally:
        torch.set_num_threads(threads)
    paper_alpha, paper_cos = results["paper"]
    fast_alpha, fast_cos = results["fast"]
    assert paper_alpha == pytest.approx(0.1, abs=2e-3)  # 100 steps of η = 1e-3
    assert 0.3 < fast_alpha < 1.0 and fast_cos > paper_cos
    out = capsys.readouterr().out
    # The page quotes what it prints.
    page = (ROOT / "docs/examples/synthetic.md").read_text(encoding="utf-8")
    for line in out.strip().splitlines():
        assert line.strip() in page


@pytest.mark.parametrize("page", PAGES)
def test_images_and_data_files_exist(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)]+\.(?:png|csv))\)", text)
    assert targets, page
    for target in targets:
        assert (ROOT / page).parent.joinpath(target).is_file(), target
