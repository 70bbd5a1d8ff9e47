"""Wire schemas (pydantic v2) of the Jina, Cohere v1/v2, vLLM (rerank and score), TEI and
infinity shapes, and the conversion between them and the service's :class:`RerankCall` /
:class:`Ranking`.

Request rules that real clients need (``shared/spec/peers-and-clients.md`` section 2):
unknown fields are ignored, but a peer's flag we do not implement (vLLM's
``truncate_prompt_tokens``, ``mm_processor_kwargs``, ``priority``) is refused by name when it
asks for something we would not do; ``null`` is accepted for every optional field; integers
and booleans are strict (``top_n: true`` is not 1); ``query`` is a string or an object;
``documents`` is a list of strings or objects (``{"text"}``, ``{"image"}``, both, vLLM's
``{"content": [parts]}``, or Cohere v1 objects with ``rank_fields``), or one bare string or
object, which is one document (current vLLM: ``"documents": {"content": [text, image]}`` is
one mixed document). Raw scores (vLLM ``use_activation: false``, infinity/TEI
``raw_scores: true``) return the model's logit instead of its probability.

TEI's ``/rerank`` body (``query`` + ``texts``) has its own closed schema and answer (a bare
list of ``{index, score, text?}``); :func:`dialect_of` tells the shapes apart on the paths
they share (``/rerank``, ``/invocations``).

This module imports neither torch nor the engine, so schema tests run in milliseconds.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from m0rank.errors import InvalidInputError
from m0rank.types import PairScore

__all__ = [
    "RerankRequest", "CohereV2RerankRequest", "RerankResponse", "CohereV2RerankResponse",
    "RerankResult", "ModelList", "ModelCard", "StatusResponse", "ErrorBody",
    "TeiRerankRequest", "TeiRank", "ScoreRequest", "ScoreResponse", "ScoreGroup",
    "RerankCall", "Ranking", "to_call", "tei_to_call", "score_groups", "dialect_of",
    "check_values", "MAX_NESTING", "jina_response", "cohere_v2_response", "tei_response",
    "score_response",
    "COHERE_V2_MAX_TOKENS_PER_DOC",
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


Query = str | QueryObject
# A bare string or object is ONE document (current vLLM; ``{"content": [text, image]}`` is one
# mixed text+image document).
DocumentInput = str | DocumentObject
Documents = list[DocumentInput] | DocumentInput
# Cohere v2 truncates a document to 4096 tokens when max_tokens_per_doc is omitted or null.
COHERE_V2_MAX_TOKENS_PER_DOC = 4096


class _VllmOptions(BaseModel):
    """vLLM's extra parameters of its rerank and score requests: honoured, or refused by name."""

    model_config = _ACCEPT
    use_activation: StrictBool | None = Field(
        None, description="vLLM: false returns the raw logit instead of the probability.")
    softmax: StrictBool | None = Field(None, description="vLLM's deprecated use_activation.")
    activation: StrictBool | None = Field(None, description="vLLM's deprecated use_activation.")
    truncate_prompt_tokens: StrictInt | None = Field(
        None, description="vLLM: only null or -1 (the model's whole length) are accepted; "
        "documents are always truncated to fit, see max_tokens_per_doc.")
    mm_processor_kwargs: dict[str, Any] | None = Field(
        None, description="vLLM: only null or {} are accepted; image resizing is the "
        "server's --min-pixels/--max-pixels.")
    priority: StrictInt | None = Field(
        None, description="vLLM/Cohere: only 0 or null are accepted (no priority scheduling).")


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


class _RerankBase(_VllmOptions, M0RankExtensions):
    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "model": "jina-reranker-m0", "query": "small language model for markdown",
        "documents": ["ReaderLM-v2 converts HTML to markdown.", {"image": "https://x/y.png"}],
        "top_n": 2}]})
    model: str | None = Field(None, description="Accepted for compatibility; the served "
                              "model answers whatever name is given.")
    query: Query
    documents: Documents = Field(description="A list of documents; one bare string or object "
                                 "is one document.")
    top_n: StrictInt | None = Field(None, description="Best N results; null, absent or 0 mean "
                                    "all.")
    max_tokens_per_doc: StrictInt | None = Field(
        None, description="Text documents longer than this are truncated (never rejected).")
    raw_scores: StrictBool | None = Field(
        None, description="infinity/TEI: true returns the raw logit instead of the probability.")


class RerankRequest(_RerankBase):
    """``POST /v1/rerank`` and ``/rerank``: Jina's shape, also Cohere v1's, vLLM's and
    infinity's."""

    return_documents: StrictBool | None = Field(True, description="Echo each document (null: "
                                                "true).")
    rank_fields: list[str] | None = Field(None, description="Cohere v1: keys of object "
                                          "documents to rank on, in order.")
    max_chunks_per_doc: StrictInt | None = Field(None, description="Cohere v1; accepted, "
                                                 "documents are truncated rather than chunked.")


class CohereV2RerankRequest(_RerankBase):
    """``POST /v2/rerank``: Cohere's v2 shape (also vLLM's). ``max_tokens_per_doc`` defaults
    to 4096 as at Cohere."""


class TeiRerankRequest(BaseModel):
    """TEI's ``POST /rerank`` body (``router/src/http/types.rs``): TEI's fields only, so a
    field TEI does not have (``top_n``, ``documents``) is an error rather than ignored."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "query": "What is Deep Learning?", "texts": ["Deep Learning is ..."],
        "raw_scores": False, "return_text": True}]})
    query: StrictStr
    texts: list[StrictStr]
    truncate: StrictBool | None = Field(
        None, description="Texts are always truncated to fit the model (see docs/server.md).")
    truncation_direction: Literal["right", "Right", "left", "Left"] | None = Field(
        None, description="Only right: texts are truncated at their end.")
    raw_scores: StrictBool | None = Field(False, description="true: the raw logit.")
    return_text: StrictBool | None = Field(False, description="Echo each text.")


ScoreInputs = list[DocumentInput] | DocumentInput


class ScoreRequest(_VllmOptions):
    """vLLM's ``POST /score``: one pair of sides, ``queries``/``documents`` (or ``items``),
    ``text_1``/``text_2`` or ``data_1``/``data_2``. One query scores every document (1:N);
    N queries score N documents pairwise (N:N)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "model": "jina-reranker-m0", "queries": "small language model for markdown",
        "documents": ["ReaderLM-v2 converts HTML to markdown.", "A sourdough recipe."]}]})
    model: str | None = None
    queries: ScoreInputs | None = None
    documents: ScoreInputs | None = None
    items: ScoreInputs | None = None
    text_1: ScoreInputs | None = None
    text_2: ScoreInputs | None = None
    data_1: ScoreInputs | None = None
    data_2: ScoreInputs | None = None


class Usage(BaseModel):
    """Tokens the model read, image tokens included (``prompt_tokens`` as in vLLM's
    ``RerankUsage`` and infinity's usage: a reranker's tokens are all prompt tokens)."""

    prompt_tokens: int
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
    page: int | None = Field(None, description="m0rank extension: 1-based page of a PDF.")
    chunk: list[int] | None = Field(None, description="m0rank extension: [start, end) "
                                    "characters of the best window of a chunked text.")
    duplicate_of: int | None = Field(None, description="m0rank extension: index of the "
                                     "better-ranked document this one nearly duplicates.")


class CohereV2RerankResponse(BaseModel):
    """Cohere v2's response."""

    id: str
    results: list[CohereV2Result]
    meta: Meta
    warnings: list[str] | None = None


class TeiRank(BaseModel):
    """One entry of TEI's ``/rerank`` answer (a bare JSON list of these, best first)."""

    index: int
    text: str | None = None
    score: float


class ScoreData(BaseModel):
    index: int
    object: str = "score"
    score: float


class ScoreUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int
    completion_tokens: int = 0


class ScoreResponse(BaseModel):
    """vLLM's ``ScoreResponse``: one score per pair, in input order."""

    id: str
    object: str = "list"
    created: int
    model: str
    data: list[ScoreData]
    usage: ScoreUsage


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
    raw_scores: bool = False
    # Names errors use: the request's own (TEI's texts[2], vLLM score's text_2[5]).
    query_field: str = "query"
    document_fields: tuple[str, ...] | None = None
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
    """The service's answer: ranked indices, per-document scores and echo forms.

    With ``raw_scores`` the order and :meth:`value` are by the model's logit."""

    order: list[int]
    scores: list[PairScore]
    documents: list[dict[str, Any]]
    total_tokens: int
    warnings: list[str]
    raw_scores: bool = False
    indices: list[int] | None = None  # input document of each score (PDF pages, chunks)
    duplicates: dict[int, int] = field(default_factory=dict)  # score -> document it repeats

    def index(self, position: int) -> int:
        """The input document of score ``position`` (several pages share one document)."""
        return position if self.indices is None else self.indices[position]

    def value(self, index: int) -> float:
        """The score reported for document ``index``: the logit when raw scores were asked."""
        score = self.scores[index]
        return score.logit if self.raw_scores else score.score


@dataclass(frozen=True)
class ScoreGroup:
    """Pairs of a score request that share a query: one service call, and where each of its
    documents sits in the request's pair list."""

    call: RerankCall
    indices: list[int]


def to_call(request: _RerankBase) -> RerankCall:
    """Plain dicts and strings from a parsed request (the library's accepted input shapes).

    Raises:
        InvalidInputError: A peer's flag we do not implement, or text that is not Unicode.
    """
    documents = request.documents
    items = documents if isinstance(documents, list) else [documents]
    rank_fields = getattr(request, "rank_fields", None)
    # vLLM spells "all documents" top_n: 0; the library's ranking knows only None for it
    top_n = None if request.top_n == 0 else request.top_n
    max_tokens = request.max_tokens_per_doc
    if max_tokens is None and isinstance(request, CohereV2RerankRequest):
        max_tokens = COHERE_V2_MAX_TOKENS_PER_DOC
    call = _call(_plain(request.query), [_plain(d) for d in items], top_n=top_n,
                 max_tokens_per_doc=max_tokens, raw_scores=_raw_scores(request),
                 rank_fields=tuple(rank_fields) if rank_fields else None)
    return replace(call, extensions=_extensions(request))


def _extensions(request: M0RankExtensions) -> Extensions:
    return Extensions(pages=request.pages, chunk_size=request.chunk_size,
                      chunk_overlap=request.chunk_overlap, dedup=request.dedup is True,
                      diversity=request.diversity)


def tei_to_call(request: TeiRerankRequest) -> RerankCall:
    """The call for a TEI body; texts are truncated at their end, so ``left`` is refused."""
    if (request.truncation_direction or "right").lower() == "left":
        raise InvalidInputError("truncation_direction 'left' is not supported: texts are "
                                "truncated at their end (send 'right' or omit it)")
    return _call(request.query, list(request.texts), top_n=None, max_tokens_per_doc=None,
                 raw_scores=request.raw_scores is True,
                 document_fields=_side_fields("texts", request.texts))


def score_groups(request: ScoreRequest) -> list[ScoreGroup]:
    """Service calls for vLLM's ``/score``: 1:N (one query, N documents) or N:N (pairwise),
    one call per distinct query.

    Raises:
        InvalidInputError: Not exactly one pair of sides, an empty side, or lengths that are
            neither 1:N nor N:N.
    """
    (name_1, side_1), (name_2, side_2) = _score_sides(request)
    first = [_plain(x) for x in (side_1 if isinstance(side_1, list) else [side_1])]
    second = [_plain(x) for x in (side_2 if isinstance(side_2, list) else [side_2])]
    names_1, names_2 = _side_fields(name_1, side_1), _side_fields(name_2, side_2)
    for name, side in ((name_1, first), (name_2, second)):
        if not side:
            raise InvalidInputError(f"{name} must not be empty")
    if len(first) > 1 and len(first) != len(second):
        raise InvalidInputError(f"{name_1} has {len(first)} items and {name_2} {len(second)}: "
                                f"send one {name_1} item (scored against every {name_2} "
                                f"item) or as many as {name_2} (scored pairwise)")
    queries = first * len(second) if len(first) == 1 else first
    query_names = names_1 * len(second) if len(first) == 1 else names_1
    by_query: dict[str, list[int]] = {}
    for i, query in enumerate(queries):
        by_query.setdefault(json.dumps(query, sort_keys=True), []).append(i)
    raw = _raw_scores(request)
    return [ScoreGroup(call=_call(queries[indices[0]], [second[i] for i in indices],
                                  top_n=None, max_tokens_per_doc=None, raw_scores=raw,
                                  query_field=query_names[indices[0]],
                                  document_fields=tuple(names_2[i] for i in indices)),
                       indices=indices)
            for indices in by_query.values()]


def dialect_of(payload: Any) -> Literal["rerank", "tei", "score"] | None:
    """Which request a JSON body is, on the paths that take several (``/rerank``,
    ``/invocations``): TEI's has ``texts`` and no ``documents``; a rerank body has ``query``;
    a score body has one of vLLM's score sides."""
    if not isinstance(payload, dict):
        return None
    if "texts" in payload and "documents" not in payload:
        return "tei"
    if "query" in payload:
        return "rerank"
    if {"queries", "text_1", "data_1"} & payload.keys():
        return "score"
    return None


def _call(query: Any, documents: list[Any], *, top_n: int | None,
          max_tokens_per_doc: int | None, raw_scores: bool,
          rank_fields: tuple[str, ...] | None = None, query_field: str = "query",
          document_fields: tuple[str, ...] | None = None) -> RerankCall:
    check_values(query, query_field)
    for i, document in enumerate(documents):
        check_values(document, document_fields[i] if document_fields else f"documents[{i}]")
    return RerankCall(query=query, documents=documents, top_n=top_n,
                      max_tokens_per_doc=max_tokens_per_doc, rank_fields=rank_fields,
                      raw_scores=raw_scores, query_field=query_field,
                      document_fields=document_fields)


def _side_fields(name: str, side: Any) -> tuple[str, ...]:
    """Error names of one side's items: ``texts[2]``, or ``text_1`` for a bare item."""
    if isinstance(side, list):
        return tuple(f"{name}[{i}]" for i in range(len(side)))
    return (name,)


def _plain(value: Any) -> Any:
    return value if isinstance(value, str) else value.model_dump(exclude_none=True)


def _score_sides(request: ScoreRequest) -> tuple[tuple[str, Any], tuple[str, Any]]:
    given = [name for pair in _SCORE_PAIRS for name in pair if getattr(request, name) is not None]
    for pair in _SCORE_PAIRS:
        if sorted(set(given)) == sorted(pair):
            return tuple((name, getattr(request, name)) for name in pair)  # type: ignore[return-value]
    raise InvalidInputError(f"a score request needs exactly one pair of sides: queries and "
                            f"documents, queries and items, text_1 and text_2, or data_1 and "
                            f"data_2; got {sorted(set(given)) or 'none'}")


_SCORE_PAIRS = (("queries", "documents"), ("queries", "items"), ("text_1", "text_2"),
                ("data_1", "data_2"))


def _raw_scores(request: _VllmOptions) -> bool:
    """Whether the caller asked for logits; refuses vLLM flags we would silently not honour."""
    _refuse_unsupported(request)
    activation = next((flag for flag in (request.use_activation, request.softmax,
                                         request.activation) if flag is not None), None)
    raw = getattr(request, "raw_scores", None)
    if raw is not None and activation is not None and raw is activation:
        raise InvalidInputError(f"raw_scores={json.dumps(raw)} contradicts use_activation="
                                f"{json.dumps(activation)}; send one of them")
    return raw is True or activation is False


def _refuse_unsupported(request: _VllmOptions) -> None:
    tokens = request.truncate_prompt_tokens
    if tokens is not None and tokens != -1:
        raise InvalidInputError(f"truncate_prompt_tokens is not supported (got {tokens}): "
                                f"documents are always truncated to fit the model; send "
                                f"max_tokens_per_doc to truncate them shorter, or -1 or null")
    if request.mm_processor_kwargs:
        raise InvalidInputError(f"mm_processor_kwargs is not supported (got keys "
                                f"{sorted(request.mm_processor_kwargs)}): image resizing is "
                                f"set by the server's --min-pixels and --max-pixels")
    if request.priority not in (None, 0):
        raise InvalidInputError(f"priority is not supported (got {request.priority}): "
                                f"requests are not scheduled by priority; send 0 or null")


_SURROGATE = re.compile("[\ud800-\udfff]")


# Deepest nesting accepted inside a query or document (content parts need 4 levels): the
# response echoes documents, and serialisers recurse, so a value nested some hundreds of levels
# deep (still under the JSON parser's limit) would otherwise fail as a 500 when answering.
MAX_NESTING = 32


def check_values(value: Any, field: str) -> None:
    """Refuse what would fail later as a 500: lone UTF-16 surrogates (JSON ``"\\ud800"``), which
    no tokenizer or JSON encoder takes, and nesting deeper than :data:`MAX_NESTING`. Iterative,
    so the check itself cannot exhaust the stack.

    Raises:
        InvalidInputError: Naming the field, e.g. ``documents[2].text``.
    """
    stack = [(value, field, 0)]
    while stack:
        item, name, depth = stack.pop()
        if isinstance(item, str):
            found = None if item.isascii() else _SURROGATE.search(item)
            if found:
                raise InvalidInputError(
                    f"{name} contains a lone surrogate \\u{ord(found.group()):04x} at "
                    f"character {found.start()}; text must be valid Unicode")
        elif isinstance(item, (dict, list)) and depth >= MAX_NESTING:
            raise InvalidInputError(f"{name} is nested more than {MAX_NESTING} levels deep")
        elif isinstance(item, dict):
            stack.extend((key, f"{name} key", depth + 1) for key in item)
            stack.extend((v, _child(name, f".{k}", depth), depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, _child(name, f"[{i}]", depth), depth + 1)
                         for i, v in enumerate(item))


def _child(name: str, step: str, depth: int) -> str:
    """Names grow for the first levels only (``documents[0].content[1].text``); deeper
    values are named by their ancestor, so a message stays short."""
    return name + step if depth < _NAMED_LEVELS else name


_NAMED_LEVELS = 4


def jina_response(ranking: Ranking, *, request_id: str, model: str,
                  return_documents: bool) -> RerankResponse:
    """The ``/v1/rerank`` body."""
    results = [RerankResult(index=ranking.index(i), relevance_score=ranking.value(i),
                            document=ranking.documents[i] if return_documents else None,
                            warnings=list(ranking.scores[i].warnings) or None,
                            **_extension_fields(ranking, i))
               for i in ranking.order]
    return RerankResponse(id=request_id, model=model, results=results,
                          usage=Usage(prompt_tokens=ranking.total_tokens,
                                      total_tokens=ranking.total_tokens),
                          meta=_meta(ranking, "1"), warnings=ranking.warnings or None)


def _extension_fields(ranking: Ranking, position: int) -> dict[str, Any]:
    """``page``, ``chunk`` and ``duplicate_of`` of one result (``None`` when unset)."""
    score = ranking.scores[position]
    return {"page": score.page, "chunk": list(score.chunk) if score.chunk else None,
            "duplicate_of": ranking.duplicates.get(position)}


def cohere_v2_response(ranking: Ranking, *, request_id: str) -> CohereV2RerankResponse:
    """The ``/v2/rerank`` body."""
    results = [CohereV2Result(index=ranking.index(i), relevance_score=ranking.value(i),
                              warnings=list(ranking.scores[i].warnings) or None,
                              **_extension_fields(ranking, i))
               for i in ranking.order]
    return CohereV2RerankResponse(id=request_id, results=results, meta=_meta(ranking, "2"),
                                  warnings=ranking.warnings or None)


def tei_response(ranking: Ranking, texts: list[str], *, return_text: bool) -> list[TeiRank]:
    """TEI's ``/rerank`` answer: every text, best first (TEI has no ``top_n``)."""
    return [TeiRank(index=ranking.index(p), score=ranking.value(p),
                    text=texts[ranking.index(p)] if return_text else None)
            for p in ranking.order]


def score_response(groups: list[tuple[ScoreGroup, Ranking]], *, request_id: str, model: str,
                   created: int) -> ScoreResponse:
    """vLLM's ``/score`` answer: one score per pair, in the order of the pairs."""
    values: dict[int, float] = {}
    for group, ranking in groups:
        # ascending, so a document scored several times (PDF pages) keeps its best score
        values.update((group.indices[ranking.index(p)], ranking.value(p))
                      for p in sorted(range(len(ranking.scores)), key=ranking.value))
    tokens = sum(ranking.total_tokens for _, ranking in groups)
    return ScoreResponse(id=request_id, created=created, model=model,
                         data=[ScoreData(index=i, score=values[i]) for i in sorted(values)],
                         usage=ScoreUsage(prompt_tokens=tokens, total_tokens=tokens))


def _meta(ranking: Ranking, version: str) -> Meta:
    return Meta(api_version=ApiVersion(version=version),
                billed_units=BilledUnits(search_units=max(1, math.ceil(len(ranking.scores) / 100))),
                tokens=TokenCounts(input_tokens=ranking.total_tokens, output_tokens=0))
