"""The tree stays lint-clean, and the typed core stays ``mypy --strict`` clean (style.md)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STRICT_MODULES = ["src/m0rank/types.py", "src/m0rank/errors.py", "src/m0rank/config.py",
                  "src/m0rank/eval", "src/m0rank/server/protocol.py"]


def _tool(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (dev extra)")
    return found


def test_ruff_is_clean() -> None:
    result = subprocess.run([_tool("ruff"), "check", "src", "tests", "bench"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]


def test_mypy_strict_on_typed_modules() -> None:
    result = subprocess.run([_tool("mypy"), "--strict", *STRICT_MODULES], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
