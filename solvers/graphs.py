"""Deprecated module name (removed in the next release): ShortestPath moved to difftools.solvers.shortest_path."""

from difftools.deprecation import forward_moved_names

__getattr__ = forward_moved_names(__name__, "difftools.solvers.shortest_path")
