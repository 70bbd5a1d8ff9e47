"""m0rank: a self-hosted multilingual, multimodal reranker (jina-reranker-m0 and friends).

Heavy modules (torch, transformers) load only when a model is loaded, so importing
``m0rank`` for its types or errors is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from m0rank._version import __version__
from m0rank.errors import (
    ImageError,
    ImageFetchError,
    InputTooLargeError,
    InvalidInputError,
    M0RankError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedArchitectureError,
)
from m0rank.types import Document, Modality, PairScore, RankResult

if TYPE_CHECKING:
    from m0rank.api import Reranker

__all__ = [
    "__version__",
    "Reranker",
    "Document",
    "Modality",
    "PairScore",
    "RankResult",
    "M0RankError",
    "InvalidInputError",
    "ImageError",
    "ImageFetchError",
    "InputTooLargeError",
    "ModelNotFoundError",
    "ModelLoadError",
    "UnsupportedArchitectureError",
]


def __getattr__(name: str) -> Any:
    if name == "Reranker":
        from m0rank.api import Reranker

        return Reranker
    raise AttributeError(f"module 'm0rank' has no attribute {name!r}")
