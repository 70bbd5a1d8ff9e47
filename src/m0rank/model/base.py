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
from m0rank.errors import InvalidInputError, UnsupportedOperationError
from m0rank.types import CacheStats, Document

__all__ = ["PreparedPair", "LoadOptions", "LoraTargets", "RerankerArchitecture", "display_name",
           "require_text_pair"]


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
    """How to place a model and what to call it.

    Attributes:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        dtype: A ``torch.dtype`` (``Any`` so this module does not import torch).
        image_sizing: Resize budget for images.
        vision_cache_bytes: Byte budget of a model-side feature cache (``None``: the family's
            default, ``0``: off).
        cache_dir: Hugging Face cache, where a family finds further checkpoints it depends on
            (e.g. an adapter's base model).
        local_files_only: Never use the network for those.
        model_name: Name reported to users and in API responses; the family keeps it as
            ``model_name`` (``"jinaai/jina-reranker-m0"`` is loaded as ``"jina-reranker-m0"``).
    """

    device: str
    dtype: Any
    image_sizing: ImageSizing = field(default_factory=ImageSizing)
    vision_cache_bytes: int | None = None
    cache_dir: str | None = None
    local_files_only: bool = False
    model_name: str | None = None


@dataclass(frozen=True)
class LoraTargets:
    """Where a trainer attaches LoRA in :meth:`RerankerArchitecture.trainable_module`.

    Attributes:
        linear_pattern: Regular expression (full match) over module names of the linears
            that get adapters (peft's ``target_modules`` as a string).
        head_modules: Names of modules trained in full and saved with the adapter
            (peft's ``modules_to_save``), e.g. the score head.
    """

    linear_pattern: str
    head_modules: tuple[str, ...]


class RerankerArchitecture(ABC):
    """A loaded model family. Subclasses register under their ``config.json`` architecture names.

    Everything the engine, the server and the trainer may ask of a family is declared here,
    with a default, so a new family sees on one screen what it must and may implement.

    Must implement: :meth:`load`, :meth:`preprocess`, :meth:`forward`, :meth:`postprocess`.

    May declare or override:

    - ``packs_sequences = True``: ``forward`` packs pairs without padding, so the engine plans
      micro-batches by real tokens instead of ``rows x longest row``.
    - ``parallel_preprocess = True``: ``preprocess`` is thread-safe; the engine spreads it over
      a thread pool.
    - ``overlaps_batches = True`` with :meth:`launch` / :meth:`collect`: ``forward`` split in
      two, so the engine queues micro-batch n + 1 on the device before waiting for n.
    - ``reads_text_layer = True``: the family reads a page's text, not its pixels (OCR-based
      or text-only), so a PDF page that carries a text layer reaches it as that text and
      needs no OCR (``m0rank.preprocessing.pdf.page_document``).
    - :meth:`count_tokens`, :meth:`warmup`, :meth:`cache_stats`.
    - Training: :meth:`trainable_module`, :meth:`train_logits` (``forward``'s code path with
      autograd on), :meth:`lora_targets`, ``score_logit_offset`` and :meth:`save_pretrained`
      (released layout).

    Attributes:
        architecture_names: Names in ``config.json`` ``architectures`` that this class serves.
        model_name: Name reported to users and in API responses (from ``LoadOptions``).
        score_logit_offset: ``postprocess`` is ``sigmoid(logit - score_logit_offset)`` (2.65
            for jina-m0, 0 for cross-encoders); a trainer's calibration (BCE) term uses it.
    """

    architecture_names: ClassVar[tuple[str, ...]] = ()
    packs_sequences: bool = False
    parallel_preprocess: ClassVar[bool] = False
    overlaps_batches: ClassVar[bool] = False
    reads_text_layer: ClassVar[bool] = False
    model_name: str = "unknown"
    score_logit_offset: ClassVar[float] = 0.0

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

    def launch(self, batch: Sequence[PreparedPair]) -> Any:
        """First half of ``forward``: queue the micro-batch, return a handle without waiting.
        Only used when ``overlaps_batches``; the default runs ``forward`` to completion."""
        return self.forward(batch)

    def collect(self, handle: Any) -> Any:
        """Second half of ``forward``: wait for :meth:`launch`'s handle and return logits."""
        return handle

    def count_tokens(self, prepared: PreparedPair) -> int:
        """Tokens billed for a pair (defaults to the tokens the model reads)."""
        return prepared.num_tokens

    def warmup(self) -> None:  # noqa: B027 - optional hook, default no-op
        """Run a tiny forward pass so the first request does not pay for lazy initialisation."""

    def cache_stats(self) -> dict[str, CacheStats]:
        """Counters of model-side caches by cache name (``"vision"``, ``"ocr"``...) for the
        server's metrics; empty when the family keeps no cache."""
        return {}

    def trainable_module(self) -> Any:
        """The ``torch.nn.Module`` a trainer optimises (backbone and score head), in train-ready
        form. Families that cannot be fine-tuned keep this default."""
        raise UnsupportedOperationError(f"{type(self).__name__} cannot be fine-tuned")

    def train_logits(self, batch: Sequence[PreparedPair]) -> Any:
        """Raw logits of a micro-batch as a 1-D tensor on the device, with autograd on: the code
        path of :meth:`forward` (same preprocessing, packing and head), for a trainer."""
        raise UnsupportedOperationError(f"{type(self).__name__} cannot be fine-tuned")

    def lora_targets(self, include_vision: bool = False) -> LoraTargets:
        """Linears that take LoRA adapters (the language model's; the vision tower's only
        with ``include_vision``) and the head trained in full."""
        raise UnsupportedOperationError(f"{type(self).__name__} cannot be fine-tuned with LoRA")

    def save_pretrained(self, path: Path) -> None:
        """Write the model in its family's released layout, so every loader of the released
        checkpoint (m0rank, the reference code, vLLM) reads it unchanged."""
        raise UnsupportedOperationError(f"{type(self).__name__} cannot be saved")


def display_name(name_or_path: str) -> str:
    """``"jina-reranker-m0"`` from a hub id or a folder (``"/models/jina-reranker-m0/"``)."""
    return Path(str(name_or_path).rstrip("/")).name


def require_text_pair(query: Document, document: Document, field: str, model_name: str) -> None:
    """Refuse a pair a text-only family cannot read (an image on either side).

    Raises:
        InvalidInputError: Naming the side (``query`` or ``field``) and the model.
    """
    for side, item in (("query", query), (field, document)):
        if item.images or item.text is None:
            raise InvalidInputError(f"{side}: {model_name} is a text cross-encoder and cannot "
                                    f"read images")
