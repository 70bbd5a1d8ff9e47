"""Server test helpers: apps over the tiny checkpoint and in-process clients.

``running(app)`` drives the app's lifespan and yields an ``httpx.AsyncClient`` over ASGI (no
socket). Real servers on 127.0.0.1 are in ``cli_server.py``; fixtures are in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
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


def ranked(results):
    """(index, score) pairs of response results, for comparisons."""
    return [r["index"] for r in results], [r["relevance_score"] for r in results]
