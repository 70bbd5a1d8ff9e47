"""Several engines behind one ``m0rank serve``: one child process per device ("replicas").

``m0rank serve --devices cuda:0,cuda:1`` (or ``--replicas 2`` on one device) keeps the HTTP
front, its request validation, image fetching, CPU preparation and cross-request batching in
the server process, and runs the forward passes in one child process per device, each with
its own :class:`~m0rank.api.Reranker` (after infinity's ``--device-id`` and vLLM's
data-parallel engines). The batcher hands every window of micro-batches to
:meth:`ReplicaPool.run_window`:

- **Spreading**: the window goes to the running replica with the fewest pairs in flight (its
  queue depth; ties rotate). A replica holds at most two windows (one running, one waiting in
  its pipe, so the device never waits for the next one); the batcher waits for room
  (:meth:`ReplicaPool.wait_for_capacity`) before it takes the next window, so pairs keep
  waiting in the front's fair, bounded queue rather than in a replica.
- **Death and restart**: each replica has a supervisor thread that starts the child (spawn
  context), waits until it has loaded and warmed its model, reads its results, and notices
  when it exits (a crash, the OOM killer, ``kill``). It then starts a new child on the same
  device; a child that fails to start three times in a row stays down.
- **Retry**: the micro-batches that the dead replica had not answered are sent once to another
  running replica (the least loaded); if that fails too, or none comes up within
  ``_RETRY_WAIT_S``, their requests get :class:`ServiceUnavailableError` (503) saying so.
  No request is dropped without an answer.

Prepared pairs and scores cross the pipe pickled (``pickle``, copies: no shared memory to
leak). Requests abandoned by their client are dropped before their window is sent, not inside a
window already on a replica (a window is at most ``window_batches`` micro-batches).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from m0rank.errors import InvalidInputError, ModelLoadError, ServiceUnavailableError
from m0rank.model.base import PreparedPair
from m0rank.server.replica_process import (
    Outcome,
    Replica,
    ReplicaLost,
    ReplicaSpec,
    ReplicaStats,
    State,
    Window,
)

if TYPE_CHECKING:
    from m0rank.server.settings import ServerSettings

__all__ = ["ReplicaPool", "ReplicaSpec", "ReplicaStats", "PoolStats", "check_devices",
           "replica_specs"]

logger = logging.getLogger(__name__)

BatchCallback = Callable[[int, Outcome], None]
_Sent = tuple["asyncio.Future[None]", set[int]]  # a window's completion, batches answered

_MAX_WINDOWS = 2  # windows in flight per replica
_RETRY_WAIT_S = 30.0  # how long a retry waits for a running replica


@dataclass(frozen=True, kw_only=True)
class PoolStats:
    """Every replica's counters and the pool's retries."""

    replicas: list[ReplicaStats]
    retried_batches: int  # micro-batches sent again after their replica died
    failed_batches: int  # micro-batches answered 503 (their retry failed too)


def check_devices(devices: Sequence[str]) -> None:
    """Fail early, with the device named, when a replica's CUDA device cannot exist here
    (``ServerSettings`` already checked the spelling).

    Raises:
        InvalidInputError: A CUDA device without CUDA, or beyond the devices this machine has.
    """
    wanted = [d for d in devices if d.startswith("cuda")]
    if not wanted:
        return
    import torch

    if not torch.cuda.is_available():
        raise InvalidInputError(
            f"devices: {','.join(devices)} needs CUDA, which is not available on this machine "
            f"(torch.cuda.is_available() is False); use --replicas N for CPU replicas")
    count = torch.cuda.device_count()
    for device in wanted:
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            raise InvalidInputError(
                f"devices: {device!r} does not exist; this machine has {count} CUDA device(s)")


def replica_specs(settings: ServerSettings) -> list[ReplicaSpec]:
    """One spec per replica: ``settings.devices``, else ``replicas`` copies of ``device``
    (CPU when none is set); CPU threads are split evenly between replicas."""
    devices = [device or _default_device() for device in settings.replica_devices()]
    threads = max(1, (os.cpu_count() or 1) // len(devices))
    kwargs = {**settings.load_kwargs(), "vision_cache_bytes": settings.vision_cache_bytes}
    del kwargs["device"]
    return [ReplicaSpec(model=settings.model, device=device, load_kwargs=kwargs,
                        threads=threads) for device in devices]


def _default_device() -> str:
    """CUDA when available, as ``Reranker.from_pretrained`` picks when no device is given."""
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


class ReplicaPool:
    """The replicas of one server and the choice of where each window runs.

    Args:
        specs: One per replica (see :func:`replica_specs`).
    """

    def __init__(self, specs: Sequence[ReplicaSpec]) -> None:
        if not specs:
            raise InvalidInputError("a replica pool needs at least one replica")
        self._replicas = [Replica(i, spec, self._notify) for i, spec in enumerate(specs)]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._turn = 0
        self._started = False
        self.retried_batches = 0
        self.failed_batches = 0

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> ReplicaPool:
        """One replica per device of ``settings`` (see :func:`replica_specs`)."""
        return cls(replica_specs(settings))

    def __len__(self) -> int:
        return len(self._replicas)

    def start(self) -> None:
        """Start every replica and block until each has loaded its model (idempotent).

        Raises:
            ModelLoadError: A replica could not load its model; the others are stopped.
        """
        if self._started:
            return
        self._started = True
        for replica in self._replicas:
            replica.start()
        try:
            for replica in self._replicas:
                replica.wait_started()
        except ModelLoadError:
            self.close()
            raise

    async def attach(self) -> None:
        """Bind to the running event loop (where results are delivered); starts the replicas
        first if :meth:`start` was not called yet."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.start)
        self._loop, self._changed = loop, asyncio.Event()

    def close(self) -> None:
        """Stop every replica (blocking, a few seconds at most per replica)."""
        for replica in self._replicas:
            replica.stop()

    def stats(self) -> PoolStats:
        """Counters of every replica and of the retries."""
        return PoolStats(replicas=[replica.stats() for replica in self._replicas],
                         retried_batches=self.retried_batches,
                         failed_batches=self.failed_batches)

    async def wait_for_capacity(self) -> None:
        """Return once a running replica has room for a window, or none can ever run."""
        while True:
            changed = self._event()
            changed.clear()
            if self._pick(full_ok=False) is not None or self._all_failed():
                return
            await changed.wait()

    def run_window(self, batches: Sequence[Sequence[PreparedPair]],
                   on_batch: BatchCallback) -> asyncio.Task[None]:
        """Send ``batches`` now to the least loaded running replica; the task ends once each
        has had ``on_batch(i, outcome)`` called on this loop.

        Every batch gets exactly one outcome: scores, its forward pass's exception, or
        :class:`ServiceUnavailableError` when its replica died and the retry failed too.
        Sending happens before this returns, so the replica's load counts at once.
        """
        replica = self._pick(full_ok=True)
        sent = self._send(replica, batches, on_batch) if replica is not None else None
        return asyncio.get_running_loop().create_task(self._complete(batches, on_batch, sent))

    async def _complete(self, batches: Sequence[Sequence[PreparedPair]],
                        on_batch: BatchCallback, sent: _Sent | None) -> None:
        """Wait for a sent window; on its replica's death, send what is unanswered once more."""
        todo = list(range(len(batches)))
        tried: list[ReplicaLost] = []
        for attempt in range(2):
            if sent is None:
                replica = await self._choose(exclude={lost.replica for lost in tried})
                if replica is None:
                    break
                sent = self._send(replica, [batches[i] for i in todo],
                                  _renumbered(on_batch, todo))
            done, answered = sent
            try:
                await done
                return
            except ReplicaLost as lost:
                tried.append(lost)
                todo = [index for j, index in enumerate(todo) if j not in answered]
                sent = None
                if attempt == 0:
                    self.retried_batches += len(todo)
                    logger.warning("retrying %d micro-batch(es) of replica %d elsewhere",
                                   len(todo), lost.replica)
        self.failed_batches += len(todo)
        error = ServiceUnavailableError(_lost_message(tried))
        for index in todo:
            on_batch(index, error)

    def _send(self, replica: Replica, batches: Sequence[Sequence[PreparedPair]],
              on_batch: BatchCallback) -> _Sent:
        """Submit a window; a future that fails with :class:`ReplicaLost` if the replica
        dies first, and the indices answered so far."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        answered: set[int] = set()

        def deliver(index: int, outcome: Outcome) -> None:
            answered.add(index)
            on_batch(index, outcome)

        def finish(exc: BaseException | None) -> None:
            if done.done():
                return
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)

        window = Window(batches=batches, on_batch=_threadsafe(loop, deliver),
                         finish=_threadsafe(loop, finish))
        if not replica.submit(window):
            done.set_exception(ReplicaLost(replica.index, None))
        return done, answered

    async def _choose(self, exclude: set[int]) -> Replica | None:
        """The least loaded running replica, preferring those not in ``exclude`` (the batcher
        already waited for room); waits up to ``_RETRY_WAIT_S`` for one to be running."""
        deadline = time.monotonic() + _RETRY_WAIT_S
        while True:
            changed = self._event()
            changed.clear()
            replica = self._pick(True, exclude) or self._pick(True)
            if replica is not None or self._all_failed():
                return replica
            try:
                await asyncio.wait_for(changed.wait(), deadline - time.monotonic())
            except (asyncio.TimeoutError, ValueError):
                return None

    def _pick(self, full_ok: bool, exclude: set[int] | None = None) -> Replica | None:
        candidates = [r for r in self._replicas if r.state == State.UP
                      and (full_ok or r.windows < _MAX_WINDOWS)
                      and r.index not in (exclude or set())]
        if not candidates:
            return None
        count = len(self._replicas)
        best = min(candidates, key=lambda r: (r.depth, r.windows,
                                              (r.index - self._turn) % count))
        self._turn = (best.index + 1) % count
        return best

    def unavailable(self) -> str | None:
        """Why no window can run (every replica failed for good or stopped), else ``None``;
        the server's ``/ready`` reports it."""
        if self._started and self._all_failed():
            return f"all {len(self._replicas)} model replicas are down; see the server log"
        return None

    def _all_failed(self) -> bool:
        return all(r.state in (State.FAILED, State.STOPPED) for r in self._replicas)

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._loop, self._changed = asyncio.get_running_loop(), asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        """From any thread: a replica's state or load changed."""
        loop, changed = self._loop, self._changed
        if loop is not None and changed is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(changed.set)
            except RuntimeError:  # the loop closed meanwhile
                pass


def _threadsafe(loop: asyncio.AbstractEventLoop,
                fn: Callable[..., None]) -> Callable[..., None]:
    """``fn`` called on ``loop`` from whatever thread calls the result."""
    def call(*args: Any) -> None:
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed: nobody waits for this any more
            pass
    return call


def _renumbered(on_batch: BatchCallback, indices: list[int]) -> BatchCallback:
    """``on_batch`` for a sub-window: its batch ``j`` is the window's ``indices[j]``."""
    def call(j: int, outcome: Outcome) -> None:
        on_batch(indices[j], outcome)
    return call


def _lost_message(tried: Sequence[ReplicaLost]) -> str:
    if not tried:
        return "no model replica is running (see the server log); retry later"
    which = " and then ".join(f"replica {lost.replica} (exit code {lost.exitcode})"
                              for lost in tried)
    retry = "" if len(tried) > 1 else "; no other replica could take it over"
    return (f"the model process scoring this request stopped: {which}{retry}. The replica is "
            f"being restarted; retry the request")


