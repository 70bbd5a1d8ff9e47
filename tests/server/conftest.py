"""Fixtures of the server tests (helpers live in ``server_helpers.py``)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from image_helpers import ImageServer
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


@pytest.fixture()
def server() -> Iterator[ImageServer]:
    srv = ImageServer()
    yield srv
    srv.close()


@pytest.fixture()
def connections(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every outgoing connection; refuse any that is not to 127.0.0.1."""
    attempts: list[object] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def check(address: object) -> None:
        attempts.append(address)
        if not (isinstance(address, tuple) and str(address[0]).startswith("127.")):
            raise OSError(f"test blocked a connection to {address!r}")

    def connect(self: socket.socket, address: object) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return attempts
