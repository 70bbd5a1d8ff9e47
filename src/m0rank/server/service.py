"""The rerank use case behind every route: limits, coercion, async image resolution, batching.

Routes turn a wire request into a :class:`~m0rank.server.protocol.RerankCall`; this module
checks the operator's limits, coerces inputs with the library's own helpers (so the server
accepts exactly what ``Reranker.rank`` accepts), resolves images through the async
:class:`~m0rank.server.images.ImageResolver` (SSRF guard, cache), scores through the
cross-request :class:`~m0rank.server.batcher.Batcher`, and ranks.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from m0rank.config import DEFAULT_MAX_LENGTH, DEFAULT_MAX_QUERY_LENGTH, ScoreOptions
from m0rank.engine.ranking import check_top_n, rank_order
from m0rank.engine.units import Unit, fold_windows
from m0rank.errors import (
    InputTooLargeError,
    InvalidInputError,
    RequestTimeoutError,
    describe_value,
)
from m0rank.preprocessing.inputs import image_fields, to_document
from m0rank.server.auth import KeyLimits
from m0rank.server.batcher import Batcher
from m0rank.server.documents import expand_units, rank_units, unit_echo
from m0rank.server.lifecycle import Lifecycle
from m0rank.server.protocol import Extensions, Ranking, RerankCall
from m0rank.server.settings import ServerSettings
from m0rank.types import Document, PairScore

if TYPE_CHECKING:
    from m0rank.server.images import ImageResolver

__all__ = ["RerankService", "MAX_DOC_TOKENS", "estimate_tokens", "gather_cancelling"]

logger = logging.getLogger(__name__)

# The largest max_doc_length ScoreOptions accepts with the default lengths (10240 - 512):
# Cohere's max_tokens_per_doc is clamped to it, so a large value truncates and never rejects.
MAX_DOC_TOKENS = DEFAULT_MAX_LENGTH - DEFAULT_MAX_QUERY_LENGTH
_IMAGE_CONCURRENCY = 16
_TEMPLATE_TOKENS = 12  # jina-m0's prompt template, special and score tokens
T = TypeVar("T")


class RerankService:
    """Scores and ranks one request; shared by the Jina, Cohere v1 and Cohere v2 routes.

    Args:
        settings: Operator limits (documents, query length, timeout).
        batcher: The running cross-request batcher.
        resolver: Async image fetcher and cache.
        lifecycle: Refuses work while shutting down.
        limits: Per-key rate limits (tokens reserved before scoring, settled after).
    """

    def __init__(self, *, settings: ServerSettings, batcher: Batcher, resolver: ImageResolver,
                 lifecycle: Lifecycle, limits: KeyLimits) -> None:
        self.settings = settings
        self.batcher = batcher
        self.resolver = resolver
        self.lifecycle = lifecycle
        self.limits = limits
        self._image_slots = asyncio.Semaphore(_IMAGE_CONCURRENCY)

    async def rerank(self, call: RerankCall, key: str | None) -> Ranking:
        """Rank ``call.documents`` against ``call.query``; errors name the offending field.

        Raises:
            InvalidInputError: Malformed input (400); InputTooLargeError: over a limit (413).
            RequestTimeoutError: Not done within ``request_timeout_s`` (images included).
            ServiceUnavailableError, OverloadedError: see the batcher.
        """
        self.lifecycle.check_accepting()
        query = self._check_limits(call)
        timeout = self.settings.request_timeout_s
        try:
            return await asyncio.wait_for(self._rerank(call, query, key), timeout)
        except asyncio.TimeoutError:
            raise RequestTimeoutError(
                f"the request was not scored within {timeout:g} s; the server is busy, retry "
                f"later or send fewer documents") from None

    async def _rerank(self, call: RerankCall, query: Document, key: str | None) -> Ranking:
        top_n = check_top_n(call.top_n, none="null")
        options = ScoreOptions(max_doc_length=_max_doc_length(call.max_tokens_per_doc))
        fields = list(call.document_fields or _fields(len(call.documents)))
        documents = [to_document(_rank_fields(doc, call.rank_fields, field), field)
                     for doc, field in zip(call.documents, fields, strict=True)]
        resolved_query, *resolved = await gather_cancelling([
            self._resolve(doc, field)
            for doc, field in zip([query, *documents], [call.query_field, *fields],
                                  strict=True)])
        units = await expand_units(self.resolver, resolved, fields, call.extensions,
                                   use_text_layer=self.batcher.engine.model.reads_text_layer,
                                   limits=self.settings.pdf_limits)
        pairs = [(resolved_query, unit.document) for unit in units]
        reservation = self.limits.reserve(key, estimate_tokens(pairs, self.settings.max_pixels))
        try:
            scores = await self.batcher.score(pairs, options, [unit.field for unit in units])
        except BaseException:
            self.limits.release(reservation)
            raise
        units, scores = fold_windows(units, scores)
        total = sum(score.num_tokens for score in scores)
        self.limits.settle(reservation, total)
        echoes = [_echo(raw, doc) for raw, doc in zip(call.documents, documents, strict=True)]
        shown = [_with_passage(unit_echo(echoes[u.index], u), score.chunk)
                 for u, score in zip(units, scores, strict=True)]
        return _ranking(scores, shown, top_n, total, raw=call.raw_scores, units=units,
                        extensions=call.extensions)

    def _check_limits(self, call: RerankCall) -> Document:
        """Refuse requests over the server's limits; returns the coerced query."""
        if not call.documents:
            raise InvalidInputError("documents must not be empty")
        limit = self.settings.max_documents
        if len(call.documents) > limit:
            raise InputTooLargeError(f"documents has {len(call.documents)} items; this server "
                                     f"accepts at most {limit} per request")
        # Coerce first, so every query shape (string, {"text"}, vLLM content parts) is measured.
        query = to_document(call.query, call.query_field)
        limit = self.settings.max_query_chars
        if query.text is not None and len(query.text) > limit:
            raise InputTooLargeError(f"query is {len(query.text)} characters long; this server "
                                     f"accepts at most {limit}")
        return query

    async def _resolve(self, document: Document, field: str) -> Document:
        if not document.images:
            return document
        names = image_fields(field, len(document.images))
        images = await gather_cancelling([self._load(src, name)
                                for src, name in zip(document.images, names, strict=True)])
        return Document(text=document.text, images=tuple(images))

    async def _load(self, source: Any, field: str) -> Any:
        if not isinstance(source, str):
            raise InvalidInputError(f"{field} must be a URL, base64 string or data URI, got "
                                    f"{describe_value(source)}")
        async with self._image_slots:
            return await self.resolver.resolve(source, field)


def _ranking(scores: list[PairScore], echoes: list[dict[str, Any]], top_n: int | None,
             total: int, *, raw: bool = False, units: list[Unit] | None = None,
             extensions: Extensions | None = None) -> Ranking:
    """Ranked by what is reported: the logit when raw scores were asked (a saturated
    probability would tie where the logits do not). With ``units`` (PDF pages, chunked
    texts), each score is one unit and m0rank's extensions apply (``rank_units``)."""
    values = [score.logit if raw else score.score for score in scores]
    if units is None:
        order, duplicates, indices = rank_order(values, top_n), {}, None
    else:
        order, duplicates = rank_units(units, scores, values, top_n, extensions or Extensions())
        indices = [unit.index for unit in units]
    warnings = list(dict.fromkeys(w for score in scores for w in score.warnings))
    return Ranking(order=order, scores=scores, documents=echoes, total_tokens=total,
                   warnings=warnings, raw_scores=raw, indices=indices, duplicates=duplicates)


def estimate_tokens(pairs: Sequence[tuple[Document, Document]], max_pixels: int) -> int:
    """Tokens ``pairs`` will cost, estimated before tokenising (for the tokens-per-minute
    reservation): text at 3.5 UTF-8 bytes a token (about 4 characters of English, one CJK
    character), an image at its area up to ``max_pixels`` over 28 x 28 pixels a token, plus
    the prompt template. The exact count replaces it once the request is scored."""
    total = 0
    for query, document in pairs:
        total += _TEMPLATE_TOKENS
        for side in (query, document):
            total += math.ceil(len((side.text or "").encode("utf-8", "replace")) / 3.5)
            total += sum(min(image.width * image.height, max_pixels) // 784
                         for image in side.images if hasattr(image, "width"))
    return total


async def gather_cancelling(awaitables: Sequence[Awaitable[T]]) -> list[T]:
    """``asyncio.gather`` that cancels the others as soon as one fails."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _max_doc_length(max_tokens_per_doc: int | None) -> int | None:
    if max_tokens_per_doc is None:
        return None
    if max_tokens_per_doc < 1:
        raise InvalidInputError(f"max_tokens_per_doc must be a positive integer or null, got "
                                f"{max_tokens_per_doc}")
    return min(max_tokens_per_doc, MAX_DOC_TOKENS)


def _rank_fields(raw: Any, rank_fields: tuple[str, ...] | None, field: str) -> Any:
    """Cohere v1: an object document ranked on ``rank_fields`` becomes ``"key: value"`` lines."""
    if not rank_fields or not isinstance(raw, dict) or "image" in raw or "content" in raw:
        return raw
    lines = [f"{name}: {raw[name]}" for name in rank_fields if raw.get(name) is not None]
    if not lines:
        raise InvalidInputError(f"{field} has none of the rank_fields {list(rank_fields)}, "
                                f"got keys {sorted(raw)}")
    return {"text": "\n".join(lines)}


def _with_passage(echo: dict[str, Any], chunk: tuple[int, int] | None) -> dict[str, Any]:
    """A chunked text's echo gains ``passage``: the best window alone (m0rank extension)."""
    text = echo.get("text")
    if chunk is None or not isinstance(text, str):
        return echo
    return {**echo, "passage": text[chunk[0]:chunk[1]]}


def _echo(raw: Any, document: Document) -> dict[str, Any]:
    """The document as returned with ``return_documents``: ``{"text"}``/``{"image"}``, or the
    caller's own object (Cohere v1 objects keep their keys)."""
    if isinstance(raw, str) or "content" in raw:
        return document.to_dict()
    return dict(raw)


def _fields(count: int) -> list[str]:
    return [f"documents[{i}]" for i in range(count)]

