"""A griffe extension that turns the reStructuredText markup in our docstrings into Markdown.

The docstrings cross-reference with Sphinx roles (``:class:`~difftools.AIMLE```) and introduce
code with ``::``, which mkdocstrings (Markdown) would show verbatim. This extension, listed under
the mkdocstrings handler's ``extensions`` in mkdocs.yml, rewrites each docstring when griffe
loads it: a role becomes inline code (the last name only with a leading ``~``, as Sphinx shows
it), a trailing ``::`` becomes ``:`` (the indented block after it is then a Markdown code block),
and a line holding only ``::`` disappears. The source files keep the markup that reads well in
``help()``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["RstMarkup", "to_markdown"]

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj|const):`(~?)([^`]+)`")
_LITERAL_MARKER = re.compile(r"(?<=\S)::[ \t]*$", re.M)
_SPACED_MARKER = re.compile(r"[ \t]+::[ \t]*$", re.M)  # "text ::" is "text" followed by a block
_LONE_MARKER = re.compile(r"^[ \t]*::[ \t]*\n", re.M)


def _role(match: re.Match) -> str:
    short, target = match.group(1), match.group(2).strip()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def to_markdown(text: str) -> str:
    """The docstring ``text`` with Sphinx roles as inline code and ``::`` literal markers removed."""
    text = _ROLE.sub(_role, text)
    text = _LONE_MARKER.sub("", text)
    text = _SPACED_MARKER.sub("", text)
    return _LITERAL_MARKER.sub(":", text)


class RstMarkup(griffe.Extension):
    """Rewrite every loaded docstring with :func:`to_markdown`."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
