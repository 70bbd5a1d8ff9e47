"""The contract every model family implements: preprocess (CPU), forward (device), postprocess.

The engine drives any family through these three stages without knowing what it is, so
batching, packing, caching and the server work the same for jina-reranker-m0, cross-encoders
and the built-in offline model (after infinity's ``encode_pre / encode_core / encode_post``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from m0rank.config import ImageSizing, ScoreOptions
from m0rank.types import Document

__all__ = ["PreparedPair", "LoadOptions", "RerankerArchitecture"]


@dataclass(frozen=True)
class PreparedPair:
    """One (query, document) pair after CPU preprocessing, ready for ``forward``.

    Attributes:
        num_tokens: Tokens the model will read for this pair (image tokens included); the
            engine sorts and budgets micro-batches by it and reports it as usage.
        payload: Family-specific tensors or data.
        warnings: Notes to pass to the caller with the score.
    """

    num_tokens: int
    payload: Any
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True, kw_only=True)
class LoadOptions:
    """How to place a model: device (``"cpu"``, ``"cuda"``, ``"cuda:1"``), dtype, image budget,
    the byte budget of a model-side feature cache (``None``: the family's default, ``0``: off),
    and how to look up further checkpoints a family depends on (e.g. an adapter's base model)."""

    device: str
    dtype: Any  # torch.dtype; kept as Any so this module does not import torch
    image_sizing: ImageSizing = field(default_factory=ImageSizing)
    vision_cache_bytes: int | None = None
    cache_dir: str | None = None
    local_files_only: bool = False


class RerankerArchitecture(ABC):
    """A loaded model family. Subclasses register under their ``config.json`` architecture names.

    Optional capabilities the engine detects (a family that lacks them still works):

    - ``packs_sequences = True``: ``forward`` packs pairs without padding, so the engine plans
      micro-batches by real tokens instead of ``rows x longest row``.
    - ``parallel_preprocess = True``: ``preprocess`` is thread-safe; the engine spreads it over
      a thread pool.
    - ``launch(batch) -> handle`` and ``collect(handle) -> logits``: ``forward`` split in two, so
      the engine can queue micro-batch n + 1 on the device before waiting for n.

    Attributes:
        architecture_names: Names in ``config.json`` ``architectures`` that this class serves.
        model_name: Name reported to users and in API responses.
    """

    architecture_names: ClassVar[tuple[str, ...]] = ()
    model_name: str = "unknown"

    @classmethod
    @abstractmethod
    def load(cls, path: Path, config: dict[str, Any], options: LoadOptions) -> RerankerArchitecture:
        """Build the model from a resolved checkpoint directory and its parsed ``config.json``."""

    @abstractmethod
    def preprocess(
        self, query: Document, document: Document, options: ScoreOptions, field: str
    ) -> PreparedPair:
        """CPU work for one pair: template, tokenise, image patches. ``field`` names the pair
        in error messages (``"documents[3]"``). Images in both documents are already PIL."""

    @abstractmethod
    def forward(self, batch: Sequence[PreparedPair]) -> Any:
        """Device work: one micro-batch in, raw logits (a 1-D float tensor or array) out."""

    @abstractmethod
    def postprocess(self, logits: Any) -> list[float]:
        """Map raw logits of a micro-batch to relevance scores in [0, 1]."""

    def count_tokens(self, prepared: PreparedPair) -> int:
        """Tokens billed for a pair (defaults to the tokens the model reads)."""
        return prepared.num_tokens

    def warmup(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Run a tiny forward pass so the first request does not pay for lazy initialisation."""

    def cache_stats(self) -> dict[str, int]:
        """Counters of model-side caches (e.g. vision features: hits, misses, bytes) for the
        server's metrics; empty when the family keeps no cache."""
        return {}
