"""What is scored for each input document: its PDF pages and its text windows ("units").

A request's documents become scoring units before the engine runs and are folded back after
it, the same way in ``Reranker.rank`` / ``Reranker.score`` and in the server:

1. a PDF document becomes one unit per page (``page``), each ranked on its own, so ``top_n``
   counts pages (:func:`page_units`);
2. with ``chunk_size``, a long text becomes one unit per window (:func:`chunk_units`);
3. after scoring, the windows of one document fold into the best one (MaxP), the document's
   token count being the sum over all windows scored (:func:`fold_windows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from m0rank.preprocessing.chunking import ChunkOptions, split_text
from m0rank.preprocessing.pdf import PdfPage, page_document
from m0rank.types import Document, PairScore

__all__ = ["Unit", "page_units", "document_unit", "chunk_units", "fold_windows"]


@dataclass(frozen=True)
class Unit:
    """One thing the model scores.

    Attributes:
        index: Position of the input document it comes from.
        document: What the model reads (a page, a window of text, or the document itself).
        field: Name in error messages (``"documents[2]"``, ``"documents[2].page[3]"``).
        page: 1-based PDF page, else ``None``.
        span: ``[start, end)`` characters of the window in the document's text when chunked.
        whole: The page or document the unit belongs to (duplicates and diversity compare
            whole documents, not windows).
    """

    index: int
    document: Document
    field: str
    page: int | None = None
    span: tuple[int, int] | None = None
    whole: Document | None = None

    @property
    def source(self) -> Document:
        """The whole page or document this unit belongs to."""
        return self.whole if self.whole is not None else self.document


def document_unit(index: int, document: Document, field: str) -> Unit:
    """A document scored as it is (no pages, no windows yet)."""
    return Unit(index=index, document=document, field=field)


def page_units(index: int, pages: Sequence[PdfPage], field: str, *,
               use_text_layer: bool) -> list[Unit]:
    """One unit per rendered page of the PDF at input ``index`` (see ``page_document``); the
    unit's ``whole`` is the page image, whatever the family reads."""
    return [Unit(index=index, page=page.number, field=f"{field}.page[{page.number}]",
                 document=page_document(page, use_text_layer=use_text_layer),
                 whole=page_document(page, use_text_layer=False))
            for page in pages]


def chunk_units(units: Sequence[Unit], options: ChunkOptions | None) -> list[Unit]:
    """Split every text-only unit into windows (``span`` set on each); others unchanged.

    With ``options`` ``None`` (the default, reference behaviour) nothing is split.
    """
    if options is None:
        return list(units)
    out: list[Unit] = []
    for unit in units:
        text = unit.document.text
        if text is None or unit.document.images:
            out.append(unit)
            continue
        out.extend(replace(unit, document=Document(text=text[start:end]), span=(start, end),
                           whole=unit.source)
                   for start, end in split_text(text, options))
    return out


def fold_windows(units: Sequence[Unit], scores: Sequence[PairScore],
                 ) -> tuple[list[Unit], list[PairScore]]:
    """One (unit, score) per document or page: the best window (ties: the first), with
    ``chunk`` naming its span, ``page`` set, and ``num_tokens`` summed over all windows."""
    best: dict[tuple[int, int | None], int] = {}
    tokens: dict[tuple[int, int | None], int] = {}
    for position, (unit, score) in enumerate(zip(units, scores, strict=True)):
        key = (unit.index, unit.page)
        tokens[key] = tokens.get(key, 0) + score.num_tokens
        if key not in best or score.score > scores[best[key]].score:
            best[key] = position
    kept = sorted(best.values())
    folded = [replace(scores[p], page=units[p].page, chunk=units[p].span,
                      num_tokens=tokens[(units[p].index, units[p].page)]) for p in kept]
    return [units[p] for p in kept], folded
