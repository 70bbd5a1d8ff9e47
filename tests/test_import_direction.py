"""Dependencies inside ``src/m0rank`` flow one way (style.md):

    types/errors -> config -> preprocessing -> model -> engine -> api -> server, cli

``eval`` uses only the public API (``m0rank`` and ``m0rank.api``). Library code never imports
``m0rank.testing``. Checked on the source with ``ast`` (imports inside functions count too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "m0rank"

# Layer rank: a module may import modules of a lower or equal rank only.
LAYERS = {
    "_version": 0, "errors": 0, "types": 0, "terms": 0,
    "config": 1,
    "preprocessing": 2,
    "model": 3,
    "engine": 4, "explain": 4,
    "api": 5, "__init__": 5, "__main__": 7,
    "server": 6, "cli": 7, "eval": 6,
    "batch": 6, "ray": 6, "train": 6,
}
PUBLIC_FOR_EVAL = {"m0rank", "m0rank.api", "m0rank.errors", "m0rank.types", "m0rank._version"}


def _layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return [name for name in names if name == "m0rank" or name.startswith("m0rank.")]


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=[str(p.relative_to(PACKAGE)) for p in SOURCES])
def test_imports_only_point_down_the_layers(path: Path) -> None:
    module = _module_name(path)
    layer = _layer_of(module)
    if layer == "testing":
        return  # test support may use anything
    assert layer in LAYERS, f"{module}: new top-level area, add it to LAYERS"
    for target in _imports(path):
        target_layer = _layer_of(target)
        assert target_layer != "testing", f"{module} imports test support {target}"
        if layer == "eval":
            assert target_layer == "eval" or target in PUBLIC_FOR_EVAL, (
                f"{module} (eval) may use only the public API, not {target}")
            continue
        if target == "m0rank":  # the package root re-exports types/errors lazily
            assert LAYERS[layer] >= LAYERS["api"] or layer == "__init__", (
                f"{module} imports the package root; import the defining module instead")
            continue
        assert LAYERS[target_layer] <= LAYERS[layer], (
            f"{module} (layer {layer}) imports {target} (layer {target_layer}): "
            f"dependencies must flow types/errors -> config -> preprocessing -> model -> "
            f"engine -> api -> server/cli")


def test_server_and_cli_do_not_import_each_other() -> None:
    for path in SOURCES:
        module = _module_name(path)
        if _layer_of(module) == "server":
            assert not any(_layer_of(t) == "cli" for t in _imports(path)), module
