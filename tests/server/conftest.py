"""Fixtures of the server tests (helpers live in ``server_helpers.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from server_helpers import make_app


@pytest.fixture(scope="module")
def app_client(reranker: Any) -> Iterator[Callable[..., httpx.Response]]:
    """``request(method, path, **kw) -> Response`` against one default app per module."""
    from fastapi.testclient import TestClient

    with TestClient(make_app(reranker), raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 30
        while client.get("/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        yield client.request


@pytest.fixture(scope="session")
def dummy_reranker() -> Any:
    """The weight-free ``m0rank-dummy`` model: for tests of the HTTP layer that need no real
    scores (auth, limits, queueing, lifecycle)."""
    from m0rank import Reranker

    return Reranker.from_pretrained("m0rank-dummy", device="cpu")
