"""The unconstrained 0/1 MAP oracle: ``Hypercube`` (``z_i = 1`` exactly where ``θ_i > 0``), batched in torch.

The guide's worked example of a new solver (``CONTRIBUTING.md``): one module, one test file, one docs entry.
"""

from __future__ import annotations

from torch import Tensor

from difftools.contract import Solver, check_sense

__all__ = ["Hypercube"]


class Hypercube(Solver):
    """``z = argmax_{z ∈ {0,1}^n} ⟨z, θ⟩``: each entry independently, 1 where θ_i > 0 (ties, θ_i = 0, give 0).

    θ ``[*batch, n]`` scores (sense ``"max"``, ``event_dim`` 1); batched on θ's device. With
    ``sense="min"`` (θ are costs) it returns the minimiser, 1 where θ_i < 0.
    """

    event_dim = 1
    discrete = "binary"
    theta_meaning = "[*batch, n] scores"
    check_output_values = False  # a comparison cast to θ's dtype: 0 and 1 whatever θ is

    def __init__(self, sense: str = "max"):
        self.sense = check_sense(sense, "Hypercube")

    def solve_batch(self, theta: Tensor, /) -> Tensor:
        return (theta > 0 if self.sense == "max" else theta < 0).to(theta.dtype)

    def repr_parts(self) -> list[str]:
        return [f"sense={self.sense!r}"]
