"""Async cross-request batching over the synchronous :class:`~m0rank.engine.Engine`.

Each request's pairs are prepared (tokenised, image patches) in a preparation thread, then
queued pair by pair. One worker task takes pairs from the queue in arrival order, a window of
up to ``window_batches`` micro-batches at a time, waiting at most ``max_wait_ms`` after the
oldest pair arrived so that concurrent requests share forward passes. The window is planned
with ``Engine.plan`` under the engine's token budget (padded, or packed for models that pack
pairs without padding) and each micro-batch runs in a device thread. Results go back to
per-request futures; a request returns as soon as its last pair is scored (after infinity's
``BatchHandler``).

Back-pressure: at most ``max_queue_pairs`` pairs wait (being prepared or queued); a request
that does not fit gets :class:`OverloadedError` (HTTP 429 with ``Retry-After``) instead of
growing the queue. A caller that gives up (its timeout cancels it) leaves its unscored pairs
behind, and the worker skips them. :meth:`Batcher.stop` refuses new work with
:class:`ServiceUnavailableError` and lets in-flight requests finish first.

Two requests are prepared at a time (``Engine.prepare`` already spreads one request's pairs
over threads), so a large image request does not hold up a small one behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from m0rank.config import ScoreOptions
from m0rank.engine import Engine
from m0rank.errors import (
    InvalidInputError,
    OverloadedError,
    ServiceUnavailableError,
)
from m0rank.model.base import PreparedPair
from m0rank.types import Document, PairScore

__all__ = ["Batcher", "BatcherConfig", "BatchObserver"]

logger = logging.getLogger(__name__)


class BatchObserver(Protocol):
    """Receives one call per forward pass (the server's metrics implement it)."""

    def observe_batch(self, pairs: int, requests: int, tokens: int) -> None: ...


@dataclass(frozen=True, kw_only=True)
class BatcherConfig:
    """Queueing policy.

    Args:
        max_queue_pairs: Most pairs waiting for the model; more get 429.
        max_wait_ms: How long the oldest waiting pair may wait for company.
        window_batches: Micro-batches planned together (pairs are sorted by length inside a
            window, so a larger window pads less but makes late pairs wait longer).
    """

    max_queue_pairs: int = 4096
    max_wait_ms: float = 5.0
    window_batches: int = 4

    def __post_init__(self) -> None:
        if self.max_queue_pairs < 1 or self.window_batches < 1 or self.max_wait_ms < 0:
            raise InvalidInputError(f"invalid BatcherConfig: {self!r}")


@dataclass(eq=False)
class _Job:
    """One request's prepared pairs and the future its handler awaits."""

    prepared: list[PreparedPair]
    future: asyncio.Future[list[PairScore]]
    enqueued: float
    results: list[PairScore | None] = field(default_factory=list)
    remaining: int = 0

    def deliver(self, index: int, score: PairScore) -> None:
        self.results[index] = score
        self.remaining -= 1
        if self.remaining == 0 and not self.future.done():
            self.future.set_result([r for r in self.results if r is not None])

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


@dataclass(frozen=True)
class _Slot:
    job: _Job
    index: int

    @property
    def pair(self) -> PreparedPair:
        return self.job.prepared[self.index]


class Batcher:
    """Pools the pairs of concurrent requests into shared micro-batches.

    Args:
        engine: The engine whose ``prepare`` / ``run_batch`` do the work and whose config
            holds the micro-batch budget.
        config: Queueing policy.
        observer: Told about every forward pass (metrics).
    """

    def __init__(self, engine: Engine, config: BatcherConfig | None = None,
                 observer: BatchObserver | None = None) -> None:
        self.engine = engine
        self.config = config or BatcherConfig()
        self._observer = observer
        self._pending: deque[_Slot] = deque()
        self._preparing = 0  # pairs admitted and being prepared (counted against the bound)
        self._jobs: set[_Job] = set()  # enqueued and not yet answered
        self._arrived = asyncio.Event()
        self._closing = False
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._prepare_pool = ThreadPoolExecutor(2, thread_name_prefix="m0rank-prepare")
        self._device_pool = ThreadPoolExecutor(1, thread_name_prefix="m0rank-device")

    @property
    def queue_depth(self) -> int:
        """Pairs admitted and waiting for a forward pass (being prepared or queued)."""
        return self._preparing + len(self._pending)

    @property
    def prepared_pairs(self) -> int:
        """Pairs prepared and queued for the next window."""
        return len(self._pending)

    async def start(self) -> None:
        """Start the worker task (on the running loop)."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._work(),
                                                                  name="m0rank-batcher")

    async def call_in_prepare_thread(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` where preprocessing runs (e.g. the model's warm-up, which tokenises)."""
        return await asyncio.get_running_loop().run_in_executor(self._prepare_pool, fn)

    async def score(self, pairs: Sequence[tuple[Document, Document]], options: ScoreOptions,
                    fields: Sequence[str]) -> list[PairScore]:
        """Score ``pairs`` (images already resolved) together with other requests' pairs.

        Cancelling the caller (e.g. its timeout) drops the request's unscored pairs.

        Raises:
            ServiceUnavailableError: The batcher is stopping.
            OverloadedError: The queue is full.
        """
        self._admit(len(pairs))
        self._active += 1
        self._idle.clear()
        try:
            return await self._score(pairs, options, fields)
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def stop(self, drain_timeout: float) -> None:
        """Refuse new requests, let in-flight ones finish (up to ``drain_timeout`` s), stop."""
        self._closing = True
        try:
            await asyncio.wait_for(self._idle.wait(), drain_timeout)
        except asyncio.TimeoutError:
            logger.warning("%d request(s) still running after %.1f s; cancelling them",
                           self._active, drain_timeout)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        for job in self._jobs:
            job.fail(ServiceUnavailableError("the server shut down before this request was "
                                             "scored"))
        self._jobs.clear()
        self._pending.clear()
        self._prepare_pool.shutdown(wait=False, cancel_futures=True)
        self._device_pool.shutdown(wait=False, cancel_futures=True)

    async def _score(self, pairs: Sequence[tuple[Document, Document]], options: ScoreOptions,
                     fields: Sequence[str]) -> list[PairScore]:
        if not pairs:
            return []
        loop = asyncio.get_running_loop()
        self._preparing += len(pairs)  # reserved by _admit: enqueuing below needs no new check
        try:
            prepared = await loop.run_in_executor(self._prepare_pool, self.engine.prepare,
                                                  pairs, options, fields)
        finally:
            self._preparing -= len(pairs)
        job = _Job(prepared=prepared, future=loop.create_future(), enqueued=time.monotonic(),
                   results=[None] * len(prepared), remaining=len(prepared))
        self._pending.extend(_Slot(job, i) for i in range(len(prepared)))
        self._jobs.add(job)
        self._arrived.set()
        try:
            return await job.future
        finally:
            self._jobs.discard(job)

    def _admit(self, count: int) -> None:
        if self._closing:
            raise ServiceUnavailableError("the server is shutting down and takes no new requests")
        queued = self.queue_depth
        if queued and queued + count > self.config.max_queue_pairs:
            raise OverloadedError(
                f"the server is overloaded ({queued} pairs queued, limit "
                f"{self.config.max_queue_pairs}); retry later", retry_after=1.0)

    async def _work(self) -> None:
        while True:
            await self._wait_for_pairs()
            window = self._take_window()
            try:
                await self._run_window(window)
            except Exception:  # the worker must survive anything a batch throws
                logger.exception("batch window failed")
                for slot in window:
                    slot.job.fail(RuntimeError("batch failed"))

    async def _wait_for_pairs(self) -> None:
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        delay = self._pending[0].job.enqueued + self.config.max_wait_ms / 1000 - time.monotonic()
        if len(self._pending) < self._window_pairs and delay > 0:
            await asyncio.sleep(delay)

    @property
    def _window_pairs(self) -> int:
        """Most pairs one window takes; a window this full does not wait for more."""
        return self.engine.config.max_batch_size * self.config.window_batches

    def _take_window(self) -> list[_Slot]:
        window: list[_Slot] = []
        while self._pending and len(window) < self._window_pairs:
            slot = self._pending.popleft()
            if not slot.job.future.done():  # skip pairs of timed-out or failed requests
                window.append(slot)
        return window

    async def _run_window(self, window: list[_Slot]) -> None:
        loop = asyncio.get_running_loop()
        for batch in self.engine.plan([slot.pair.num_tokens for slot in window]):
            slots = [window[i] for i in batch if not window[i].job.future.done()]
            if not slots:
                continue
            try:
                scores = await loop.run_in_executor(self._device_pool, self.engine.run_batch,
                                                    [slot.pair for slot in slots])
            except Exception as exc:
                logger.exception("forward pass over %d pairs failed", len(slots))
                for slot in slots:
                    slot.job.fail(exc)
                continue
            self._observe(slots, scores)
            for slot, score in zip(slots, scores, strict=True):
                slot.job.deliver(slot.index, score)

    def _observe(self, slots: list[_Slot], scores: list[PairScore]) -> None:
        if self._observer is not None:
            requests = len({id(slot.job) for slot in slots})
            self._observer.observe_batch(len(slots), requests, sum(s.num_tokens for s in scores))
