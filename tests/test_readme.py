"""The README against the repository: its quick start runs and learns, its two commands are the ones CI and
the example run, the paths it names exist, and its results are the Warcraft page's."""

from __future__ import annotations

import re
import shlex

import pytest
import tomllib

from tests.markdown import ROOT, python_blocks, run_blocks

README = (ROOT / "README.md").read_text(encoding="utf-8")
BASH_BLOCKS = re.findall(r"^```bash\n(.*?)^```", README, re.S | re.M)


@pytest.mark.usefixtures("clean_registry")
def test_readme_quick_start_runs_and_learns():
    assert python_blocks("README.md"), "the README lost its quick start"
    ns = run_blocks("README.md")
    assert ns["loss"].item() < 0.2  # from about 0.45 (see the comment in the README)
    assert ns["layer"].alpha.item() > 0


def _commands(text: str) -> list[list[str]]:
    """Shell commands of a script or block (split at ``&&`` and lines), comments and leading environment
    assignments dropped, as argument lists without ``--quiet`` (CI's only extra flag) and with
    ``python -m pip`` written ``pip``."""
    commands = []
    for line in text.splitlines():
        line = line.split("#", 1)[0] if not line.lstrip().startswith("#!") else ""
        for part in line.split("&&"):
            words = [w for w in shlex.split(part) if w != "--quiet"]
            while words and re.fullmatch(r"\w+=\S*", words[0]):  # environment assignments
                words = words[1:]
            if words[:3] == ["python", "-m", "pip"]:
                words = words[2:]
            if words:
                commands.append(words)
    return commands


def test_the_test_command_is_what_ci_runs():
    # The README's test command, command by command, is what .ci/run runs after its lint and docs steps.
    (test,) = [block for block in BASH_BLOCKS if "pytest" in block]
    (run,) = [block for block in BASH_BLOCKS if block.rstrip().endswith("python -m examples.warcraft")]
    ci = _commands((ROOT / ".ci" / "run").read_text(encoding="utf-8"))
    readme = _commands(test)
    torch = ["pip", "install", "torch==2.13.0"]
    assert readme == [torch, ["pip", "install", "-e", ".[test]"], ["python", "-m", "pytest", "-q"]]
    assert all(command in ci for command in readme), (readme, ci)
    # "(what CI runs, after `ruff check` and a strict docs build)"
    assert ["ruff", "check", "."] in ci
    assert any(c[:3] == ["mkdocs", "build", "--strict"] for c in ci)
    order = [ci.index(c) for c in (["ruff", "check", "."], ["python", "-m", "pytest", "-q"])]
    assert order == sorted(order)
    # The run command installs the same torch and an extra that exists.
    assert _commands(run) == [torch, ["pip", "install", "-e", ".[examples]"], ["python", "-m", "examples.warcraft"]]


def test_extras_and_torch_requirement_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = set(re.findall(r'\.\[(\w+)\]', README))
    assert extras == {"examples", "test"}
    assert extras <= set(project["optional-dependencies"])
    floor = re.search(r"any `torch>=([\d.]+)` works", README)[1]
    assert f"torch>={floor}" in project["dependencies"]


def test_the_full_recipe_command_lists_the_examples_methods():
    from examples.warcraft.__main__ import build_parser
    from examples.warcraft.train import METHODS

    line = next(line for block in BASH_BLOCKS for line in block.splitlines() if " full --method " in line)
    command, comment = line.split("#")
    listed = [m.strip() for m in comment.replace("or", "", 1).split(",")]
    method = shlex.split(command)[-1]
    assert sorted([method, *listed]) == sorted(METHODS)
    for name in METHODS:  # each one parses as the README writes it
        args = build_parser().parse_args([*shlex.split(command)[3:-1], name])
        assert (args.command, args.method) == ("full", name)


def test_named_paths_exist_and_are_the_demos():
    from examples.warcraft.__main__ import QUICK_DATA, QUICK_RUN

    # Package table: every folder it names, and a runnable __main__ for every example it lists.
    table = dict(re.findall(r"^\| `([\w/]+)` \| (.*) \|$", README, re.M))
    assert set(table) == {"difftools/", "solvers/", "examples/", "benchmarks/"}
    assert all((ROOT / folder).is_dir() for folder in table)
    examples = re.findall(r"`(\w+)`", table["examples/"].split("—")[0])
    assert examples == ["warcraft", "nri", "synthetic", "dvae", "l2x"]
    assert all((ROOT / "examples" / name / "__main__.py").is_file() for name in examples)
    # The demo's output folders as the README names them.
    assert f"`{QUICK_RUN}/plots/`" in README and f"`{QUICK_DATA}/`" in README
    # Relative Markdown links, if any, point at files that exist.
    for target in re.findall(r"\]\((?!https?://|#)([^)#]+)", README):
        assert (ROOT / target).exists(), target


WARCRAFT_PAGE = (ROOT / "docs" / "examples" / "warcraft.md").read_text(encoding="utf-8")
# README wording -> method column of the Warcraft page's results table.
README_METHODS = {
    "Blackbox": "Blackbox",
    "AIMLE with forward differences": "AIMLE (forward)",
    "Perturbed + Fenchel–Young": "Perturbed + FY",
    "I-MLE": "I-MLE (forward)",
    "AIMLE with central differences": "AIMLE (central)",
    "SPO+": "SPO+",
}


def test_quoted_results_are_the_warcraft_pages():
    table = WARCRAFT_PAGE.split("<!-- full-table -->")[1].split("<!-- /full-table -->")[0]
    accuracy: dict[str, set[str]] = {}  # method -> its rows' optimal-cost accuracy column (settings differ)
    for row in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        accuracy.setdefault(cells[0], set()).add(cells[5])
    results = README.split("Measured on the generated data")[1].split("see the Warcraft results page")[0]
    for wording, method in README_METHODS.items():
        words = r"\s+".join(map(re.escape, wording.split()))  # the README wraps lines anywhere
        quoted = re.search(words + r"\s+([\d.]+(?: ± [\d.]+)?%)", results)
        assert quoted, wording
        assert quoted[1] in accuracy[method], (wording, quoted[1], accuracy[method])
    # The demo: its wall time and accuracy as measured on the page.
    seconds = re.search(r"under a minute \((\d+) s measured", README)[1]
    assert f"**{seconds} s of wall time from scratch**" in WARCRAFT_PAGE
    about = float(re.search(r"reaches about (\d+)% optimal-cost accuracy", README)[1])
    measured = float(re.search(r"reaching \*\*([\d.]+)%\*\*", WARCRAFT_PAGE)[1])
    assert abs(about - measured) <= 1
