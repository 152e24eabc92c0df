"""Every Python block of the README runs, and the quick start really learns."""

from __future__ import annotations

import pytest

from tests.markdown import python_blocks, run_blocks

pytestmark = pytest.mark.usefixtures("clean_registry")


def test_readme_quick_start_runs_and_learns():
    assert python_blocks("README.md"), "the README lost its quick start"
    ns = run_blocks("README.md")
    assert ns["loss"].item() < 0.2  # from about 0.45 (see the comment in the README)
    assert ns["layer"].alpha.item() > 0


def test_readme_quick_start_is_short():
    (block,) = python_blocks("README.md")
    assert len([line for line in block.splitlines() if line.strip()]) <= 20
