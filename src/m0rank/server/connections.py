"""Connection guards under uvicorn: header and body-idle timeouts, a connection cap, quiet logs.

Why here and not a different server: uvicorn (h11) is what FastAPI users deploy and what the
Ray Serve app runs on, and its protocol class is a documented extension point
(``uvicorn.Config(http=...)``). What it lacks is exactly what a hostile client exploits:

- no timeout for a request head that never completes, nor for a body that stops arriving, so
  a few bytes per connection hold it forever;
- ``limit_concurrency`` is checked only once a full request head has arrived, so half-open
  connections are never counted against it, and the process runs out of file descriptors;
- at that point asyncio logs a traceback for every refused accept.

:class:`GuardedH11Protocol` adds the two timeouts (408 with the JSON error body, then close),
refuses connections over the cap with a 503 JSON answer before reading anything, raises the
file-descriptor soft limit to the hard one so the cap, not the kernel, decides, and
:class:`LogOncePer` collapses repeated conditions into one log line per interval.
docs/server.md ("Hostile clients") has the defaults and the measurements.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["ConnectionLimits", "GuardedH11Protocol", "guarded_protocol", "LogOncePer",
           "raise_open_file_limit", "quiet_accept_errors"]

logger = logging.getLogger(__name__)

# Descriptors kept free for the model files, the image cache and logs when sizing the cap.
_RESERVED_FDS = 64


@dataclass(frozen=True, kw_only=True)
class ConnectionLimits:
    """Per-connection guards.

    Args:
        header_timeout_s: Longest wait for a complete request head (from its first byte, or
            from the connection's opening).
        body_idle_timeout_s: Longest pause between two pieces of a request body.
        max_connections: Open connections above which new ones get 503 and are closed.
    """

    header_timeout_s: float = 10.0
    body_idle_timeout_s: float = 30.0
    max_connections: int = 1000


class LogOncePer:
    """Logs a condition the first time, then at most once per ``interval_s`` with a count.

    Thread-safe; one instance per condition.
    """

    def __init__(self, message: str, interval_s: float = 60.0, level: int = logging.WARNING):
        self.message = message
        self.interval_s = interval_s
        self.level = level
        self._lock = threading.Lock()
        self._count = 0
        self._last = -float("inf")

    def hit(self) -> None:
        """Count one occurrence; log when the interval has passed."""
        with self._lock:
            self._count += 1
            now = time.monotonic()
            if now - self._last < self.interval_s:
                return
            count, self._count, self._last = self._count, 0, now
        logger.log(self.level, "%s (%d time(s) since the last report; next report in %.0f s "
                   "at the earliest)", self.message, count, self.interval_s)


def _raw_error(status: int, reason: str, error_type: str, message: str) -> bytes:
    """A complete HTTP/1.1 answer with m0rank's error body, for use before any request."""
    body = json.dumps({"detail": message, "error": {
        "type": error_type, "code": status, "message": message, "request_id": ""}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
    return head + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the guards described in the module docstring.

    Use :func:`guarded_protocol` to get a subclass bound to a :class:`ConnectionLimits`.
    """

    limits = ConnectionLimits()
    over_capacity = LogOncePer("refused connections over the connection cap with 503")
    head_timeouts = LogOncePer("closed connections whose request head did not arrive in time",
                               level=logging.INFO)
    body_timeouts = LogOncePer("closed connections whose request body stalled",
                               level=logging.INFO)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.limits.max_connections:
            self._refused = True
            self.over_capacity.hit()
            transport.write(_raw_error(503, "Service Unavailable", "service_unavailable",
                                       "the server has too many open connections; retry later"))
            transport.close()
            return
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        self._follow_request_state()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._cancel_timers()  # idle until the next request: uvicorn's keep-alive timeout

    def _follow_request_state(self) -> None:
        """Which timer applies depends on where h11 is in the client's request."""
        state = self.conn.their_state
        if state is h11.IDLE:  # part of a request head received
            if self._head_timer is None and self.timeout_keep_alive_task is None:
                self._arm_head_timer()
            return
        self._cancel_head_timer()
        if state is h11.SEND_BODY:
            self._arm_body_timer()
        elif self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_expired)

    def _arm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
        self._body_timer = self.loop.call_later(self.limits.body_idle_timeout_s,
                                                self._body_expired)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_head_timer()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        self.head_timeouts.hit()
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_raw_error(
                408, "Request Timeout", "timeout",
                f"the request head did not arrive within {self.limits.header_timeout_s:g} s"))
        self.transport.close()

    def _body_expired(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        self.body_timeouts.hit()
        self.transport.close()  # the app sees a disconnect and drops the request


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """A :class:`GuardedH11Protocol` subclass bound to ``limits`` (what ``uvicorn.Config``'s
    ``http`` takes), with its own log counters."""
    return type("BoundGuardedH11Protocol", (GuardedH11Protocol,), {
        "limits": limits,
        "over_capacity": LogOncePer("refused connections over the connection cap with 503"),
        "head_timeouts": LogOncePer(
            "closed connections whose request head did not arrive in time", level=logging.INFO),
        "body_timeouts": LogOncePer("closed connections whose request body stalled",
                                    level=logging.INFO),
    })


def raise_open_file_limit(wanted_connections: int) -> int:
    """Raise the soft descriptor limit toward the hard one; return how many connections fit.

    The answer is ``wanted_connections`` or less, leaving room for the process's own files.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return wanted_connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            logger.warning("could not raise the open-file limit above %d", soft)
    fits = max(1, soft - _RESERVED_FDS)
    if fits < wanted_connections:
        logger.warning("connection cap lowered from %d to %d by the open-file limit",
                       wanted_connections, fits)
    return min(wanted_connections, fits)


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Log asyncio's "out of system resource" accept errors once per minute, not per accept
    (each comes with a traceback; a descriptor flood made 90 MB of them in 40 s)."""
    accept_errors = LogOncePer("accept() failed: out of system resources (open files?)")
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "out of system resource" in str(context.get("message", "")):
            accept_errors.hit()
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
