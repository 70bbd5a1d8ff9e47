"""The server's side of m0rank's document extensions: PDFs, chunking, dedup and diversity.

The library's helpers do the work (``m0rank.engine.units``, ``m0rank.engine.ranking``,
``m0rank.preprocessing.pdf``); this module only adds what the server does differently:

- PDF bytes come through the image resolver's fetch (same SSRF guard, timeouts, redirects
  and media-folder rule as images): :func:`fetch_pdf_bytes` is the one place that calls it;
- rendering runs off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from m0rank.config import PdfLimits
from m0rank.engine.diversity import fingerprint, mark_duplicates
from m0rank.engine.ranking import rank_order
from m0rank.engine.units import Unit, chunk_units, document_unit, page_units
from m0rank.errors import InvalidInputError, describe_value
from m0rank.preprocessing.chunking import ChunkOptions
from m0rank.preprocessing.images import is_url
from m0rank.preprocessing.pdf import PdfPage, check_pdf_size, parse_pages, render_pdf
from m0rank.server.protocol import Extensions
from m0rank.types import Document, PairScore

if TYPE_CHECKING:
    from m0rank.server.images import ImageResolver

__all__ = ["fetch_pdf_bytes", "read_pages", "expand_units", "rank_units", "unit_echo",
           "THUMBNAIL_WIDTH"]

THUMBNAIL_WIDTH = 160  # pixels: enough to recognise a page in a result list


async def fetch_pdf_bytes(resolver: ImageResolver, source: Any, field: str,
                          limits: PdfLimits) -> bytes:
    """A PDF's bytes by the image rules: URLs through the SSRF-guarded fetch, base64 and data
    URIs decoded, paths only under the operator's media folder."""
    if not isinstance(source, str) or not source.strip():
        raise InvalidInputError(f"{field} must be a PDF URL, base64 string or data URI, got "
                                f"{describe_value(source)}")
    data = await resolver.fetch_bytes(source.strip(), field, media_types=("application/pdf",))
    check_pdf_size(len(data), field, limits)
    return data


async def read_pages(resolver: ImageResolver, document: Document, field: str,
                     pages: tuple[int, ...] | None, limits: PdfLimits) -> list[PdfPage]:
    """The selected pages of a PDF document, rendered in a worker thread."""
    data = await fetch_pdf_bytes(resolver, document.pdf, f"{field}.pdf", limits)
    return await asyncio.to_thread(render_pdf, data, f"{field}.pdf",
                                   pages=document.pages or pages, limits=limits)


async def expand_units(resolver: ImageResolver, documents: Sequence[Document],
                       fields: Sequence[str], extensions: Extensions, *, use_text_layer: bool,
                       limits: PdfLimits) -> list[Unit]:
    """Scoring units of resolved documents: PDF pages, then text windows (``chunk_size``)."""
    pages = parse_pages(extensions.pages)
    rendered = await asyncio.gather(*[
        read_pages(resolver, doc, field, pages, limits)
        for doc, field in zip(documents, fields, strict=True) if doc.pdf is not None])
    units: list[Unit] = []
    pdfs = iter(rendered)
    for index, (doc, field) in enumerate(zip(documents, fields, strict=True)):
        if doc.pdf is None:
            units.append(document_unit(index, doc, field))
        else:
            units.extend(page_units(index, next(pdfs), field, use_text_layer=use_text_layer))
    return chunk_units(units, _chunking(extensions))


def rank_units(units: Sequence[Unit], scores: Sequence[PairScore], values: Sequence[float],
               top_n: int | None, extensions: Extensions) -> tuple[list[int], dict[int, int]]:
    """Ranked unit positions (by MMR with ``diversity``) and, with ``dedup``, the document
    index each near-duplicate repeats."""
    wanted = extensions.dedup or extensions.diversity is not None
    prints = [fingerprint(unit.source) for unit in units] if wanted else None
    order = rank_order(values, top_n, diversity=extensions.diversity, fingerprints=prints)
    if not extensions.dedup or prints is None:
        return order, {}
    return order, {position: units[earlier].index
                   for position, earlier in mark_duplicates(order, prints).items()}


def unit_echo(echo: dict[str, Any], unit: Unit) -> dict[str, Any]:
    """The document echoed for one result: a PDF page echoes ``page`` and a small JPEG
    ``thumbnail`` (data URI) instead of the whole file's base64; others echo as sent."""
    if unit.page is None:
        return echo
    source = echo.get("pdf")
    shown = source if isinstance(source, str) and is_url(source) else "<pdf>"
    return {"pdf": shown, "page": unit.page, "thumbnail": _thumbnail(unit.source.images[0])}


def _thumbnail(image: Any) -> str:
    small = image.copy()
    small.thumbnail((THUMBNAIL_WIDTH, THUMBNAIL_WIDTH * 2))
    buffer = io.BytesIO()
    small.convert("RGB").save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _chunking(extensions: Extensions) -> ChunkOptions | None:
    if extensions.chunk_size is None:
        if extensions.chunk_overlap:
            raise InvalidInputError("chunk_overlap needs chunk_size")
        return None
    return ChunkOptions(chunk_size=extensions.chunk_size,
                        chunk_overlap=extensions.chunk_overlap or 0)
