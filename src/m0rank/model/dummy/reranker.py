"""A weight-free model family: deterministic scores with no torch, for the server's own tests.

Reference: infinity's ``DummyTransformer``
(``infinity_emb/transformer/embedder/dummytransformer.py``), which lets the HTTP layer,
batching and load tests run without a model. m0rank's version gives scores that still mean
something, so a test can check ordering end to end:

- the score of a pair is the share of the query's distinct words found in the document's text,
  squashed as ``sigmoid(4 * (share - 0.5))``, so a document containing every query word scores
  about 0.88 and one containing none about 0.12;
- a pair costs 12 template tokens plus one per word, and an image counts
  ``width * height / (28 * 28)`` tokens (the Qwen2-VL patch budget) and adds no words, so image
  documents are accepted and billed like the real model does.

It loads in microseconds, needs no files beyond its ``config.json``
(``architectures: ["M0RankDummyReranker"]``) and is shipped as the built-in ``m0rank-dummy``:
``m0rank serve --model m0rank-dummy`` measures the server without any model cost. A folder
whose ``config.json`` adds ``"seconds_per_pair": 0.05`` makes every forward pass sleep that long
per pair, to load-test queueing, cancellation and shutdown with a known model cost.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from m0rank.config import ScoreOptions
from m0rank.errors import InvalidInputError, ModelLoadError
from m0rank.model.base import LoadOptions, PreparedPair, RerankerArchitecture
from m0rank.types import Document

__all__ = ["DummyReranker", "DUMMY_ARCHITECTURE"]

DUMMY_ARCHITECTURE = "M0RankDummyReranker"
_PATCH_AREA = 28 * 28
# The fixed part of jina-m0's prompt (template words, special and score tokens), so token
# billing and tokens-per-minute limits behave like the real model's.
_TEMPLATE_TOKENS = 12
_WORD = re.compile(r"\w+", re.UNICODE)


class DummyReranker(RerankerArchitecture):
    """Word-overlap scores through the three-stage contract; no weights, no torch."""

    architecture_names: ClassVar[tuple[str, ...]] = (DUMMY_ARCHITECTURE,)
    reads_text_layer: ClassVar[bool] = True  # reads text only: PDF pages by their text layer
    parallel_preprocess: ClassVar[bool] = True  # pure functions of their inputs

    def __init__(self, model_name: str = "m0rank-dummy", seconds_per_pair: float = 0.0) -> None:
        self.model_name = model_name
        self.seconds_per_pair = seconds_per_pair

    @classmethod
    def load(cls, path: Path, config: dict[str, Any], options: LoadOptions) -> DummyReranker:
        """No weights: the config names the architecture and, optionally, a simulated cost."""
        cost = config.get("seconds_per_pair", 0.0)
        if isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost < 0:
            raise ModelLoadError(f"{path / 'config.json'}: seconds_per_pair must be a number "
                                 f">= 0, got {cost!r}")
        return cls(options.model_name or "m0rank-dummy", float(cost))

    def preprocess(self, query: Document, document: Document, options: ScoreOptions,
                   field: str) -> PreparedPair:
        """Word sets of both sides; tokens are words plus image patches, capped at
        ``max_length`` as the real families truncate."""
        query_words = _words(query.text)
        if not query_words and not query.images:
            raise InvalidInputError("query must not be empty")
        doc_words = _words(document.text)
        tokens = _TEMPLATE_TOKENS + len(query_words) + len(doc_words) + sum(
            _image_tokens(image) for image in (*query.images, *document.images))
        share = len(query_words & doc_words) / len(query_words) if query_words else 0.0
        return PreparedPair(num_tokens=max(1, min(tokens, options.max_length)), payload=share)

    def forward(self, batch: Sequence[PreparedPair]) -> list[float]:
        """Logits ``4 * (share - 0.5)`` (after the simulated cost, if any)."""
        if self.seconds_per_pair:
            time.sleep(self.seconds_per_pair * len(batch))
        return [4.0 * (float(pair.payload) - 0.5) for pair in batch]

    def postprocess(self, logits: Any) -> list[float]:
        """``sigmoid(logit)``."""
        return [1.0 / (1.0 + math.exp(-float(logit))) for logit in logits]


def _words(text: str | None) -> frozenset[str]:
    return frozenset(word.lower() for word in _WORD.findall(text or ""))


def _image_tokens(image: Any) -> int:
    width, height = image.size  # a PIL image by the time preprocess runs
    return max(1, (width * height) // _PATCH_AREA)
