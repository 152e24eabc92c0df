"""Deprecated module name (removed in the next release): CvxpySolver moved to difftools.solvers.cvxpy_solver."""

from difftools.deprecation import forward_moved_names

__getattr__ = forward_moved_names(__name__, "difftools.solvers.cvxpy_solver")
