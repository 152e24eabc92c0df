"""The Python code on docs/examples/nri.md runs as written."""

from tests.markdown import python_blocks, run_blocks


def test_nri_page_code_runs():
    assert python_blocks("docs/examples/nri.md")
    namespace = run_blocks("docs/examples/nri.md")
    assert namespace["z"].shape == (128, 45)
