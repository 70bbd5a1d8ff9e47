"""Qwen2-VL weight names: the one flat/nested mapping and the strict load built on it.

Released checkpoints (jina-reranker-m0, Qwen2-VL-2B-Instruct) use the flat names ``model.*``
(language model) and ``visual.*``; transformers >= 4.52 nests them as ``model.language_model.*``
and ``model.visual.*``. Every Qwen2-VL family reads either and writes the flat one.
"""

from __future__ import annotations

from typing import Any

from m0rank.errors import ModelLoadError
from m0rank.model.loading import load_exact

__all__ = [
    "NESTED_PREFIXES",
    "flat_to_nested",
    "nested_to_flat",
    "to_nested_names",
    "to_flat_names",
    "load_qwen2vl_state",
]

# transformers' own prefixes for the two halves of a Qwen2-VL model.
NESTED_PREFIXES = ("model.language_model.", "model.visual.")


def flat_to_nested(name: str) -> str:
    """Flat name -> transformers' nested one (``model.x`` -> ``model.language_model.x``,
    ``visual.x`` -> ``model.visual.x``); other names (a score head) are unchanged."""
    if name.startswith(NESTED_PREFIXES):
        return name
    if name.startswith("visual."):
        return "model." + name
    if name.startswith("model."):
        return "model.language_model." + name.removeprefix("model.")
    return name


def nested_to_flat(name: str) -> str:
    """The inverse of :func:`flat_to_nested` (how released checkpoints are written)."""
    if name.startswith("model.language_model."):
        return "model." + name.removeprefix("model.language_model.")
    if name.startswith("model.visual."):
        return "visual." + name.removeprefix("model.visual.")
    return name


def to_nested_names(state: dict[str, Any], source: str,
                    dropped_prefixes: tuple[str, ...] = ()) -> dict[str, Any]:
    """A state dict in either naming, renamed to transformers' nested names.

    A checkpoint is nested or flat as a whole: when any name is already nested, the others are
    kept as they are. Names under ``dropped_prefixes`` (e.g. an unused ``lm_head.``) are left out.

    Raises:
        ModelLoadError: Nothing usable is left.
    """
    nested = any(k.startswith(NESTED_PREFIXES) for k in state)
    mapped = {(name if nested else flat_to_nested(name)): tensor
              for name, tensor in state.items() if not name.startswith(dropped_prefixes)}
    if not mapped:
        raise ModelLoadError(f"{source}: the checkpoint holds no usable tensors")
    return mapped


def to_flat_names(state: dict[str, Any]) -> dict[str, Any]:
    """A nested state dict in the released flat naming (for ``save_pretrained``)."""
    return {nested_to_flat(name): tensor for name, tensor in state.items()}


def load_qwen2vl_state(module: Any, state: dict[str, Any], source: str, layout: str,
                       expected: set[str] | None = None) -> None:
    """The strict load (:func:`m0rank.model.loading.load_exact`) of an already renamed state:
    missing or unexpected tensors and shape mismatches fail with the checkpoint named."""
    load_exact(module, state, source, layout, expected)
