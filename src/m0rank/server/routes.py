"""Thin HTTP handlers: parse, authorise, call the service, convert (after vLLM's api_router).

Each handler gets the app's :class:`AppState` from ``request.app.state.m0rank``; errors are
raised as m0rank errors and turned into answers by ``m0rank.server.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse

from m0rank.server.auth import ApiKeyAuth, KeyLimits
from m0rank.server.errors import request_id_of
from m0rank.server.lifecycle import Lifecycle
from m0rank.server.metrics import CONTENT_TYPE, ServerMetrics
from m0rank.server.protocol import (
    CohereV2RerankRequest,
    CohereV2RerankResponse,
    ErrorBody,
    ModelCard,
    ModelList,
    RerankRequest,
    RerankResponse,
    StatusResponse,
    cohere_v2_response,
    jina_response,
    to_call,
)
from m0rank.server.service import RerankService

__all__ = ["router", "AppState", "PLAYGROUND_PAGE"]

PLAYGROUND_PAGE = Path(__file__).parent / "static" / "index.html"
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in (
        (400, "Invalid input (empty query, bad image, bad option)"),
        (401, "Missing or unknown API key"),
        (413, "Body, document count or query over the server's limits"),
        (422, "Request does not match the schema"),
        (429, "Rate limit exceeded or queue full; see Retry-After"),
        (500, "Internal error; the body carries only a request id"),
        (503, "Starting, shutting down, or timed out"),
    )
}


@dataclass(frozen=True, kw_only=True)
class AppState:
    """Everything the handlers use, built once by ``create_app``."""

    service: RerankService
    auth: ApiKeyAuth
    limits: KeyLimits
    metrics: ServerMetrics
    lifecycle: Lifecycle
    model_name: str
    created: int


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.m0rank
    return state


async def authorize(request: Request) -> str | None:
    """Check the Bearer key and the key's rate limits; the key's fingerprint (or ``None``)."""
    state = _state(request)
    key = state.auth.authenticate(request.headers.get("authorization"))
    state.limits.admit(key)
    return key


router = APIRouter()


@router.post("/v1/rerank", response_model=RerankResponse, response_model_exclude_none=True,
             responses=_ERRORS, tags=["rerank"], summary="Rerank (Jina / Cohere v1 shape)")
@router.post("/rerank", response_model=RerankResponse, response_model_exclude_none=True,
             responses=_ERRORS, tags=["rerank"], summary="Rerank (Jina shape, vLLM's path)")
async def rerank(body: RerankRequest, request: Request,
                 key: str | None = Depends(authorize)) -> RerankResponse:
    """Rank documents (text, images or both) by relevance to a text or image query."""
    state = _state(request)
    ranking = await state.service.rerank(to_call(body), key)
    return jina_response(ranking, request_id=request_id_of(request), model=state.model_name,
                         return_documents=body.return_documents is not False)


@router.post("/v2/rerank", response_model=CohereV2RerankResponse,
             response_model_exclude_none=True, responses=_ERRORS, tags=["rerank"],
             summary="Rerank (Cohere v2 shape)")
async def rerank_v2(body: CohereV2RerankRequest, request: Request,
                    key: str | None = Depends(authorize)) -> CohereV2RerankResponse:
    """Cohere v2 rerank; ``max_tokens_per_doc`` truncates long documents."""
    ranking = await _state(request).service.rerank(to_call(body), key)
    return cohere_v2_response(ranking, request_id=request_id_of(request))


@router.get("/v1/models", response_model=ModelList, responses=_ERRORS, tags=["service"])
async def models(request: Request, key: str | None = Depends(authorize)) -> ModelList:
    """The one model this server serves."""
    state = _state(request)
    return ModelList(data=[ModelCard(id=state.model_name, created=state.created)])


@router.get("/health", response_model=StatusResponse, response_model_exclude_none=True,
            tags=["service"])
async def health() -> StatusResponse:
    """Liveness: the process answers."""
    return StatusResponse(status="ok")


@router.get("/ready", response_model=StatusResponse, response_model_exclude_none=True,
            responses={503: _ERRORS[503]}, tags=["service"])
async def ready(request: Request) -> StatusResponse:
    """Readiness: the model is loaded and warm, and the server is not shutting down."""
    state = _state(request)
    state.lifecycle.check_ready()
    return StatusResponse(status="ready", model=state.model_name)


@router.get("/metrics", tags=["service"], response_class=Response,
            responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text"}})
async def metrics(request: Request) -> Response:
    """Prometheus metrics of this server."""
    return Response(_state(request).metrics.render(), media_type=CONTENT_TYPE)


@router.get("/", include_in_schema=False)
async def playground() -> Response:
    """The playground page (when the package ships it)."""
    if not PLAYGROUND_PAGE.is_file():
        return Response("m0rank server: see /docs\n", media_type="text/plain")
    return FileResponse(PLAYGROUND_PAGE, media_type="text/html")
