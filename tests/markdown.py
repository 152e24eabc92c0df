"""Extract and run the ```python blocks of a Markdown page (README, docs tutorials)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def python_blocks(path: str | Path) -> list[str]:
    """The ```python code blocks of a Markdown file, in order (path relative to the repo root)."""
    text = (ROOT / path).read_text(encoding="utf-8")
    return _BLOCK.findall(text)


def run_blocks(path: str | Path, after: Callable[[int, dict], None] | None = None) -> dict:
    """Execute all ```python blocks of a page in one namespace (like a notebook); return it.

    ``after(i, namespace)``, if given, runs after block ``i``: to check a value before a later block
    rebinds its name.
    """
    namespace: dict = {"__name__": "__docs__"}
    for i, block in enumerate(python_blocks(path)):
        code = compile(block, f"{path}[block {i}]", "exec")
        exec(code, namespace)
        if after is not None:
            after(i, namespace)
    return namespace
