"""The Python code on docs/examples/nri.md runs as written, and its values are what the page says."""

import math

import networkx as nx
import pytest
import torch

from tests.markdown import python_blocks, run_blocks


def is_spanning_tree(edges: torch.Tensor, n: int) -> bool:
    """Whether the 0/1 upper-triangle indicators ``edges`` (row-major pairs i < j) are a spanning tree of K_n."""
    pairs = torch.triu_indices(n, n, 1).T[edges.bool()]
    return nx.is_tree(nx.Graph([tuple(p) for p in pairs.tolist()] or [(0, 0)])) and len(pairs) == n - 1


def test_nri_page_code_runs_and_its_values_are_the_pages():
    assert python_blocks("docs/examples/nri.md")
    namespace = run_blocks("docs/examples/nri.md")
    tree, theta, z = namespace["tree"], namespace["theta"], namespace["z"]
    # Every row is a spanning tree of the 10 balls (nine edges, connected), not only nine ones.
    assert z.shape == (128, 45) and all(is_spanning_tree(row, 10) for row in z)
    # α₀ = 0: the first gradient is exactly zero, and the fast rule raised α to η·e^0.5 (no entry was non-zero).
    assert torch.equal(theta.grad, torch.zeros(128, 45))
    assert tree.alpha.item() == pytest.approx(1e-3 * math.exp(0.5), rel=1e-6)
    # "From about the third step on, the gradients have non-zero entries": each row of such a gradient is a
    # difference of two trees, so it sums to zero.
    generator = torch.Generator().manual_seed(0)
    for _ in range(2, 6):
        theta.grad = None
        (tree(theta) * torch.randn(128, 45, generator=generator)).sum().backward()
    grad = theta.grad
    assert (grad != 0).any()
    torch.testing.assert_close(grad.sum(-1), torch.zeros(128), atol=1e-6, rtol=0)

