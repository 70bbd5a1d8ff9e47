"""Draw m0rank's package-level import graph from the source, as a Mermaid flowchart.

``python scripts/import_graph.py`` prints it; ``--write docs/architecture.md`` replaces the
block between ``<!-- import-graph:start -->`` and ``<!-- import-graph:end -->``.
``tests/test_docs_architecture.py`` fails when the committed picture no longer matches the code,
so the diagram in docs/architecture.md is always the one the imports draw.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "m0rank"
START, END = "<!-- import-graph:start -->", "<!-- import-graph:end -->"
# Areas drawn as one node; "__init__" and "__main__" are the package's front door, left out.
HIDDEN = {"__init__", "__main__", "_version", "testing", "builtin"}
# Imported by nearly everything (the bottom layer): drawn once as a note, not as 20 arrows.
BASE = {"errors", "types"}


def area_of(module: str) -> str:
    """``"model"`` for ``m0rank.model.jina_m0.reranker``; ``"api"`` for ``m0rank.api``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def edges() -> list[tuple[str, str]]:
    """(importer area, imported area) pairs, from every import in src/m0rank."""
    found: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        source = area_of(".".join(parts))
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.startswith("m0rank.") and area_of(name) != source:
                    found.add((source, area_of(name)))
    drawn = HIDDEN | BASE
    return sorted((a, b) for a, b in found if a not in drawn and b not in drawn)


def families() -> list[str]:
    """Model family packages (``model/<family>/``), shared parts included."""
    return sorted(p.name for p in (PACKAGE / "model").iterdir()
                  if p.is_dir() and (p / "__init__.py").exists())


def mermaid() -> str:
    """The flowchart: areas and their imports, and the model families inside ``model``."""
    lines = ["```mermaid", "flowchart LR"]
    lines += [f"    {a} --> {b}" for a, b in edges()]
    lines.append("    subgraph model_families[\"model/ families\"]")
    lines += [f"        {name}[{name}/]" for name in families()]
    lines.append("    end")
    lines.append("    model -.- model_families")
    lines.append("```")
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """``text`` with the marked block replaced by ``block``."""
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{block}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="update the marked block of this file")
    args = parser.parse_args(argv)
    block = mermaid()
    if args.write is None:
        sys.stdout.write(block + "\n")
        return 0
    text = args.write.read_text()
    if START not in text or END not in text:
        parser.error(f"{args.write} has no {START} ... {END} block")
    args.write.write_text(replace_block(text, block))
    return 0


if __name__ == "__main__":
    sys.exit(main())
