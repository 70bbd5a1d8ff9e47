"""Server life cycle: starting -> ready -> draining -> stopped, and graceful shutdown.

``/health`` answers while the process is up; ``/ready`` only once the model is warm and until
shutdown begins, so a load balancer stops routing here before the process goes away. On
SIGTERM/SIGINT, :func:`draining_server` marks the app as draining *before* uvicorn stops: new
connections are refused (the listening socket closes), new requests on open connections get
503, and in-flight ones finish. Whatever is still running ``drain_timeout_s`` later is answered
with the documented 503 JSON body (the batcher fails its requests; the request middleware
answers any handler uvicorn cancels), never uvicorn's plain-text 500: ``m0rank serve`` gives
uvicorn a graceful timeout a few seconds longer than ours.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from types import FrameType
from typing import Any

from m0rank.errors import ServiceUnavailableError

__all__ = ["Lifecycle", "State", "draining_server"]

logger = logging.getLogger(__name__)


class State(str, enum.Enum):
    """Where the server is in its life."""

    STARTING = "starting"
    FAILED = "failed"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


class Lifecycle:
    """The server's state, shared by the lifespan, the routes and the signal handler."""

    def __init__(self) -> None:
        self.state = State.STARTING
        self._drain_listeners: list[Callable[[], None]] = []
        self._health_checks: list[Callable[[], str | None]] = []

    def add_health_check(self, check: Callable[[], str | None]) -> None:
        """``check()`` returns why the server cannot serve (e.g. every model replica is down)
        or ``None``; ``/ready`` answers 503 with that reason while it is not ``None``."""
        self._health_checks.append(check)

    def on_drain(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` once when draining begins (from the signal handler's thread)."""
        self._drain_listeners.append(listener)

    @property
    def ready(self) -> bool:
        """Model warm and not shutting down."""
        return self.state is State.READY

    def mark_ready(self) -> None:
        """Warm-up finished (ignored once shutdown has begun)."""
        if self.state is State.STARTING:
            self.state = State.READY
            logger.info("server ready")

    def mark_failed(self) -> None:
        """Warm-up failed: stay unready (requests are still tried; the log has the cause)."""
        if self.state is State.STARTING:
            self.state = State.FAILED

    def begin_drain(self) -> None:
        """Stop taking new work; in-flight requests continue."""
        if self.state in (State.STARTING, State.FAILED, State.READY):
            self.state = State.DRAINING
            logger.info("server draining: new requests get 503")
            for listener in self._drain_listeners:
                listener()

    def mark_stopped(self) -> None:
        """Shutdown finished."""
        self.state = State.STOPPED

    def check_accepting(self) -> None:
        """Raise when new work must be refused.

        Raises:
            ServiceUnavailableError: The server is shutting down.
        """
        if self.state in (State.DRAINING, State.STOPPED):
            raise ServiceUnavailableError("the server is shutting down and takes no new requests")

    def check_ready(self) -> None:
        """Raise unless ready (what ``/ready`` reports).

        Raises:
            ServiceUnavailableError: Still warming up, or shutting down.
        """
        self.check_accepting()
        if self.state is State.STARTING:
            raise ServiceUnavailableError("the model is still warming up")
        if self.state is State.FAILED:
            raise ServiceUnavailableError("the model failed to warm up; see the server log")
        for check in self._health_checks:
            reason = check()
            if reason is not None:
                raise ServiceUnavailableError(reason)


def draining_server(config: Any, lifecycle: Lifecycle) -> Any:
    """A ``uvicorn.Server`` that marks ``lifecycle`` as draining when told to exit."""
    import uvicorn

    class _DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            lifecycle.begin_drain()
            super().handle_exit(sig, frame)

    return _DrainingServer(config)

