"""One model replica: the child process that runs forward passes, and the supervisor thread
in the server that starts it, feeds it windows, reads its results and restarts it when it dies.

:class:`~m0rank.server.replicas.ReplicaPool` decides where windows go; this module only keeps
one replica running. The child is started with the ``spawn`` method (a fresh interpreter: no
inherited threads, locks or CUDA state) and speaks over a pipe with pickled tuples:

- child -> server: ``("ready", pid)`` once its model is loaded and warm, or
  ``("failed", reason)``; then ``("batch", window, index, scores_or_exception)`` per
  micro-batch, in order;
- server -> child: ``("run", window, micro_batches)`` and ``("stop",)``.

Prepared pairs and scores are copied (plain ``pickle``: no shared memory to leak).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from m0rank.errors import ModelLoadError
from m0rank.model.base import PreparedPair
from m0rank.types import PairScore

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["Replica", "ReplicaLost", "ReplicaSpec", "ReplicaStats", "State", "Window",
           "replica_main"]

logger = logging.getLogger(__name__)

Outcome = list[PairScore] | Exception

_POLL_S = 0.2  # how often a supervisor checks that its child is alive
_MAX_START_FAILURES = 3  # consecutive failed restarts before a replica stays down
_STOP_WAIT_S = 5.0


class State:
    """Where a replica is in its life."""

    STARTING = "starting"
    UP = "up"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True, kw_only=True)
class ReplicaSpec:
    """What one replica loads, and where.

    Attributes:
        model: Checkpoint folder, hub id or built-in name (``None``: the default model).
        device: Torch device of this replica (``"cpu"``, ``"cuda:1"``...).
        load_kwargs: Further ``Reranker.from_pretrained`` arguments (dtype, pixel budget...).
        threads: CPU threads for torch in the child (replicas on one CPU share its cores).
    """

    model: str | None
    device: str
    load_kwargs: dict[str, Any] = field(default_factory=dict)
    threads: int = 1


@dataclass(frozen=True, kw_only=True)
class ReplicaStats:
    """One replica's counters, read by ``/metrics`` at each scrape."""

    replica: int
    device: str
    up: bool
    pid: int
    queue_depth: int  # pairs sent to it and not answered yet
    batches: int
    pairs: int
    restarts: int
    lost_batches: int  # micro-batches it died on (each retried once elsewhere)


class ReplicaLost(Exception):
    """The replica running a window exited before answering all of it."""

    def __init__(self, replica: int, exitcode: int | None) -> None:
        super().__init__(f"replica {replica} exited with code {exitcode}")
        self.replica, self.exitcode = replica, exitcode


@dataclass(eq=False)
class Window:
    """Micro-batches sent to one replica, answered in order."""

    batches: Sequence[Sequence[PreparedPair]]
    on_batch: Callable[[int, Outcome], None]
    finish: Callable[[BaseException | None], None]
    answered: int = 0

    @property
    def pairs_left(self) -> int:
        return sum(len(batch) for batch in self.batches[self.answered:])


class Replica:
    """One child process on one device, with the supervisor thread that keeps it running."""

    def __init__(self, index: int, spec: ReplicaSpec, changed: Callable[[], None]) -> None:
        self.index, self.spec = index, spec
        self.state = State.STARTING
        self.error: str | None = None
        self.batches = self.pairs = self.restarts = self.lost_batches = 0
        self._changed = changed
        self._lock = threading.Lock()
        self._pending: dict[int, Window] = {}  # in the order the child answers them
        self._ids = itertools.count()
        self._conn: Connection | None = None
        self._process: Any = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._sender = ThreadPoolExecutor(1, thread_name_prefix=f"m0rank-replica{index}-send")
        self._supervisor = threading.Thread(target=self._supervise, daemon=True,
                                            name=f"m0rank-replica{index}")

    def start(self) -> None:
        self._supervisor.start()

    def wait_started(self) -> None:
        """Block until the first child is up or has failed (then raise)."""
        self._started.wait()
        if self.state == State.FAILED:
            raise ModelLoadError(f"replica {self.index} ({self.spec.device}) did not start: "
                                 f"{self.error}")

    @property
    def windows(self) -> int:
        return len(self._pending)

    @property
    def depth(self) -> int:
        with self._lock:
            return sum(window.pairs_left for window in self._pending.values())

    def stats(self) -> ReplicaStats:
        process = self._process
        return ReplicaStats(replica=self.index, device=self.spec.device,
                            up=self.state == State.UP,
                            pid=(process.pid or 0) if process is not None else 0,
                            queue_depth=self.depth, batches=self.batches, pairs=self.pairs,
                            restarts=self.restarts, lost_batches=self.lost_batches)

    def submit(self, window: Window) -> bool:
        """Queue ``window`` for the child; False when the replica is not running."""
        with self._lock:
            if self.state != State.UP or self._conn is None:
                return False
            key = next(self._ids)
            self._pending[key] = window
            conn = self._conn
        self._sender.submit(self._send, conn, key, window)
        return True

    def _send(self, conn: Connection, key: int, window: Window) -> None:
        try:
            data = pickle.dumps(("run", key, [list(batch) for batch in window.batches]))
        except Exception as exc:  # a payload that cannot cross a process boundary
            self._answer_all(key, exc)
            return
        try:
            conn.send_bytes(data)
        except (OSError, ValueError):  # the child is gone: the supervisor fails the window
            pass

    def _answer_all(self, key: int, exc: Exception) -> None:
        with self._lock:
            window = self._pending.pop(key, None)
        if window is not None:
            for index in range(window.answered, len(window.batches)):
                window.on_batch(index, exc)
            window.finish(None)
            self._changed()

    def stop(self) -> None:
        """Stop the child (politely, then by force) and the supervisor."""
        self._stopping.set()
        conn, process = self._conn, self._process
        if conn is not None:
            try:
                conn.send_bytes(pickle.dumps(("stop",)))
            except (OSError, ValueError):
                pass
        if process is not None:
            process.join(_STOP_WAIT_S)
            if process.is_alive():
                process.kill()
                process.join(_STOP_WAIT_S)
        self._supervisor.join(_STOP_WAIT_S)
        self._sender.shutdown(wait=False, cancel_futures=True)
        self._fail_pending(None)

    def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            error = self._launch()
            if error is not None:
                failures += 1
                if not self._started.is_set() or failures >= _MAX_START_FAILURES:
                    logger.error("replica %d (%s) stays down: %s", self.index,
                                 self.spec.device, error)
                    self._set_state(State.FAILED, error)
                    return
                time.sleep(min(2.0 ** failures, 10.0))
                continue
            failures = 0
            self._set_state(State.UP)
            exitcode = self._serve()
            if self._stopping.is_set():
                break
            self.restarts += 1
            logger.warning("replica %d (%s) exited with code %s; restarting it", self.index,
                           self.spec.device, exitcode)
            self._set_state(State.RESTARTING)
            self._fail_pending(exitcode)
        self._set_state(State.STOPPED)

    def _set_state(self, state: str, error: str | None = None) -> None:
        with self._lock:
            self.state, self.error = state, error
        if state in (State.UP, State.FAILED):
            self._started.set()
        self._changed()

    def _launch(self) -> str | None:
        """Start a child and wait until it reports ready; the reason when it does not."""
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=replica_main, args=(child, self.spec), daemon=True,
                                  name=f"m0rank-replica-{self.index}")
        process.start()
        child.close()
        with self._lock:
            self._conn, self._process = parent, process
        error = self._await_ready(parent, process)
        if error is not None:
            parent.close()
            process.join(_STOP_WAIT_S)
        return error

    def _await_ready(self, parent: Connection, process: Any) -> str | None:
        while not self._stopping.is_set():
            try:
                if parent.poll(_POLL_S):
                    message = pickle.loads(parent.recv_bytes())
                    return None if message[0] == "ready" else str(message[1])
            except (EOFError, OSError):
                pass
            if not process.is_alive():
                process.join()
                return f"the process exited with code {process.exitcode} while loading"
        return "the server is stopping"

    def _serve(self) -> int | None:
        """Read results until the child exits; its exit code."""
        conn, process = self._conn, self._process
        assert conn is not None and process is not None
        while not self._stopping.is_set():
            try:
                if not conn.poll(_POLL_S):
                    if process.is_alive():
                        continue
                    break
                message = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                break
            self._on_result(*message[1:])
        process.join(_STOP_WAIT_S)
        conn.close()
        return process.exitcode  # type: ignore[no-any-return]

    def _on_result(self, key: int, index: int, outcome: Outcome) -> None:
        with self._lock:
            window = self._pending.get(key)
            if window is None:
                return
            window.answered = index + 1
            finished = window.answered == len(window.batches)
            if finished:
                del self._pending[key]
        if not isinstance(outcome, Exception):
            self.batches += 1
            self.pairs += len(outcome)
        window.on_batch(index, outcome)
        if finished:
            window.finish(None)
            self._changed()

    def _fail_pending(self, exitcode: int | None) -> None:
        with self._lock:
            windows = list(self._pending.values())
            self._pending.clear()
            self._conn = None
        for window in windows:
            self.lost_batches += len(window.batches) - window.answered
            window.finish(ReplicaLost(self.index, exitcode))
        self._changed()


def replica_main(conn: Connection, spec: ReplicaSpec) -> None:
    """Entry point of a replica process: load, warm up, then run windows until told to stop
    or until the server goes away."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        engine = _load_engine(spec)
    except Exception as exc:  # reported to the server, which refuses to start
        conn.send_bytes(pickle.dumps(("failed", f"{type(exc).__name__}: {exc}")))
        return
    conn.send_bytes(pickle.dumps(("ready", os.getpid())))
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return  # the server is gone
        if message[0] == "stop":
            return
        _, key, batches = message
        try:
            for index, outcome in enumerate(engine.run_batches(batches, isolate_errors=True)):
                conn.send_bytes(pickle.dumps(("batch", key, index, _portable(outcome))))
        except (EOFError, OSError):
            return


def _load_engine(spec: ReplicaSpec) -> Any:
    import torch  # before loading: ONNX Runtime sessions size their thread pools from it

    from m0rank.api import Reranker

    torch.set_num_threads(spec.threads)
    reranker = Reranker.from_pretrained(spec.model, device=spec.device, **spec.load_kwargs)
    reranker.model.warmup()
    return reranker.engine


def _portable(outcome: Outcome) -> Outcome:
    """The outcome itself when it survives pickling, else the exception as text."""
    if not isinstance(outcome, Exception):
        return outcome
    try:
        pickle.loads(pickle.dumps(outcome))
    except Exception:
        return RuntimeError(f"{type(outcome).__name__}: {outcome}")
    return outcome
