"""docs/architecture.md's import graph is the one the code draws (scripts/import_graph.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():  # noqa: ANN202 - a module loaded from scripts/
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts/import_graph.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_import_graph_matches_the_code() -> None:
    graph = _script()
    text = (ROOT / "docs/architecture.md").read_text()
    assert graph.replace_block(text, graph.mermaid()) == text, (
        "docs/architecture.md is stale: run python scripts/import_graph.py --write "
        "docs/architecture.md")


def test_every_model_family_package_is_drawn() -> None:
    graph = _script()
    drawn = graph.mermaid()
    for family in ("jina_m0", "offline", "cross_encoder", "monoqwen", "qwen2vl", "dummy"):
        assert f"{family}[{family}/]" in drawn
