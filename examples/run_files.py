"""Deprecated module (removed in the next release): its contents moved to :mod:`examples.common`.

``examples.common`` is the one module of what every example shares: estimators by name, atomic
checkpoints loaded with ``weights_only=True``, the JSON-lines log, run-directory rules and the
command-line helpers, beside the tables and figures.
"""

from __future__ import annotations

from difftools.deprecation import forward_moved_names

__getattr__ = forward_moved_names(__name__, "examples.common")
