"""Server test helpers: apps over the tiny checkpoint, in-process clients, a real uvicorn server.

``running(app)`` drives the app's lifespan and yields an ``httpx.AsyncClient`` over ASGI (no
socket). ``start_live_server`` runs a real uvicorn server on 127.0.0.1 in a thread, for real
clients (Cohere SDK, LangChain...) and the playground. Fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

from m0rank.server.app import create_app
from m0rank.server.settings import ServerSettings

SERVED_NAME = "jina-reranker-m0"


def png_base64(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (20, 120, 200)) -> str:
    """A small PNG as base64 text."""
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def make_app(reranker: Any, **overrides: Any) -> Any:
    """An app over ``reranker`` with test-friendly settings (served as 'jina-reranker-m0')."""
    settings = ServerSettings(served_model_name=SERVED_NAME, **overrides)
    return create_app(settings, reranker)


@asynccontextmanager
async def running(app: Any, *, wait_ready: bool = True) -> AsyncIterator[httpx.AsyncClient]:
    """Run the lifespan and yield a client talking to ``app`` in-process."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m0rank.test") as client:
            if wait_ready:
                await wait_until_ready(client)
            yield client


async def wait_until_ready(client: httpx.AsyncClient, timeout: float = 30.0) -> None:
    """Poll ``/ready`` until 200."""
    deadline = time.monotonic() + timeout
    while (await client.get("/ready")).status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError("server did not become ready")
        await asyncio.sleep(0.02)


def call(app: Any, fn: Callable[[httpx.AsyncClient], Any]) -> Any:
    """Run ``await fn(client)`` against a running ``app`` and return its result."""

    async def main() -> Any:
        async with running(app) as client:
            return await fn(client)

    return asyncio.run(main())


@dataclass
class LiveServer:
    """A uvicorn server in a thread; ``url`` is its root (``http://127.0.0.1:PORT``)."""

    url: str
    app: Any
    server: Any


def start_live_server(app: Any) -> tuple[LiveServer, threading.Thread]:
    """Start uvicorn on a free loopback port and wait until it answers ``/ready``."""
    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                return LiveServer(url=url, app=app, server=server), thread
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    server.should_exit = True
    raise TimeoutError("live server did not become ready")


def ranked(results):
    """(index, score) pairs of response results, for comparisons."""
    return [r["index"] for r in results], [r["relevance_score"] for r in results]
