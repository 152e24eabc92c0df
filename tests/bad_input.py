"""Helpers for bad-input tests: a pickle payload that would run code, and a CLI error catcher."""

from __future__ import annotations

import pathlib

import pytest


class PickleBomb:
    """Unpickling this object creates ``marker``: proof that loading a file ran code."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def cli_error(capsys, main, argv) -> str:
    """Run an example's ``main(argv)``, assert it exits with status 2, and return what it printed on stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2, exit_info.value.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err
