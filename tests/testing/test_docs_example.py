"""docs/testing.md's pytest example runs as written (a conftest fixture and a test)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"


def _python_blocks() -> dict[str, str]:
    """The doc's Python blocks, keyed by their first-line file name comment."""
    blocks = re.findall(r"```python\n# (\S+)\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return dict(blocks)


def test_the_example_files_are_in_the_doc() -> None:
    assert set(_python_blocks()) == {"conftest.py", "test_my_search.py"}


def test_the_documented_fixture_and_test_pass(pytester: pytest.Pytester,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    blocks = _python_blocks()
    pytester.makeconftest(blocks["conftest.py"])
    pytester.makepyfile(test_my_search=blocks["test_my_search.py"])
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
