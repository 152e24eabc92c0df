"""The Warcraft results page: its code runs, and its images exist."""

from __future__ import annotations

import re

from tests.markdown import ROOT, run_blocks

PAGE = "docs/examples/warcraft.md"


def test_warcraft_page_code_runs():
    namespace = run_blocks(PAGE)
    assert namespace["metrics"]["optimal_cost"] == 1.0


def test_warcraft_page_images_exist():
    text = (ROOT / PAGE).read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert images
    for image in images:
        assert (ROOT / "docs" / "examples" / image).read_bytes()[:4] == b"\x89PNG", image
