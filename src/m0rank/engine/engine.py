"""The synchronous engine: preprocess every pair, run planned micro-batches, restore order.

It is split into ``prepare`` (CPU), ``run`` (device) and ``score`` (both), so the server's
async batcher can prepare requests concurrently and pool prepared pairs of many requests into
the same micro-batches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from m0rank.config import EngineConfig, ScoreOptions
from m0rank.engine.batching import plan_micro_batches
from m0rank.model.base import PreparedPair, RerankerArchitecture
from m0rank.types import Document, PairScore

__all__ = ["Engine"]

logger = logging.getLogger(__name__)


class Engine:
    """Drives one :class:`RerankerArchitecture` through preprocess -> forward -> postprocess.

    Args:
        model: The loaded model family.
        config: Micro-batch budget and progress display.
    """

    def __init__(self, model: RerankerArchitecture, config: EngineConfig | None = None) -> None:
        self.model = model
        self.config = config or EngineConfig()

    def prepare(
        self, pairs: Sequence[tuple[Document, Document]], options: ScoreOptions,
        fields: Sequence[str] | None = None,
    ) -> list[PreparedPair]:
        """CPU stage for every pair; ``fields`` name the pairs in error messages."""
        names = fields or [f"pairs[{i}]" for i in range(len(pairs))]
        return [self.model.preprocess(q, d, options, name) for (q, d), name in zip(pairs, names)]

    def run(self, prepared: Sequence[PreparedPair]) -> list[PairScore]:
        """Device stage: planned micro-batches, results in the order of ``prepared``."""
        batches = plan_micro_batches([p.num_tokens for p in prepared],
                                     self.config.max_batch_tokens, self.config.max_batch_size)
        results: list[PairScore | None] = [None] * len(prepared)
        for batch in self._progress(batches):
            for index, score in zip(batch, self.run_batch([prepared[i] for i in batch])):
                results[index] = score
        return [r for r in results if r is not None]

    def run_batch(self, batch: Sequence[PreparedPair]) -> list[PairScore]:
        """One forward pass over one micro-batch."""
        logits = self.model.forward(batch)
        scores = self.model.postprocess(logits)
        raw = logits.tolist() if hasattr(logits, "tolist") else list(logits)
        return [
            PairScore(score=float(s), logit=float(l), num_tokens=self.model.count_tokens(p),
                      warnings=p.warnings)
            for s, l, p in zip(scores, raw, batch)
        ]

    def score(
        self, pairs: Sequence[tuple[Document, Document]], options: ScoreOptions,
        fields: Sequence[str] | None = None,
    ) -> list[PairScore]:
        """Prepare and run ``pairs``; the same pair scores the same however it is batched."""
        if not pairs:
            return []
        return self.run(self.prepare(pairs, options, fields))

    def _progress(self, batches: list[list[int]]) -> object:
        if not self.config.show_progress or len(batches) < 2:
            return batches
        from tqdm.auto import tqdm

        return tqdm(batches, desc="reranking", unit="batch")
