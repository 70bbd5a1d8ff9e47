"""Plain data types shared by every layer: documents, results and per-pair scores.

Only the standard library is imported here, so the types can be used (and type-checked)
without torch. Images are held as whatever the user gave (path, URL, base64 text, bytes or a
``PIL.Image``) until ``m0rank.preprocessing.images`` resolves them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = ["Modality", "Document", "RankResult", "PairScore", "CacheStats"]


class Modality(str, Enum):
    """What a query or document is made of."""

    TEXT = "text"
    IMAGE = "image"
    MIXED = "mixed"


@dataclass(frozen=True)
class Document:
    """A query or candidate document: text, one or more images, or both (mixed).

    Args:
        text: The text, or ``None`` for an image-only document.
        images: Image sources in order: a local path, an http(s) URL, base64 text (with or
            without a ``data:`` prefix), raw bytes, or a ``PIL.Image.Image``.
        pdf: A PDF source (path, URL, base64, data URI or bytes): the document stands for its
            pages, each ranked as an image document (``m0rank.preprocessing.pdf``).
        pages: 1-based pages of ``pdf`` to read (``None``: all, within the page limit).
        text_layer: The text a page's source carries beside its pixels (a PDF text layer);
            families that read text rather than pixels use it instead of OCR.

    Example:
        >>> Document(text="A cat on a mat").modality
        <Modality.TEXT: 'text'>
    """

    text: str | None = None
    images: tuple[Any, ...] = field(default=())
    pdf: Any = None
    pages: tuple[int, ...] | None = None
    text_layer: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.images, tuple):
            object.__setattr__(self, "images", tuple(self.images))
        if self.pages is not None and not isinstance(self.pages, tuple):
            object.__setattr__(self, "pages", tuple(self.pages))

    @property
    def modality(self) -> Modality:
        """``text``, ``image`` or ``mixed``, from which parts are present (a PDF is images)."""
        if self.images and self.text is not None:
            return Modality.MIXED
        return Modality.IMAGE if self.images or self.pdf is not None else Modality.TEXT

    def to_dict(self) -> dict[str, Any]:
        """The HTTP API's shape: ``{"text": ...}``, ``{"image": ...}`` or both keys.

        Images that are not strings (bytes, PIL images) are shown as ``"<image>"``; the
        server keeps the caller's original strings.
        """
        out: dict[str, Any] = {}
        if self.text is not None:
            out["text"] = self.text
        if self.images:
            shown = [img if isinstance(img, str) else "<image>" for img in self.images]
            out["image"] = shown[0] if len(shown) == 1 else shown
        if self.pdf is not None:
            out["pdf"] = self.pdf if isinstance(self.pdf, str) else "<pdf>"
        return out


@dataclass(frozen=True)
class PairScore:
    """The engine's answer for one (query, document) pair.

    Attributes:
        score: Relevance in [0, 1].
        logit: The head's raw output (before the architecture's normalisation).
        num_tokens: Tokens the model read for this pair, image tokens included.
        warnings: Human-readable notes (for example, a photo the model cannot judge).
        page: 1-based PDF page this score is for (``None`` for other documents).
        chunk: ``[start, end)`` character span of the best window when the document was
            chunked (``chunk_size``), else ``None``; ``num_tokens`` then counts every window.
    """

    score: float
    logit: float
    num_tokens: int
    warnings: tuple[str, ...] = ()
    page: int | None = None
    chunk: tuple[int, int] | None = None


@dataclass(frozen=True)
class RankResult:
    """One ranked document.

    Attributes:
        index: Position of the document in the input list.
        score: Relevance in [0, 1]; higher is more relevant.
        document: The input document, when ``return_documents=True``.
        warnings: Notes from the model about this document (empty for m0).
        page: 1-based page of a PDF document (``None`` for other documents); each page is
            its own result.
        chunk: ``[start, end)`` character span of the best-scoring window of a chunked text
            (``chunk_size``), else ``None``.
        duplicate_of: With ``dedup=True``, the index of the higher-ranked document this one
            nearly duplicates, else ``None``.
    """

    index: int
    score: float
    document: Document | None = None
    warnings: tuple[str, ...] = ()
    page: int | None = None
    chunk: tuple[int, int] | None = None
    duplicate_of: int | None = None


@dataclass(frozen=True)
class CacheStats:
    """Counters of one cache, as the server's ``/metrics`` reports them (``cache="<name>"``).

    Counters (hits, misses, evictions, and errors: I/O faults served as misses) only grow;
    the others are gauges read at that moment.
    A typed object rather than a dict of suffixed keys, so a new cache cannot be reported
    under a misspelt name.
    """

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    entries: int = 0
    bytes: int = 0
    max_bytes: int = 0
    errors: int = 0
