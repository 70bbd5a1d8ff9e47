"""``POST /v1/explain`` (an m0rank extension): why does a document score what it scores?

The library's ``m0rank.explain`` does the work. Occlusion variants are scored through the
shared batcher like any request (they pool with other requests' pairs); attention and
gradients need the model itself and run on the batcher's device thread, so the eager
attention switch never overlaps a served forward pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from m0rank.config import ScoreOptions
from m0rank.errors import InvalidInputError, RequestTimeoutError
from m0rank.explain import (
    Explanation,
    assemble_occlusion,
    check_method,
    explain_pair,
    plan_occlusion,
)
from m0rank.preprocessing.inputs import to_document
from m0rank.preprocessing.pdf import page_document
from m0rank.server.documents import read_pages
from m0rank.server.protocol import DocumentObject, Query
from m0rank.server.routes import _ERRORS, _state, authorize
from m0rank.types import Document

__all__ = ["ExplainRequest", "ExplainResponse", "explain_router"]

explain_router = APIRouter()


class ExplainRequest(BaseModel):
    """One (query, document) pair to explain."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "query": "wind turbine blade fatigue", "document": {"image": "https://x/page.png"},
        "method": "occlusion"}]})
    model: str | None = Field(None, description="Accepted for compatibility.")
    query: Query
    document: str | DocumentObject = Field(description="Text, {image}, or {pdf, pages: [n]} "
                                           "(one page; page 1 by default).")
    method: str = Field("occlusion", description="occlusion (every model), attention or "
                        "gradient (jina-reranker-m0).")
    block: int | None = Field(None, description="Occlusion block: cells per side (images) or "
                              "words (text); default: at most 64 variants.")
    layers: list[int] | None = Field(None, description="Attention layers (default all).")
    heads: list[int] | None = Field(None, description="Attention heads (default all).")
    overlay: bool = Field(True, description="Include the page with the heatmap drawn on it.")


class ExplainSpan(BaseModel):
    start: int
    end: int
    text: str
    weight: float


class ExplainResponse(BaseModel):
    """The explanation: scores, and a heatmap (images) or span weights (text)."""

    model: str
    method: str
    score: float = Field(description="The served score of this pair.")
    method_score: float = Field(description="The score of the forward pass the method ran "
                                "(eager attention may differ slightly from the served one).")
    heatmap: list[list[float]] | None = Field(None, description="One weight per image cell "
                                              "(28 x 28 model pixels), rows top to bottom.")
    overlay: str | None = Field(None, description="PNG data URI: the page with the heatmap.")
    spans: list[ExplainSpan] | None = None
    details: dict[str, Any] = Field(default_factory=dict)


@explain_router.post("/v1/explain", response_model=ExplainResponse,
                     response_model_exclude_none=True, responses=_ERRORS, tags=["rerank"],
                     summary="Explain one score (m0rank extension)")
async def explain(body: ExplainRequest, request: Request,
                  key: str | None = Depends(authorize)) -> ExplainResponse:
    """Why ``document`` scores what it scores for ``query``: a heatmap over an image or PDF
    page (occlusion, attention, gradient x input) or a weight per word span of a text."""
    state = _state(request)
    service = state.service
    service.lifecycle.check_accepting()
    timeout = service.settings.request_timeout_s
    try:
        explanation = await asyncio.wait_for(_explain(service, body), timeout)
    except asyncio.TimeoutError:
        raise RequestTimeoutError(f"the explanation did not finish within {timeout:g} s; use "
                                  f"a larger block or a smaller page") from None
    payload = explanation.to_dict(overlay=body.overlay)
    return ExplainResponse(model=state.model_name, **payload)


async def _explain(service: Any, body: ExplainRequest) -> Explanation:
    method = check_method(body.method)
    query = await service._resolve(to_document(_plain(body.query), "query"), "query")  # noqa: SLF001
    document = await _target(service, to_document(_plain(body.document), "document"))
    batcher = service.batcher
    options = ScoreOptions()
    if method == "occlusion":
        plan = plan_occlusion(document, block=body.block)
        scores = await _scores(batcher, query, plan.documents, options)
        return assemble_occlusion(plan, scores, scores[0])
    served = (await _scores(batcher, query, [document], options))[0]
    explanation: Explanation = await batcher.call_in_device_thread(lambda: explain_pair(
        batcher.engine.model, lambda _documents: [served], query, document, method=method,
        options=options, layers=body.layers, heads=body.heads))
    return explanation


async def _scores(batcher: Any, query: Document, documents: Sequence[Document],
                  options: ScoreOptions) -> list[float]:
    pairs = [(query, doc) for doc in documents]
    scored = await batcher.score(pairs, options, ["document"] * len(pairs))
    return [s.score for s in scored]


async def _target(service: Any, document: Document) -> Document:
    """The resolved document; a PDF gives its one selected page."""
    if document.pdf is None:
        return await service._resolve(document, "document")  # noqa: SLF001
    pages = document.pages or (1,)
    if len(pages) != 1:
        raise InvalidInputError(f"document.pages must name one page to explain, got "
                                f"{list(pages)}")
    [page] = await read_pages(service.resolver, document, "document", pages,
                              service.settings.pdf_limits)
    return page_document(page, use_text_layer=service.batcher.engine.model.reads_text_layer)


def _plain(value: Any) -> Any:
    return value if isinstance(value, str) else value.model_dump(exclude_none=True)
