"""Synthetic gradient-fidelity experiments of the AIMLE paper (Fig. 1, 3, 4) on a categorical toy task."""
