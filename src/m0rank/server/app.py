"""``create_app``: assemble the FastAPI app over a loaded :class:`~m0rank.api.Reranker`.

The lifespan starts the batcher and warms the model in the background (``/ready`` turns true
when warm); on shutdown it marks the server as draining, lets in-flight requests finish, then
stops the batcher and closes the image fetcher.

Regenerate the committed schema after changing the API::

    python -m m0rank.server.app --write-openapi docs/openapi.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from m0rank._version import __version__
from m0rank.server.auth import ApiKeyAuth, KeyLimits
from m0rank.server.batcher import Batcher, BatcherConfig
from m0rank.server.connections import quiet_accept_errors
from m0rank.server.errors import install_error_handlers
from m0rank.server.explain import explain_router
from m0rank.server.lifecycle import Lifecycle
from m0rank.server.metrics import ServerMetrics
from m0rank.server.middleware import RequestContextMiddleware
from m0rank.server.replicas import ReplicaPool
from m0rank.server.routes import AppState, router
from m0rank.server.service import RerankService
from m0rank.server.settings import ServerSettings

if TYPE_CHECKING:
    from m0rank.api import Reranker
    from m0rank.server.images import ImageResolver

__all__ = ["create_app", "openapi_schema", "main"]

logger = logging.getLogger(__name__)

_DESCRIPTION = (
    "Self-hosted multimodal reranker (jina-reranker-m0 and friends) behind Jina- and "
    "Cohere-compatible rerank endpoints. Queries and documents may be text, images "
    "(URL, base64 or data URI) or both."
)


def create_app(settings: ServerSettings, reranker: Reranker, *,
               resolver: ImageResolver | None = None) -> FastAPI:
    """Build the app for one loaded model.

    Args:
        settings: Operator settings (limits, keys, queue, image fetching).
        reranker: The loaded model; its engine config sets the micro-batch budget.
        resolver: Image fetcher; by default one built from ``settings``.

    Returns:
        The FastAPI app; serve it with uvicorn (``m0rank serve`` does).
    """
    if resolver is None:
        from m0rank.server.images import ImageResolver

        resolver = ImageResolver(settings.image_fetch_settings())
    metrics = ServerMetrics()
    replicas = ReplicaPool.from_settings(settings) if settings.replica_count > 1 else None
    batcher = Batcher(reranker.engine, BatcherConfig(max_queue_pairs=settings.max_queue_pairs,
                                                     max_wait_ms=settings.max_batch_wait_ms),
                      observer=metrics, runner=replicas)
    lifecycle = Lifecycle()
    if replicas is not None:
        lifecycle.add_health_check(replicas.unavailable)
    limits = KeyLimits(settings.rpm_limit, settings.tpm_limit)
    service = RerankService(settings=settings, batcher=batcher, resolver=resolver,
                            lifecycle=lifecycle, limits=limits)
    app = FastAPI(title="m0rank", version=__version__, description=_DESCRIPTION,
                  lifespan=_lifespan)
    app.state.m0rank = AppState(
        service=service, auth=ApiKeyAuth(settings.api_keys), limits=limits, metrics=metrics,
        lifecycle=lifecycle, model_name=settings.served_model_name or reranker.model_name,
        created=int(time.time()))
    app.state.reranker = reranker
    app.include_router(router)
    app.include_router(explain_router)
    install_error_handlers(app, authenticate=app.state.m0rank.auth.authenticate)
    app.add_middleware(RequestContextMiddleware, metrics=metrics,
                       max_body_bytes=settings.max_body_bytes)
    metrics.watch_queue(lambda: batcher.queue_depth)
    if replicas is not None:
        metrics.watch_replicas(replicas.stats)
    metrics.watch_caches(lambda: {"image": resolver.stats(), **reranker.model.cache_stats()})
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: AppState = app.state.m0rank
    service = state.service
    await service.batcher.start()
    loop = asyncio.get_running_loop()
    quiet_accept_errors(loop)

    def abort_later() -> None:  # on SIGTERM: in-flight work gets drain_timeout_s to finish
        loop.call_later(service.settings.drain_timeout_s, service.batcher.abort_in_flight)

    state.lifecycle.on_drain(lambda: loop.call_soon_threadsafe(abort_later))
    warmup = asyncio.create_task(_warm_up(app))
    try:
        yield
    finally:
        state.lifecycle.begin_drain()
        warmup.cancel()
        await service.batcher.stop(service.settings.drain_timeout_s)
        await service.resolver.aclose()
        state.lifecycle.mark_stopped()
        logger.info("server stopped")


async def _warm_up(app: FastAPI) -> None:
    """Run the model's warm-up where preprocessing runs, then report ready."""
    state: AppState = app.state.m0rank
    try:
        await state.service.batcher.call_in_device_thread(app.state.reranker.model.warmup)
    except Exception:
        logger.exception("model warm-up failed; /ready stays 503")
        state.lifecycle.mark_failed()
        return
    state.lifecycle.mark_ready()


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI schema (what ``docs/openapi.json`` holds)."""
    return app.openapi()


def _schema_app() -> FastAPI:
    """An app over a stand-in model: the schema depends on the routes, never on weights."""
    from m0rank.api import Reranker
    from m0rank.model.dummy import DummyReranker

    return create_app(ServerSettings(), Reranker(DummyReranker()))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m m0rank.server.app --write-openapi docs/openapi.json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write-openapi", type=Path, metavar="FILE", required=True,
                        help="write the OpenAPI schema to FILE")
    args = parser.parse_args(argv)
    schema = openapi_schema(_schema_app())
    args.write_openapi.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.write_openapi}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
