"""Thin HTTP handlers: parse, authorise, call the service, convert (after vLLM's api_router).

Each handler gets the app's :class:`AppState` from ``request.app.state.m0rank``; errors are
raised as m0rank errors and turned into answers by ``m0rank.server.errors``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ValidationError

from m0rank.errors import InputTooLargeError, InvalidInputError
from m0rank.server.auth import ApiKeyAuth, KeyLimits
from m0rank.server.errors import (
    body_parse_error,
    request_id_of,
    tei_error_response,
    tei_exception_response,
    validation_message,
)
from m0rank.server.lifecycle import Lifecycle
from m0rank.server.metrics import CONTENT_TYPE, ServerMetrics
from m0rank.server.protocol import (
    CohereV2RerankRequest,
    CohereV2RerankResponse,
    ErrorBody,
    ModelCard,
    ModelList,
    Ranking,
    RerankRequest,
    RerankResponse,
    ScoreRequest,
    ScoreResponse,
    StatusResponse,
    TeiRank,
    TeiRerankRequest,
    cohere_v2_response,
    dialect_of,
    jina_response,
    score_groups,
    score_response,
    tei_response,
    tei_to_call,
    to_call,
)
from m0rank.server.service import RerankService, gather_cancelling

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


def _schema_ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _body_schema(*schemas: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` for the routes that read one of several bodies themselves."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"oneOf": list(schemas)}}}}}


# TEI's body has no nested models, so its schema is self-contained and can sit inline.
_TEI_SCHEMA = TeiRerankRequest.model_json_schema()


@router.post("/v1/rerank", response_model=RerankResponse, response_model_exclude_none=True,
             responses=_ERRORS, tags=["rerank"], summary="Rerank (Jina / Cohere v1 shape)")
async def rerank(body: RerankRequest, request: Request,
                 key: str | None = Depends(authorize)) -> RerankResponse:
    """Rank documents (text, images or both) by relevance to a text or image query."""
    return await _rerank(body, request, key)


@router.post("/rerank", response_model=RerankResponse | list[TeiRank],
             response_model_exclude_none=True, responses=_ERRORS, tags=["rerank"],
             summary="Rerank (vLLM's path: Jina/vLLM shape, or TEI's with texts)",
             openapi_extra=_body_schema(_schema_ref(RerankRequest), _TEI_SCHEMA))
async def rerank_shared_path(request: Request,
                             key: str | None = Depends(authorize)) -> Response:
    """vLLM's and TEI's path: a body with ``texts`` (and no ``documents``) is TEI's and gets
    TEI's answer (a bare list of ``{index, score, text?}``); any other body is a Jina/vLLM
    rerank request, answered as on ``/v1/rerank``."""
    payload = await _json_body(request)
    if dialect_of(payload) == "tei":
        return await _tei_rerank(payload, request, key)
    return _json(await _rerank(_parse(RerankRequest, payload), request, key))


@router.post("/score", response_model=ScoreResponse, responses=_ERRORS, tags=["score"],
             summary="Score pairs (vLLM shape)")
@router.post("/v1/score", response_model=ScoreResponse, responses=_ERRORS, tags=["score"],
             summary="Score pairs (vLLM shape; vLLM's older path)")
async def score(body: ScoreRequest, request: Request,
                key: str | None = Depends(authorize)) -> ScoreResponse:
    """vLLM's score API: one query against N documents, or N queries and N documents
    pairwise; scores come back in input order."""
    return await _score(body, request, key)


@router.post("/invocations", response_model=RerankResponse | list[TeiRank] | ScoreResponse,
             response_model_exclude_none=True, responses=_ERRORS, tags=["rerank", "score"],
             summary="SageMaker-style entry point: rerank, TEI rerank or score by body shape",
             openapi_extra=_body_schema(_schema_ref(RerankRequest), _TEI_SCHEMA,
                                        _schema_ref(ScoreRequest)))
async def invocations(request: Request, key: str | None = Depends(authorize)) -> Response:
    """Dispatch by body shape as vLLM's (and TEI's) ``/invocations`` do: ``query`` and
    ``documents`` rerank, ``query`` and ``texts`` TEI rerank, a vLLM score pair scores."""
    payload = await _json_body(request)
    kind = dialect_of(payload)
    if kind == "tei":
        return await _tei_rerank(payload, request, key)
    if kind == "score":
        return _json(await _score(_parse(ScoreRequest, payload), request, key))
    if kind == "rerank":
        return _json(await _rerank(_parse(RerankRequest, payload), request, key))
    raise InvalidInputError("cannot tell what this /invocations body asks for: send a rerank "
                            "body (query and documents), a TEI rerank body (query and texts) "
                            "or a score body (queries and documents, text_1 and text_2, or "
                            "data_1 and data_2)")


async def _rerank(body: RerankRequest, request: Request, key: str | None) -> RerankResponse:
    state = _state(request)
    ranking = await state.service.rerank(to_call(body), key)
    return jina_response(ranking, request_id=request_id_of(request), model=state.model_name,
                         return_documents=body.return_documents is not False)


async def _score(body: ScoreRequest, request: Request, key: str | None) -> ScoreResponse:
    state = _state(request)
    groups = score_groups(body)
    pairs = sum(len(group.indices) for group in groups)
    limit = state.service.settings.max_documents
    if pairs > limit:
        raise InputTooLargeError(f"the request has {pairs} pairs; this server accepts at most "
                                 f"{limit} per request")
    rankings = await gather_cancelling([state.service.rerank(group.call, key) for group in groups])
    return score_response(list(zip(groups, rankings, strict=True)),
                          request_id=request_id_of(request), model=state.model_name,
                          created=state.created)


async def _tei_rerank(payload: Any, request: Request, key: str | None) -> Response:
    """TEI's ``/rerank``: its answer and, for every error, its error body."""
    request_id = request_id_of(request)
    try:
        body = TeiRerankRequest.model_validate(payload)
    except ValidationError as exc:
        errors = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        return tei_error_response(422, "validation", validation_message(errors), request_id)
    if not body.texts:
        return tei_error_response(400, "empty", "`texts` cannot be empty", request_id)
    try:
        ranking: Ranking = await _state(request).service.rerank(tei_to_call(body), key)
    except Exception as exc:  # noqa: BLE001 - every error, in TEI's body, by the one table
        return tei_exception_response(exc, request_id)
    ranks = tei_response(ranking, body.texts, return_text=body.return_text is True)
    return JSONResponse([rank.model_dump(exclude_none=True) for rank in ranks])


async def _json_body(request: Request) -> Any:
    """The parsed JSON body of a route that reads one of several shapes itself; errors as
    FastAPI's own body parsing gives them (422), bad UTF-8 and deep nesting included."""
    raw = await request.body()
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",),
                                       "msg": "Field required", "input": None}])
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise body_parse_error(exc) from None


ModelT = TypeVar("ModelT", bound=BaseModel)


def _parse(model: type[ModelT], payload: Any) -> ModelT:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])}
                                      for e in exc.errors()]) from None


def _json(body: BaseModel) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json", exclude_none=True))




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
