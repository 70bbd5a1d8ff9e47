"""The synchronous engine: preprocess every pair, run planned micro-batches, restore order.

It is split into ``prepare`` / ``submit_prepare`` (CPU), ``run`` / ``run_batches`` (device) and
``score`` (both), so the server's async batcher can prepare requests concurrently and pool
prepared pairs of many requests into the same micro-batches.

Throughput comes from keeping the device busy:

- ``prepare`` spreads pairs over a thread pool (image decoding and resizing release the GIL)
  for models that declare ``parallel_preprocess`` (their ``preprocess`` is thread-safe);
- ``score`` queues the next chunk of a long request on the pool while the current one runs;
- ``run`` collates micro-batch *n + 1* while the device still computes *n*, when the model
  declares ``overlaps_batches`` (its ``launch`` / ``collect`` split of ``forward``);
- models that pack pairs without padding (``packs_sequences``) get micro-batches planned by
  real tokens rather than ``rows x longest row``.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Literal, overload

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

    Concurrency model (the same for the library and the server, docs/architecture.md): the
    engine owns ONE thread pool for CPU preprocessing (``prepare_workers`` threads, one when
    the model's ``preprocess`` is not thread-safe); device work runs on the thread that calls
    :meth:`run` / :meth:`run_batches` (the caller's, or the server's single device thread).
    Nothing here creates a pool per call.

    Args:
        model: The loaded model family.
        config: Micro-batch budget and progress display.
        prepare_workers: Threads for CPU preprocessing; default ``min(8, cpu_count)``.
    """

    def __init__(self, model: RerankerArchitecture, config: EngineConfig | None = None,
                 *, prepare_workers: int | None = None) -> None:
        self.model = model
        self.config = config or EngineConfig()
        workers = prepare_workers or min(8, os.cpu_count() or 1)
        self.prepare_workers = workers if model.parallel_preprocess else 1
        self._pool = _LazyPool(self.prepare_workers)

    def with_config(self, config: EngineConfig) -> Engine:
        """The same model and preprocessing threads under another micro-batch budget."""
        other = copy.copy(self)
        other.config = config
        return other

    @property
    def prepare_pool(self) -> ThreadPoolExecutor:
        """The engine's preprocessing threads, started on first use."""
        return self._pool.get()

    def close(self) -> None:
        """Stop the preprocessing threads (queued preparations are cancelled)."""
        self._pool.close()

    def prepare_one(self, query: Document, document: Document, options: ScoreOptions,
                    field: str) -> PreparedPair:
        """CPU stage of one pair (what the pool threads run)."""
        return self.model.preprocess(query, document, options, field)

    def submit_prepare(
        self, pairs: Sequence[tuple[Document, Document]], options: ScoreOptions,
        fields: Sequence[str] | None = None,
    ) -> list[Future[PreparedPair]]:
        """Queue every pair's CPU stage on the pool; one future per pair, in input order.

        Cancelling a future that has not started drops that pair's work, which is how the
        server stops preparing for a client that went away.
        """
        names = fields or [f"pairs[{i}]" for i in range(len(pairs))]
        return [self.prepare_pool.submit(self.prepare_one, query, document, options, name)
                for (query, document), name in zip(pairs, names, strict=True)]

    def prepare(
        self, pairs: Sequence[tuple[Document, Document]], options: ScoreOptions,
        fields: Sequence[str] | None = None,
    ) -> list[PreparedPair]:
        """CPU stage for every pair; ``fields`` name the pairs in error messages.

        Pairs are prepared on the pool (several threads when the model's ``preprocess`` is
        thread-safe); the first failing pair in input order raises, and the others are
        cancelled.
        """
        if len(pairs) < 2 or self.prepare_workers < 2:
            names = fields or [f"pairs[{i}]" for i in range(len(pairs))]
            return [self.prepare_one(q, d, options, n)
                    for (q, d), n in zip(pairs, names, strict=True)]
        return _results_in_order(self.submit_prepare(pairs, options, fields))

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

    def score(
        self, pairs: Sequence[tuple[Document, Document]], options: ScoreOptions,
        fields: Sequence[str] | None = None,
    ) -> list[PairScore]:
        """Prepare and run ``pairs``; the same pair scores the same however it is batched.

        Long inputs go in chunks of ``PREPARE_CHUNK`` pairs: the next chunk is queued on the
        preprocessing pool while the current one runs on this thread.
        """
        if not pairs:
            return []
        names = list(fields or [f"pairs[{i}]" for i in range(len(pairs))])
        starts = range(0, len(pairs), PREPARE_CHUNK)
        if len(starts) == 1:
            return self.run(self.prepare(pairs, options, names))

        def submit(start: int) -> list[Future[PreparedPair]]:
            end = start + PREPARE_CHUNK
            return self.submit_prepare(pairs[start:end], options, names[start:end])

        results: list[PairScore] = []
        with self._progress(len(pairs)) as bar:
            pending = submit(starts[0])
            for following in [*starts[1:], None]:
                prepared = _results_in_order(pending)
                if following is not None:
                    pending = submit(following)
                results.extend(self._run(prepared, bar))
        return results

    def launch(self, batch: Sequence[PreparedPair]) -> Any:
        """Start one micro-batch on the device; :meth:`collect` turns it into scores."""
        if self.model.overlaps_batches:
            return self.model.launch(batch)
        return self.model.forward(batch)

    def collect(self, batch: Sequence[PreparedPair], handle: Any) -> list[PairScore]:
        r"""Wait for a :meth:`launch`\ ed micro-batch and postprocess its logits."""
        logits = self.model.collect(handle) if self.model.overlaps_batches else handle
        return self._scores(batch, logits)

    def run_batch(self, batch: Sequence[PreparedPair]) -> list[PairScore]:
        """One forward pass over one micro-batch."""
        return self.collect(batch, self.launch(batch))

    @overload
    def run_batches(self, batches: Iterable[Sequence[PreparedPair]],
                    *, isolate_errors: Literal[False] = False) -> Iterator[list[PairScore]]: ...

    @overload
    def run_batches(self, batches: Iterable[Sequence[PreparedPair]], *,
                    isolate_errors: Literal[True]) -> Iterator[list[PairScore] | Exception]: ...

    def run_batches(self, batches: Iterable[Sequence[PreparedPair]], *,
                    isolate_errors: bool = False) -> Iterator[list[PairScore] | Exception]:
        """Scores of each micro-batch, in order, as they complete.

        With a model that ``overlaps_batches`` (jina-m0), micro-batch *n + 1* is collated and
        queued on the device before *n*'s result is awaited, so the device does not idle while
        the host prepares tensors; otherwise each batch's scores are yielded as soon as it ran.
        ``batches`` is consumed lazily: a batch is built only when the previous one has been
        launched, so a caller can drop work at micro-batch boundaries.

        With ``isolate_errors`` a failing micro-batch yields its exception in its place and the
        others still run (the server fails only the requests in that batch); otherwise the
        first failure raises.
        """
        pending: tuple[Sequence[PreparedPair], Any] | None = None
        for batch in batches:
            try:
                handle = self.launch(batch)
            except Exception as exc:
                if not isolate_errors:
                    raise
                if pending is not None:
                    yield self._collect(*pending, isolate_errors)
                    pending = None
                yield exc
                continue
            if not self.model.overlaps_batches:
                yield self._collect(batch, handle, isolate_errors)
                continue
            if pending is not None:
                yield self._collect(*pending, isolate_errors)
            pending = (batch, handle)
        if pending is not None:
            yield self._collect(*pending, isolate_errors)

    def _collect(self, batch: Sequence[PreparedPair], handle: Any,
                 isolate_errors: bool) -> list[PairScore] | Exception:
        try:
            return self.collect(batch, handle)
        except Exception as exc:
            if not isolate_errors:
                raise
            return exc

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


class _LazyPool:
    """One thread pool, started on first use and shared by engines made ``with_config``."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def get(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="m0rank-prepare")
            return self._pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None


def _results_in_order(futures: Sequence[Future[PreparedPair]]) -> list[PreparedPair]:
    """Every future's result in order; on the first failure in input order, cancel the rest
    and raise it."""
    try:
        return [future.result() for future in futures]
    except BaseException:
        for future in futures:
            future.cancel()
        raise
