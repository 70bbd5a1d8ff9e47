"""One pure-ASGI middleware around every HTTP request: request id, body limit, metrics, and the
last-resort 500.

- ``X-Request-ID``: taken from the request when it is a short safe token, otherwise generated;
  stored in ``request.state.request_id``, echoed on every answer and named in every log line.
- Body limit: a ``Content-Length`` over the limit is refused before reading; a body without
  one is counted while it streams. Either way the answer is 413 and nothing larger is buffered.
- Metrics: count and latency per route template (``/v1/rerank``; unknown paths share
  ``unmatched`` so scanners cannot blow up label cardinality).
- Any exception the app did not turn into an answer becomes a 500 whose body carries only the
  request id; the traceback goes to the log.
- Client gone: once the body is read, the connection is watched; when the client disconnects
  before its answer, the handler is cancelled, which drops the request's unscored work at the
  next micro-batch boundary (``m0rank_requests_abandoned_total``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from m0rank.errors import InputTooLargeError, ServiceUnavailableError
from m0rank.server.errors import exception_response
from m0rank.server.metrics import ServerMetrics

__all__ = ["RequestContextMiddleware"]

logger = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """See the module docstring.

    Args:
        app: The wrapped ASGI app.
        metrics: Where request counts and latencies go.
        max_body_bytes: Largest accepted request body.
    """

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        response = {"status": 500, "started": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                response.update(status=message["status"], started=True)
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:
                    headers.append("X-Request-ID", request_id)
            await send(message)

        started_at = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            body = await self._read_body(scope, receive)
            await self._run_until_disconnect(scope, body, receive, send_with_id, response)
        except asyncio.CancelledError:
            # uvicorn cancels what outlived its graceful-shutdown timeout: answer with the
            # documented 503 instead of its plain-text 500, then let the task end
            if not response["started"]:
                await exception_response(ServiceUnavailableError(
                    "the server is shutting down and could not finish this request; retry"),
                    request_id)(scope, receive, send_with_id)
        except Exception as exc:  # the last resort: never a traceback to the client
            if response["started"]:
                logger.error("request %s failed after answering", request_id, exc_info=exc)
            else:
                await exception_response(exc, request_id)(scope, receive, send_with_id)
        finally:
            self.metrics.in_flight.dec()
            self.metrics.observe_request(_route(scope), int(response["status"]),
                                         time.perf_counter() - started_at)

    async def _run_until_disconnect(self, scope: Scope, body: Receive, receive: Receive,
                                    send: Send, response: dict[str, Any]) -> None:
        """Run the app; cancel it if the client disconnects before the answer is complete.

        The server's ``receive`` has one reader, the watcher; the app reads the replayed body
        and then waits for the watcher's disconnect, as it would on the raw channel.
        """
        gone = asyncio.Event()

        async def send_tracking(message: Message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                response["complete"] = True
            await send(message)

        handler = asyncio.ensure_future(self.app(scope, _after(body, gone), send_tracking))
        watcher = asyncio.ensure_future(_watch_disconnect(receive, gone))
        gone_task = asyncio.ensure_future(gone.wait())
        try:
            await asyncio.wait([handler, gone_task], return_when=asyncio.FIRST_COMPLETED)
            if handler.done() or response.get("complete"):
                await handler
                return
            handler.cancel()
            await asyncio.gather(handler, return_exceptions=True)
            self.metrics.abandoned.inc()
            logger.info("request %s: client disconnected; its work was cancelled",
                        scope.get("state", {}).get("request_id", ""))
        finally:
            for task in (watcher, gone_task, handler):
                task.cancel()

    async def _read_body(self, scope: Scope, receive: Receive) -> Receive:
        """Read the whole body under the limit and return a ``receive`` that replays it."""
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay([message], receive)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return _replay([{"type": "http.request", "body": b"".join(chunks), "more_body": False}],
                       receive)

    def _too_large(self) -> InputTooLargeError:
        return InputTooLargeError(f"the request body is larger than this server's limit of "
                                  f"{self.max_body_bytes} bytes")


async def _watch_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    """Read the server's channel until it reports a disconnect (or the answer completed)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return


def _after(body: Receive, gone: asyncio.Event) -> Receive:
    """The replayed body, then a disconnect once the watcher saw one."""
    replayed = False

    async def receive() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return await body()
        await gone.wait()
        return {"type": "http.disconnect"}

    return receive


def _replay(messages: list[Message], receive: Receive) -> Receive:
    queue = list(messages)

    async def replay() -> Message:
        return queue.pop(0) if queue else await receive()

    return replay


def _request_id(scope: Scope) -> str:
    given = Headers(scope=scope).get("x-request-id", "")
    return given if _SAFE_ID.match(given) else uuid.uuid4().hex


def _route(scope: Scope) -> str:
    route: Any = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")
