"""Documented commands and the examples' default folders write only where git ignores (no stray files to commit)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.markdown import ROOT

# Flags that name where a command writes (outputs, run folders, generated data).
_FLAG = re.compile(r"--(?:out|out-dir|run-dir|data-dir)[ =]([^\s`\\;)]+)")
_DEFAULT = re.compile(r'add_argument\(\s*"--(?:out|out-dir|run-dir|data-dir)"[^)]*?default=(?:Path\()?"([^"]+)"')


def _documented_paths() -> set[str]:
    paths = set()
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for value in _FLAG.findall(page.read_text(encoding="utf-8")):
            # Placeholders and the user's own locations: $VAR, ~/..., RUN, DIR, {name}, absolute paths.
            if value[0] in "$~{/\"'" or value.isupper() or not re.match(r"[\w.-]+(/|$)", value):
                continue
            paths.add(value)
    for main in sorted((ROOT / "examples").glob("*/__main__.py")):
        paths.update(_DEFAULT.findall(main.read_text(encoding="utf-8")))
    return paths


def test_every_documented_output_folder_is_git_ignored():
    paths = _documented_paths()
    assert {"results/synthetic", "runs/warcraft", "data-small", "data"} <= paths, paths
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs git and a checkout to ask git which paths it ignores")
    probes = [f"{p.rstrip('/')}/probe-file" for p in sorted(paths)]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *probes], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    assert sorted(set(probes) - set(ignored)) == []
