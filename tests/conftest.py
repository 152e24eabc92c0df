"""Shared pytest configuration: CUDA skipping and helpers for executing documentation."""

from __future__ import annotations

import pytest
import torch

# The tests use tiny tensors: one intra-op thread is faster than two on a small (or busy) machine.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def clean_registry():
    """Undo registrations a test (or the documentation it executes) makes."""
    from difftools import registry

    saved = dict(registry._registry)
    yield
    registry._registry.clear()
    registry._registry.update(saved)
