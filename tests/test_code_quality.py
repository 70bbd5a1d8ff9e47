"""The tree stays lint-clean, and the typed core stays ``mypy --strict`` clean (style.md).

ruff and mypy are dev dependencies (``pip install -e '.[dev]'``), so a missing tool is a
failure, never a skip: a test suite that cannot check quality must not look green.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRICT_MODULES = ["src/m0rank/types.py", "src/m0rank/errors.py", "src/m0rank/config.py",
                  "src/m0rank/eval", "src/m0rank/server/protocol.py",
                  "src/m0rank/server/settings.py"]


def _run_tool(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <module>`` from this interpreter (the environment under test)."""
    assert importlib.util.find_spec(module) is not None, (
        f"{module} is not installed in {sys.executable}; it is a dev dependency: "
        f"pip install -e '.[dev]'")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                          capture_output=True, text=True)


def _strict_files() -> list[Path]:
    files: list[Path] = []
    for name in STRICT_MODULES:
        path = ROOT / name
        assert path.exists(), f"{name} is listed as strictly typed but does not exist"
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def test_ruff_is_clean() -> None:
    result = _run_tool("ruff", "check", "src", "tests", "bench")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


def test_mypy_strict_on_typed_modules() -> None:
    result = _run_tool("mypy", "--strict", *STRICT_MODULES)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
    # mypy really read every listed file (not, say, an empty folder).
    checked = re.search(r"Success: no issues found in (\d+) source files?", result.stdout)
    assert checked is not None, result.stdout[-1000:]
    assert int(checked.group(1)) == len(_strict_files())
