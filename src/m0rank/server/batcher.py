"""Async cross-request batching over the synchronous :class:`~m0rank.engine.Engine`.

How a request's pairs travel (docs/architecture.md has the picture):

1. :meth:`Batcher.score` admits the request (bounded queue, else 429 with a ``Retry-After``
   estimated from the measured throughput) and queues every pair's CPU preparation on the
   engine's one preprocessing pool (:meth:`Engine.submit_prepare`).
2. Each prepared pair joins its request's ready queue as soon as it is done; a request is
   scheduled once fully prepared or with a micro-batch's worth ready, so the device starts on
   a large request before all of it is prepared.
3. One worker task takes a window of up to ``window_batches`` micro-batches, round-robin over
   the requests that have ready pairs, so a small request never waits behind a large one
   (fair at micro-batch granularity). It waits at most ``max_wait_ms`` after the oldest
   request arrived so that concurrent requests share forward passes.
4. The window runs on the batcher's single device thread through
   :meth:`Engine.run_batches` (launch/collect overlap included) with errors isolated per
   micro-batch: a failing forward pass fails only the requests in it.
5. Results go back to per-request futures; a request returns as soon as its last pair is
   scored (after infinity's ``BatchHandler``).

With replicas (``m0rank serve --replicas N`` / ``--devices``), step 4 differs: each window's
micro-batches go to a :class:`WindowRunner` (``m0rank.server.replicas.ReplicaPool``), which
runs them in another process on the least-loaded replica; the worker waits for a replica with
room before it takes the next window, and windows run on several replicas at once.

Cancellation: a request whose caller went away (client disconnect, deadline) is dropped at the
next micro-batch boundary: its queued preparations are cancelled, its ready pairs skipped and
its pairs in a window not yet launched are left out. :meth:`Batcher.stop` refuses new work
with :class:`ServiceUnavailableError` and lets in-flight requests finish first.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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

__all__ = ["Batcher", "BatcherConfig", "BatchObserver", "WindowRunner"]

logger = logging.getLogger(__name__)

# Throughput is measured over the last few seconds of forward passes to estimate Retry-After.
_RATE_WINDOW_S = 30.0
_MAX_RETRY_AFTER_S = 300.0


class BatchObserver(Protocol):
    """Receives one call per forward pass (the server's metrics implement it)."""

    def observe_batch(self, pairs: int, requests: int, tokens: int) -> None: ...


class WindowRunner(Protocol):
    """Runs windows away from the batcher's device thread (the replica pool)."""

    async def attach(self) -> None: ...

    async def wait_for_capacity(self) -> None: ...

    def run_window(self, batches: Sequence[Sequence[PreparedPair]],
                   on_batch: Callable[[int, list[PairScore] | Exception], None]
                   ) -> Awaitable[None]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class BatcherConfig:
    """Queueing policy.

    Args:
        max_queue_pairs: Most pairs waiting for the model; more get 429.
        max_wait_ms: How long the oldest waiting request may wait for company.
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
    """One request: its pairs' preparation futures, ready pairs and the future it awaits."""

    future: asyncio.Future[list[PairScore]]
    enqueued: float
    preparing: list[Future[PreparedPair]] = field(default_factory=list)
    prepared: list[PreparedPair | None] = field(default_factory=list)
    results: list[PairScore | None] = field(default_factory=list)
    ready: deque[int] = field(default_factory=deque)
    errors: dict[int, BaseException] = field(default_factory=dict)
    remaining: int = 0  # pairs not scored yet
    waiting: int = 0  # pairs not taken into a window yet (being prepared or ready)
    unprepared: int = 0  # preparations not finished yet

    @property
    def alive(self) -> bool:
        """Still wanted: not answered, failed or cancelled."""
        return not self.future.done()

    def deliver(self, index: int, score: PairScore) -> None:
        self.results[index] = score
        self.remaining -= 1
        if self.remaining == 0 and self.alive:
            self.future.set_result([r for r in self.results if r is not None])

    def fail(self, exc: BaseException) -> None:
        if self.alive:
            self.future.set_exception(exc)

    def first_error(self) -> BaseException | None:
        """The failure of the lowest-index pair, once every pair before it is prepared (so the
        caller hears about the same pair whatever the threads' timing)."""
        if not self.errors:
            return None
        first = min(self.errors)
        if all(self.preparing[i].done() for i in range(first)):
            return self.errors[first]
        return None


@dataclass(frozen=True)
class _Slot:
    job: _Job
    index: int

    @property
    def pair(self) -> PreparedPair:
        pair = self.job.prepared[self.index]
        assert pair is not None  # only prepared pairs are queued
        return pair


class Batcher:
    """Pools the pairs of concurrent requests into shared micro-batches.

    Args:
        engine: The engine whose preprocessing pool and ``run_batches`` do the work and whose
            config holds the micro-batch budget.
        config: Queueing policy.
        observer: Told about every forward pass (metrics).
        runner: Where windows run instead of this process's device thread (replicas).
    """

    def __init__(self, engine: Engine, config: BatcherConfig | None = None,
                 observer: BatchObserver | None = None,
                 runner: WindowRunner | None = None) -> None:
        self.engine = engine
        self.runner = runner
        self._remote: set[asyncio.Task[None]] = set()  # windows running on replicas
        self.config = config or BatcherConfig()
        self._observer = observer
        self._jobs: dict[_Job, None] = {}  # admitted and not yet answered, in arrival order
        self._queued = 0  # pairs admitted and not yet taken into a window (nor dropped)
        self._arrived = asyncio.Event()
        self._closing = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._device = ThreadPoolExecutor(1, thread_name_prefix="m0rank-device")
        self._scored: deque[tuple[float, int]] = deque()  # (time, pairs) of recent batches

    @property
    def queue_depth(self) -> int:
        """Pairs admitted and waiting for a forward pass (being prepared or queued)."""
        return self._queued

    @property
    def prepared_pairs(self) -> int:
        """Pairs prepared and queued for the next window."""
        return sum(len(job.ready) for job in self._jobs if job.alive)

    async def start(self) -> None:
        """Start the worker task (on the running loop)."""
        if self._worker is None:
            if self.runner is not None:
                await self.runner.attach()
            self._worker = asyncio.get_running_loop().create_task(self._work(),
                                                                  name="m0rank-batcher")

    async def call_in_device_thread(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` where forward passes run (e.g. the model's warm-up)."""
        return await asyncio.get_running_loop().run_in_executor(self._device, fn)

    def estimated_wait(self) -> float:
        """Seconds until the current queue is scored at the recently measured throughput (1 s
        when nothing was measured yet); the ``Retry-After`` of a refused request."""
        now = time.monotonic()
        while self._scored and now - self._scored[0][0] > _RATE_WINDOW_S:
            self._scored.popleft()
        if len(self._scored) < 2:
            return 1.0
        span = max(now - self._scored[0][0], 1e-3)
        rate = sum(pairs for _, pairs in self._scored) / span
        return min(max(1.0, math.ceil(self._queued / rate)), _MAX_RETRY_AFTER_S)

    async def score(self, pairs: Sequence[tuple[Document, Document]], options: ScoreOptions,
                    fields: Sequence[str]) -> list[PairScore]:
        """Score ``pairs`` (images already resolved) together with other requests' pairs.

        Cancelling the caller (client gone, deadline) drops the request's unscored pairs at
        the next micro-batch boundary, preparation included.

        Raises:
            ServiceUnavailableError: The batcher is stopping.
            OverloadedError: The queue is full.
        """
        self._admit(len(pairs))
        if not pairs:
            return []
        loop = asyncio.get_running_loop()
        job = _Job(future=loop.create_future(), enqueued=time.monotonic(),
                   prepared=[None] * len(pairs), results=[None] * len(pairs),
                   remaining=len(pairs), waiting=len(pairs), unprepared=len(pairs))
        self._queued += len(pairs)
        self._jobs[job] = None
        self._idle.clear()
        try:
            job.preparing = self.engine.submit_prepare(pairs, options, fields)
            for index, future in enumerate(job.preparing):
                future.add_done_callback(self._prepared_callback(loop, job, index))
            return await job.future
        finally:
            self._drop(job)

    async def stop(self, drain_timeout: float) -> None:
        """Refuse new requests, let in-flight ones finish (up to ``drain_timeout`` s), stop."""
        self._closing = True
        try:
            await asyncio.wait_for(self._idle.wait(), drain_timeout)
        except asyncio.TimeoutError:
            logger.warning("%d request(s) still running after %.1f s; cancelling them",
                           len(self._jobs), drain_timeout)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        for task in list(self._remote):
            task.cancel()
        await asyncio.gather(*self._remote, return_exceptions=True)
        for job in list(self._jobs):
            job.fail(ServiceUnavailableError("the server shut down before this request was "
                                             "scored"))
        self._device.shutdown(wait=False, cancel_futures=True)
        self.engine.close()
        if self.runner is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.runner.close)

    def abort_in_flight(self) -> None:
        """Answer every admitted request now with a 503 (the drain deadline passed)."""
        for job in list(self._jobs):
            job.fail(ServiceUnavailableError(
                "the server is shutting down and could not finish this request; retry"))

    def _admit(self, count: int) -> None:
        if self._closing:
            raise ServiceUnavailableError("the server is shutting down and takes no new requests")
        queued = self._queued
        if queued and queued + count > self.config.max_queue_pairs:
            raise OverloadedError(
                f"the server is overloaded ({queued} pairs queued, limit "
                f"{self.config.max_queue_pairs}); retry later", retry_after=self.estimated_wait())

    def _drop(self, job: _Job) -> None:
        """Forget a finished or abandoned request: cancel its queued preparations and release
        its waiting pairs from the queue bound."""
        for future in job.preparing:
            future.cancel()
        if job in self._jobs:
            del self._jobs[job]
            self._queued -= job.waiting
        job.ready.clear()
        if not job.future.done():
            job.future.cancel()
        if not self._jobs:
            self._idle.set()

    def _prepared_callback(self, loop: asyncio.AbstractEventLoop, job: _Job,
                           index: int) -> Callable[[Future[PreparedPair]], None]:
        """Hands a pool thread's finished preparation back to the event loop."""
        def done(future: Future[PreparedPair]) -> None:
            if not future.cancelled() and not loop.is_closed():
                loop.call_soon_threadsafe(self._on_prepared, job, index, future)
        return done

    def _on_prepared(self, job: _Job, index: int, future: Future[PreparedPair]) -> None:
        if not job.alive:
            return
        job.unprepared -= 1
        error = future.exception()
        if error is None:
            job.prepared[index] = future.result()
            job.ready.append(index)
            self._arrived.set()
        else:
            job.errors[index] = error
        if job.unprepared == 0:
            self._arrived.set()
        first = job.first_error()
        if first is not None:
            job.fail(first)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wait_for_pairs()
            if self.runner is not None:
                await self.runner.wait_for_capacity()
            window = self._take_window()
            if not window:
                continue
            if self.runner is not None:
                self._dispatch(window)
                continue
            try:
                await loop.run_in_executor(self._device, self._run_window, window, loop)
            except Exception as exc:  # the worker must survive anything a window throws
                logger.exception("batch window failed")
                self._fail(window, exc)

    def _schedulable(self, job: _Job) -> bool:
        """A request is worth a window once fully prepared or with a micro-batch ready, so
        small requests go in one piece and large ones start before all is prepared."""
        return job.alive and bool(job.ready) and (
            job.unprepared == 0 or len(job.ready) >= self.engine.config.max_batch_size)

    async def _wait_for_pairs(self) -> None:
        while not any(self._schedulable(job) for job in self._jobs):
            self._arrived.clear()
            await self._arrived.wait()
        oldest = min(job.enqueued for job in self._jobs if self._schedulable(job))
        delay = oldest + self.config.max_wait_ms / 1000 - time.monotonic()
        if self.prepared_pairs < self._window_pairs and delay > 0:
            await asyncio.sleep(delay)

    @property
    def _window_pairs(self) -> int:
        """Most pairs one window takes; a window this full does not wait for more."""
        return self.engine.config.max_batch_size * self.config.window_batches

    def _take_window(self) -> list[_Slot]:
        """Up to a window of ready pairs, one pair per request in turn (round-robin)."""
        window: list[_Slot] = []
        jobs = [job for job in self._jobs if job.alive and job.ready]
        while jobs and len(window) < self._window_pairs:
            for job in list(jobs):
                window.append(_Slot(job, job.ready.popleft()))
                job.waiting -= 1
                self._queued -= 1
                if not job.ready:
                    jobs.remove(job)
                if len(window) == self._window_pairs:
                    break
        return window

    def _run_window(self, window: list[_Slot], loop: asyncio.AbstractEventLoop) -> None:
        """Device thread: plan the window and run it; results go back to the loop."""
        plan = self.engine.plan([slot.pair.num_tokens for slot in window])
        launched: deque[list[_Slot]] = deque()

        def live_batches() -> Iterator[list[PreparedPair]]:
            for batch in plan:  # checked at each micro-batch boundary
                slots = [window[i] for i in batch if window[i].job.alive]
                if slots:
                    launched.append(slots)
                    yield [slot.pair for slot in slots]

        for outcome in self.engine.run_batches(live_batches(), isolate_errors=True):
            slots = launched.popleft()
            if isinstance(outcome, Exception):
                logger.error("forward pass over %d pairs failed: %r", len(slots), outcome)
                loop.call_soon_threadsafe(self._fail, slots, outcome)
            else:
                loop.call_soon_threadsafe(self._deliver, slots, outcome)

    def _dispatch(self, window: list[_Slot]) -> None:
        """Plan the window's micro-batches here and send them to the runner (a replica)."""
        plan = self.engine.plan([slot.pair.num_tokens for slot in window])
        batches = [[window[i] for i in batch if window[i].job.alive] for batch in plan]
        batches = [slots for slots in batches if slots]
        if not batches:
            return

        def on_batch(index: int, outcome: list[PairScore] | Exception) -> None:
            if isinstance(outcome, Exception):
                logger.error("forward pass over %d pairs failed: %r", len(batches[index]),
                             outcome)
                self._fail(batches[index], outcome)
            else:
                self._deliver(batches[index], outcome)

        assert self.runner is not None
        sent = self.runner.run_window([[slot.pair for slot in slots] for slots in batches],
                                      on_batch)
        task = asyncio.ensure_future(self._await_remote(sent, batches))
        self._remote.add(task)
        task.add_done_callback(self._remote.discard)

    async def _await_remote(self, sent: Awaitable[None], batches: list[list[_Slot]]) -> None:
        try:
            await sent
        except Exception as exc:  # answer every request of the window, whatever happened
            logger.exception("replica window failed")
            for slots in batches:
                self._fail(slots, exc)

    def _deliver(self, slots: list[_Slot], scores: list[PairScore]) -> None:
        self._observe(slots, scores)
        self._scored.append((time.monotonic(), len(slots)))
        for slot, score in zip(slots, scores, strict=True):
            if slot.job.alive:
                slot.job.deliver(slot.index, score)

    def _fail(self, slots: list[_Slot], exc: BaseException) -> None:
        for slot in slots:
            slot.job.fail(exc)

    def _observe(self, slots: list[_Slot], scores: list[PairScore]) -> None:
        if self._observer is not None:
            requests = len({id(slot.job) for slot in slots})
            self._observer.observe_batch(len(slots), requests, sum(s.num_tokens for s in scores))
