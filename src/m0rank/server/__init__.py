"""The Jina- and Cohere-compatible HTTP server (``m0rank serve``).

Layers: ``protocol`` (wire schemas) -> ``service`` (the rerank use case) -> ``routes`` (thin
handlers) -> ``app`` (``create_app`` and the lifespan). ``batcher`` pools requests into shared
micro-batches, ``errors`` holds the one status table, ``images`` fetches images safely.

Importing this package is cheap (no FastAPI, no torch); ``create_app`` and ``ServerSettings``
load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "ServerSettings"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from m0rank.server.app import create_app

        return create_app
    if name == "ServerSettings":
        from m0rank.server.settings import ServerSettings

        return ServerSettings
    raise AttributeError(f"module 'm0rank.server' has no attribute {name!r}")
