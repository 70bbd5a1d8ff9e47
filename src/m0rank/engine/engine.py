"""The synchronous engine: preprocess every pair, run planned micro-batches, restore order.

It is split into ``prepare`` (CPU), ``run`` (device) and ``score`` (both), so the server's
async batcher can prepare requests concurrently and pool prepared pairs of many requests into
the same micro-batches.

Throughput comes from keeping the device busy:

- ``prepare`` spreads pairs over a thread pool (image decoding and resizing release the GIL)
  for models that declare ``parallel_preprocess`` (their ``preprocess`` is thread-safe);
- ``score`` prepares the next chunk of a long request while the current one runs;
- ``run`` collates micro-batch *n + 1* while the device still computes *n*, when the model
  declares ``overlaps_batches`` (its ``launch`` / ``collect`` split of ``forward``);
- models that pack pairs without padding (``packs_sequences``) get micro-batches planned by
  real tokens rather than ``rows x longest row``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from m0rank.config import EngineConfig, ScoreOptions
from m0rank.engine.batching import plan_micro_batches, plan_packed_batches
from m0rank.model.base import PreparedPair, RerankerArchitecture
from m0rank.types import Document, PairScore

__all__ = ["Engine", "PREPARE_CHUNK"]

logger = logging.getLogger(__name__)

# Pairs prepared ahead while the previous chunk runs on the device: small enough that the
# device starts early (a page takes ~30 ms of CPU to resize), large enough to fill a few
# micro-batches of 16k tokens.
PREPARE_CHUNK = 64


class Engine:
    """Drives one :class:`RerankerArchitecture` through preprocess -> forward -> postprocess.

    Args:
        model: The loaded model family.
        config: Micro-batch budget and progress display.
        prepare_workers: Threads for CPU preprocessing; default ``min(8, cpu_count)``.
    """

    def __init__(self, model: RerankerArchitecture, config: EngineConfig | None = None,
                 *, prepare_workers: int | None = None) -> None:
        self.model = model
        self.config = config or EngineConfig()
        self.prepare_workers = prepare_workers or min(8, os.cpu_count() or 1)

    def prepare(
        self, pairs: Sequence[tuple[Document, Document]], options: ScoreOptions,
        fields: Sequence[str] | None = None,
    ) -> list[PreparedPair]:
        """CPU stage for every pair; ``fields`` name the pairs in error messages.

        Pairs are prepared in threads when the model says its ``preprocess`` is thread-safe
        (``parallel_preprocess``); the first failing pair in input order raises either way.
        """
        names = fields or [f"pairs[{i}]" for i in range(len(pairs))]

        def one(index: int) -> PreparedPair:
            query, document = pairs[index]
            return self.model.preprocess(query, document, options, names[index])

        if not self.model.parallel_preprocess or self.prepare_workers < 2 or len(pairs) < 2:
            return [one(i) for i in range(len(pairs))]
        with ThreadPoolExecutor(min(self.prepare_workers, len(pairs))) as pool:
            return list(pool.map(one, range(len(pairs))))

    def run(self, prepared: Sequence[PreparedPair]) -> list[PairScore]:
        """Device stage: planned micro-batches, results in the order of ``prepared``."""
        with self._progress(len(prepared)) as bar:
            return self._run(prepared, bar)

    def _run(self, prepared: Sequence[PreparedPair], bar: Any) -> list[PairScore]:
        batches = self.plan([p.num_tokens for p in prepared])
        results: list[PairScore | None] = [None] * len(prepared)
        pairs = ([prepared[i] for i in batch] for batch in batches)
        for batch, scores in zip(batches, self.run_batches(pairs), strict=True):
            for index, score in zip(batch, scores, strict=True):
                results[index] = score
            bar.update(len(batch))
        return [r for r in results if r is not None]

    def plan(self, lengths: Sequence[int]) -> list[list[int]]:
        """Micro-batches (lists of indices) for pairs of these token lengths."""
        planner = plan_packed_batches if self.model.packs_sequences else plan_micro_batches
        return planner(lengths, self.config.max_batch_tokens, self.config.max_batch_size)

    def run_batch(self, batch: Sequence[PreparedPair]) -> list[PairScore]:
        """One forward pass over one micro-batch."""
        return self._scores(batch, self.model.forward(batch))

    def score(
        self, pairs: Sequence[tuple[Document, Document]], options: ScoreOptions,
        fields: Sequence[str] | None = None,
    ) -> list[PairScore]:
        """Prepare and run ``pairs``; the same pair scores the same however it is batched.

        Long inputs go in chunks of ``PREPARE_CHUNK`` pairs, the next chunk being prepared
        while the current one runs.
        """
        if not pairs:
            return []
        names = list(fields or [f"pairs[{i}]" for i in range(len(pairs))])
        starts = range(0, len(pairs), PREPARE_CHUNK)
        if len(starts) == 1:
            return self.run(self.prepare(pairs, options, names))

        def prepare_chunk(start: int) -> list[PreparedPair]:
            end = start + PREPARE_CHUNK
            return self.prepare(pairs[start:end], options, names[start:end])

        results: list[PairScore] = []
        with ThreadPoolExecutor(1) as ahead, self._progress(len(pairs)) as bar:
            pending: Future[list[PreparedPair]] = ahead.submit(prepare_chunk, starts[0])
            for following in [*starts[1:], None]:
                prepared = pending.result()
                if following is not None:
                    pending = ahead.submit(prepare_chunk, following)
                results.extend(self._run(prepared, bar))
        return results

    def run_batches(self, batches: Iterable[Sequence[PreparedPair]]) -> Iterator[list[PairScore]]:
        """Scores of each micro-batch, in order, as they complete.

        With a model that ``overlaps_batches`` (jina-m0), micro-batch *n + 1* is collated and
        queued on the device before *n*'s result is awaited, so the device does not idle while
        the host prepares tensors; otherwise it is :meth:`run_batch` in a loop, each batch's
        scores yielded as soon as it ran.
        """
        if not self.model.overlaps_batches:
            yield from (self.run_batch(batch) for batch in batches)
            return
        pending: tuple[Sequence[PreparedPair], Any] | None = None
        for batch in batches:
            handle = self.model.launch(batch)
            if pending is not None:
                yield self._scores(pending[0], self.model.collect(pending[1]))
            pending = (batch, handle)
        if pending is not None:
            yield self._scores(pending[0], self.model.collect(pending[1]))

    def _scores(self, batch: Sequence[PreparedPair], logits: Any) -> list[PairScore]:
        scores = self.model.postprocess(logits)
        raw = logits.tolist() if hasattr(logits, "tolist") else list(logits)
        return [
            PairScore(score=float(score), logit=float(logit),
                      num_tokens=self.model.count_tokens(pair), warnings=pair.warnings)
            for score, logit, pair in zip(scores, raw, batch, strict=True)
        ]

    def _progress(self, pairs: int) -> Any:
        """One progress bar over the pairs of a call (disabled unless ``show_progress``)."""
        from tqdm.auto import tqdm

        disable = not self.config.show_progress or pairs < 2
        return tqdm(total=pairs, desc="reranking", unit="pair", disable=disable)
