"""Image-fetch test helpers: a counting HTTP server on 127.0.0.1, PNG bytes, fake DNS and a
one-resolver runner (fixtures ``server`` and ``connections`` are in ``conftest.py``)."""

from __future__ import annotations

import asyncio
import io
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from m0rank.server.images import ImageFetchSettings, ImageResolver


def png(size: tuple[int, int] = (32, 24), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "image/png"})
    delay: float = 0.0
    length: bool = True  # send Content-Length (else the body ends when the connection closes)


class ImageServer:
    """A tiny threaded HTTP server on 127.0.0.1 that counts requests per path."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        self.host_headers: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.hits[self.path] = outer.hits.get(self.path, 0) + 1
                outer.host_headers.append(self.headers.get("Host", ""))
                route = outer.routes.get(self.path, Route(b"missing", 404, {}))
                time.sleep(route.delay)
                self.send_response(route.status)
                for key, value in route.headers.items():
                    self.send_header(key, value)
                if route.length:
                    self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                try:
                    self.wfile.write(route.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def fake_dns(monkeypatch: pytest.MonkeyPatch, table: dict[str, str]) -> None:
    """Make names in ``table`` resolve to the given addresses (nothing is sent anywhere)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if host in table:
            family = socket.AF_INET6 if ":" in table[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (table[host], port or 80))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def resolve_all(settings: ImageFetchSettings, *sources: str) -> tuple[list[Image.Image], dict]:
    """Resolve ``sources`` one after another with one resolver; return images and stats."""

    async def main() -> tuple[list[Image.Image], dict]:
        resolver = ImageResolver(settings)
        try:
            images = [await resolver.resolve(s, f"documents[{i}].image")
                      for i, s in enumerate(sources)]
            return images, resolver.stats()
        finally:
            await resolver.aclose()

    return asyncio.run(main())


LOOPBACK = ImageFetchSettings(allow_hosts=("127.0.0.1",))
