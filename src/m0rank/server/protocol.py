"""Wire schemas (pydantic v2) of the Jina, Cohere v1/v2 and vLLM rerank shapes, and the
conversion between them and the service's internal :class:`RerankCall` / :class:`Ranking`.

Request rules that real clients need (``shared/spec/peers-and-clients.md`` section 2):
unknown fields are ignored; ``null`` is accepted for every optional field; ``query`` is a
string or an object; ``documents`` are strings or objects (``{"text"}``, ``{"image"}``, both,
vLLM's ``{"content": [parts]}``, or Cohere v1 objects with ``rank_fields``). vLLM's older
``"documents": {"content": [part, ...]}`` means one document per part, as in vLLM.

This module imports neither torch nor the engine, so schema tests run in milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from m0rank.types import PairScore

__all__ = [
    "RerankRequest", "CohereV2RerankRequest", "RerankResponse", "CohereV2RerankResponse",
    "RerankResult", "ModelList", "ModelCard", "StatusResponse", "ErrorBody",
    "RerankCall", "Ranking", "to_call", "jina_response", "cohere_v2_response",
]

_ACCEPT = ConfigDict(extra="ignore")


class ImageURL(BaseModel):
    """vLLM / OpenAI ``image_url`` object."""

    model_config = _ACCEPT
    url: str


class ContentPart(BaseModel):
    """One part of vLLM's multimodal content: ``{"type": "text", "text"}`` or
    ``{"type": "image_url", "image_url": {"url"}}``."""

    model_config = _ACCEPT
    type: str
    text: str | None = None
    image_url: ImageURL | str | None = None


class QueryObject(BaseModel):
    """An object query: text, image (URL, base64 or data URI), both, or vLLM content."""

    model_config = _ACCEPT
    text: str | None = None
    image: str | list[str] | None = None
    content: list[ContentPart] | None = None


class DocumentObject(BaseModel):
    """An object document. Extra keys are kept for Cohere v1 ``rank_fields``."""

    model_config = ConfigDict(extra="allow")
    text: str | None = None
    image: str | list[str] | None = None
    content: list[ContentPart] | None = None
    pdf: str | None = Field(None, description="m0rank extension: a PDF (URL, base64 or data "
                            "URI); each page is ranked as its own result, with `page`.")
    pages: list[int] | str | None = Field(None, description="m0rank extension: pages of this "
                                          "PDF to read ([1, 3] or '1-3,7').")


class ContentDocuments(BaseModel):
    """vLLM's older form ``"documents": {"content": [...]}``: one document per part."""

    model_config = _ACCEPT
    content: list[ContentPart]


Query = str | QueryObject
Documents = list[str | DocumentObject] | ContentDocuments


class M0RankExtensions(BaseModel):
    """m0rank's extensions of the rerank requests (not in the Jina/Cohere/vLLM APIs)."""

    model_config = _ACCEPT
    pages: list[int] | str | None = Field(None, description="m0rank extension: PDF pages to "
                                          "read ([1, 3] or '1-3,7'; default all).")
    chunk_size: StrictInt | None = Field(None, description="m0rank extension: score texts "
                                         "longer than this many tokens by their best window "
                                         "(MaxP); results name it as `chunk`.")
    chunk_overlap: StrictInt | None = Field(None, description="m0rank extension: tokens "
                                            "shared by consecutive windows.")
    dedup: StrictBool | None = Field(None, description="m0rank extension: mark near-duplicates "
                                     "of better-ranked documents (`duplicate_of`).")
    diversity: float | None = Field(None, description="m0rank extension: re-order by maximal "
                                    "marginal relevance with this lambda in [0, 1].")


class _RerankBase(M0RankExtensions):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "model": "jina-reranker-m0", "query": "small language model for markdown",
        "documents": ["ReaderLM-v2 converts HTML to markdown.", {"image": "https://x/y.png"}],
        "top_n": 2}]})
    model: str | None = Field(None, description="Accepted for compatibility; the served "
                              "model answers whatever name is given.")
    query: Query
    documents: Documents
    top_n: int | None = Field(None, description="Best N results; null, absent or 0 mean all.")
    max_tokens_per_doc: int | None = Field(
        None, description="Text documents longer than this are truncated (never rejected).")


class RerankRequest(_RerankBase):
    """``POST /v1/rerank`` and ``/rerank``: Jina's shape, also Cohere v1's and vLLM's."""

    return_documents: bool | None = Field(True, description="Echo each document (null: true).")
    rank_fields: list[str] | None = Field(None, description="Cohere v1: keys of object "
                                          "documents to rank on, in order.")
    max_chunks_per_doc: int | None = Field(None, description="Cohere v1; accepted, documents "
                                           "are truncated rather than chunked.")


class CohereV2RerankRequest(_RerankBase):
    """``POST /v2/rerank``: Cohere's v2 shape (``priority`` and other fields are ignored)."""


class Usage(BaseModel):
    """Tokens the model read, image tokens included."""

    total_tokens: int


class ApiVersion(BaseModel):
    version: str


class BilledUnits(BaseModel):
    search_units: int


class TokenCounts(BaseModel):
    input_tokens: int
    output_tokens: int


class Meta(BaseModel):
    """Cohere's ``meta``: one search unit per 100 documents, tokens counted for real."""

    api_version: ApiVersion
    billed_units: BilledUnits
    tokens: TokenCounts


class RerankResult(BaseModel):
    """One ranked document; ``document`` when asked for, ``warnings`` when there are any."""

    index: int
    relevance_score: float
    document: dict[str, Any] | None = None
    warnings: list[str] | None = None
    page: int | None = Field(None, description="m0rank extension: 1-based page of a PDF.")
    chunk: list[int] | None = Field(None, description="m0rank extension: [start, end) "
                                    "characters of the best window of a chunked text.")
    duplicate_of: int | None = Field(None, description="m0rank extension: index of the "
                                     "better-ranked document this one nearly duplicates.")


class RerankResponse(BaseModel):
    """Jina's response plus Cohere v1's ``id`` and ``meta`` (harmless to Jina clients)."""

    id: str
    model: str
    usage: Usage
    results: list[RerankResult]
    meta: Meta
    warnings: list[str] | None = None


class CohereV2Result(BaseModel):
    index: int
    relevance_score: float
    warnings: list[str] | None = None


class CohereV2RerankResponse(BaseModel):
    """Cohere v2's response."""

    id: str
    results: list[CohereV2Result]
    meta: Meta
    warnings: list[str] | None = None


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    created: int
    owned_by: str = "m0rank"


class ModelList(BaseModel):
    """``GET /v1/models`` in OpenAI's list shape."""

    object: str = "list"
    data: list[ModelCard]


class StatusResponse(BaseModel):
    status: str
    model: str | None = None


class ErrorDetail(BaseModel):
    type: str
    message: str
    code: int
    request_id: str


class ErrorBody(BaseModel):
    """Every error answer: ``detail`` (read by LangChain) and a structured ``error``."""

    detail: str
    error: ErrorDetail


@dataclass(frozen=True)
class RerankCall:
    """What the service needs, whichever API shape the request came in."""

    query: Any
    documents: list[Any]
    top_n: int | None
    max_tokens_per_doc: int | None
    rank_fields: tuple[str, ...] | None = None
    extensions: Extensions = field(default_factory=lambda: Extensions())


@dataclass(frozen=True)
class Extensions:
    """m0rank's extensions of a rerank call (see :class:`M0RankExtensions`)."""

    pages: Any = None
    chunk_size: int | None = None
    chunk_overlap: int | None = None
    dedup: bool = False
    diversity: float | None = None


@dataclass(frozen=True)
class Ranking:
    """The service's answer: ranked indices, per-document scores and echo forms."""

    order: list[int]
    scores: list[PairScore]
    documents: list[dict[str, Any]]
    total_tokens: int
    warnings: list[str]
    indices: list[int] | None = None  # input document of each score (PDF pages, chunks)
    duplicates: dict[int, int] = field(default_factory=dict)  # score -> document it repeats

    def index(self, position: int) -> int:
        """The input document of score ``position`` (several pages share one document)."""
        return position if self.indices is None else self.indices[position]


def to_call(request: _RerankBase) -> RerankCall:
    """Plain dicts and strings from a parsed request (the library's accepted input shapes)."""
    query = request.query
    raw_query = query if isinstance(query, str) else query.model_dump(exclude_none=True)
    documents = request.documents
    if isinstance(documents, ContentDocuments):
        raw_docs: list[Any] = [{"content": [part.model_dump(exclude_none=True)]}
                               for part in documents.content]
    else:
        raw_docs = [d if isinstance(d, str) else d.model_dump(exclude_none=True)
                    for d in documents]
    rank_fields = getattr(request, "rank_fields", None)
    # vLLM spells "all documents" top_n: 0; the library's ranking knows only None for it
    top_n = None if request.top_n == 0 else request.top_n
    return RerankCall(query=raw_query, documents=raw_docs, top_n=top_n,
                      max_tokens_per_doc=request.max_tokens_per_doc,
                      rank_fields=tuple(rank_fields) if rank_fields else None,
                      extensions=_extensions(request))


def _extensions(request: M0RankExtensions) -> Extensions:
    return Extensions(pages=request.pages, chunk_size=request.chunk_size,
                      chunk_overlap=request.chunk_overlap, dedup=request.dedup is True,
                      diversity=request.diversity)


def jina_response(ranking: Ranking, *, request_id: str, model: str,
                  return_documents: bool) -> RerankResponse:
    """The ``/v1/rerank`` body."""
    results = [RerankResult(index=ranking.index(i), relevance_score=ranking.scores[i].score,
                            document=ranking.documents[i] if return_documents else None,
                            warnings=list(ranking.scores[i].warnings) or None,
                            **_extension_fields(ranking, i))
               for i in ranking.order]
    return RerankResponse(id=request_id, model=model, results=results,
                          usage=Usage(total_tokens=ranking.total_tokens),
                          meta=_meta(ranking, "1"), warnings=ranking.warnings or None)


def _extension_fields(ranking: Ranking, position: int) -> dict[str, Any]:
    """``page``, ``chunk`` and ``duplicate_of`` of one result (``None`` when unset)."""
    score = ranking.scores[position]
    return {"page": score.page, "chunk": list(score.chunk) if score.chunk else None,
            "duplicate_of": ranking.duplicates.get(position)}


def cohere_v2_response(ranking: Ranking, *, request_id: str) -> CohereV2RerankResponse:
    """The ``/v2/rerank`` body."""
    results = [CohereV2Result(index=ranking.index(i), relevance_score=ranking.scores[i].score,
                              warnings=list(ranking.scores[i].warnings) or None)
               for i in ranking.order]
    return CohereV2RerankResponse(id=request_id, results=results, meta=_meta(ranking, "2"),
                                  warnings=ranking.warnings or None)


def _meta(ranking: Ranking, version: str) -> Meta:
    return Meta(api_version=ApiVersion(version=version),
                billed_units=BilledUnits(search_units=max(1, math.ceil(len(ranking.scores) / 100))),
                tokens=TokenCounts(input_tokens=ranking.total_tokens, output_tokens=0))
