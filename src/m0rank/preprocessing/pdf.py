"""PDF documents: read the file from any source, render pages, keep each page's text layer.

A document ``{"pdf": SRC}`` stands for its pages; each page is ranked as an image document
(``RankResult.page`` says which). Pages are rendered with PDFium (``pypdfium2``, BSD/Apache)
at the area the model resizes to anyway (``PdfLimits.render_pixels``, the reference's
``max_pixels``), so rendering finer would only be thrown away by the image processor.

The text layer is kept next to the pixels (``Document.text_layer``): families that read text
rather than pixels (``RerankerArchitecture.reads_text_layer``: the offline model, text
cross-encoders) get a born-digital page as its text and need no OCR; an image-only page
(a scan) has no text layer and reaches every family as an image.

Sources follow the image rules (``m0rank.preprocessing.images``): a path, an http(s) URL,
base64 text or a ``data:application/pdf;base64,`` URI, or bytes. The server fetches URLs
itself (SSRF guard) and hands the bytes to :func:`render_pdf`.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image

from m0rank.config import ImageLimits, PdfLimits
from m0rank.errors import (
    ImageError,
    InputTooLargeError,
    InvalidInputError,
    MissingDependencyError,
    describe_value,
)
from m0rank.preprocessing.images import decode_base64_image, fetch_image_bytes, is_url
from m0rank.types import Document

__all__ = ["PdfPage", "read_pdf_bytes", "render_pdf", "parse_pages", "page_document",
           "check_pdf_size", "PDF_MAGIC"]

PDF_MAGIC = b"%PDF-"
_POINTS_PER_INCH = 72.0
_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
# PDFium is not thread-safe (pypdfium2 documents one document at a time per process), and
# the engine and server call this from worker threads: one lock serialises rendering.
_PDFIUM_LOCK = threading.Lock()


@dataclass(frozen=True)
class PdfPage:
    """One rendered page.

    Attributes:
        number: 1-based page number in the file.
        image: The page as an RGB image, about ``render_pixels`` in area.
        text: The page's text layer (empty for scanned, image-only pages).
    """

    number: int
    image: Image.Image
    text: str


def read_pdf_bytes(source: Any, field: str, limits: PdfLimits | None = None,
                   image_limits: ImageLimits | None = None) -> bytes:
    """The bytes of a PDF source (path, URL, base64, data URI or bytes), size-checked.

    URLs are fetched with the image rules (``image_limits``: timeout, redirects), the byte
    cap being ``limits.max_bytes``.

    Raises:
        InvalidInputError: Not a supported source; ImageError: unreadable file or base64.
        InputTooLargeError: Over ``limits.max_bytes``.
    """
    limits = limits or PdfLimits()
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, str) and source.strip():
        data = _read_text_source(source.strip(), field, limits, image_limits or ImageLimits())
    else:
        raise InvalidInputError(f"{field} must be a path, URL, base64 string, data URI or bytes "
                                f"of a PDF, got {describe_value(source)}")
    check_pdf_size(len(data), field, limits)
    return data


def check_pdf_size(size: int, field: str, limits: PdfLimits) -> None:
    """Refuse a PDF over ``limits.max_bytes`` (413 over HTTP)."""
    if size > limits.max_bytes:
        raise InputTooLargeError(f"{field} is over the PDF size limit: {size} bytes > "
                                 f"{limits.max_bytes}")


def render_pdf(data: bytes, field: str, *, pages: Sequence[int] | None = None,
               limits: PdfLimits | None = None) -> list[PdfPage]:
    """Render the selected pages of a PDF, each with its text layer.

    Args:
        data: The file's bytes.
        field: Where it came from (``"documents[2].pdf"``), named in errors.
        pages: 1-based pages to read, in the order given (``None``: all).
        limits: Size, page-count and resolution limits.

    Raises:
        ImageError: Not a PDF, or corrupt / encrypted.
        InvalidInputError: A selected page does not exist.
        InputTooLargeError: More pages than ``limits.max_pages``.
    """
    limits = limits or PdfLimits()
    check_pdf_size(len(data), field, limits)
    if not data.startswith(PDF_MAGIC):
        raise ImageError(f"{field} is not a PDF (starts {data[:8]!r})")
    pdfium = _pdfium()
    with _PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise ImageError(f"{field} is a corrupt or encrypted PDF ({exc})") from None
        try:
            numbers = _selected(pages, len(document), field, limits)
            return [_render_page(document, number, limits) for number in numbers]
        finally:
            document.close()


def parse_pages(value: Any, field: str = "pages") -> tuple[int, ...] | None:
    """1-based page numbers from ``None``, an int, a list of ints, or text like ``"1-3,7"``.

    Raises:
        InvalidInputError: Anything else, or a page below 1, naming ``field`` and the value.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidInputError(f"{field} must be page numbers like [1, 3] or '1-3,7', got "
                                f"{value!r}")
    if isinstance(value, int):
        value = [value]
    if isinstance(value, str):
        return _parse_ranges(value, field)
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        raise InvalidInputError(f"{field} must be 1-based page numbers like [1, 3] or "
                                f"'1-3,7', got {describe_value(value)}")
    return tuple(dict.fromkeys(value))


def page_document(page: PdfPage, *, use_text_layer: bool) -> Document:
    """The document a family scores for one page: the page image with its text layer, or,
    for families that read text (``use_text_layer``) and a page that has one, the text."""
    text = page.text if page.text.strip() else None
    if use_text_layer and text is not None:
        return Document(text=text, text_layer=text)
    return Document(images=(page.image,), text_layer=text)


def _parse_ranges(text: str, field: str) -> tuple[int, ...]:
    numbers: list[int] = []
    for part in text.split(","):
        match = _RANGE.match(part)
        first = int(match.group(1)) if match else 0
        last = int(match.group(2) or first) if match else 0
        if not match or first < 1 or last < first:
            raise InvalidInputError(f"{field} must be 1-based page numbers like '1-3,7', got "
                                    f"{text!r}")
        numbers.extend(range(first, last + 1))
    return tuple(dict.fromkeys(numbers))


def _selected(pages: Sequence[int] | None, count: int, field: str,
              limits: PdfLimits) -> list[int]:
    numbers = list(range(1, count + 1)) if pages is None else list(pages)
    missing = [n for n in numbers if not 1 <= n <= count]
    if missing:
        raise InvalidInputError(f"{field} has {count} pages; page {missing[0]} does not exist")
    if len(numbers) > limits.max_pages:
        raise InputTooLargeError(f"{field} has {len(numbers)} pages to read; the limit is "
                                 f"{limits.max_pages} (select some with 'pages')")
    return numbers


def _render_page(document: Any, number: int, limits: PdfLimits) -> PdfPage:
    """Render at the scale that makes the page's area ``render_pixels`` (caller holds the
    PDFium lock)."""
    page = document[number - 1]
    try:
        width, height = page.get_size()  # points
        scale = math.sqrt(limits.render_pixels / max(width * height, 1.0))
        bitmap = page.render(scale=scale)
        image = bitmap.to_pil().convert("RGB")
        textpage = page.get_textpage()
        text = textpage.get_text_range()
        textpage.close()
    finally:
        page.close()
    return PdfPage(number=number, image=image, text=text.replace("\r\n", "\n"))


def _read_text_source(source: str, field: str, limits: PdfLimits,
                      image_limits: ImageLimits) -> bytes:
    fetch_limits = replace(image_limits, max_bytes=limits.max_bytes)
    if not is_url(source) and not source.startswith("data:") and (
            os.path.exists(source) or source.endswith(".pdf")):
        return _read_file(source, field, limits)
    try:
        if is_url(source):
            return fetch_image_bytes(source, field, fetch_limits)
        return decode_base64_image(source, field, fetch_limits, media_types=("application/pdf",))
    except InputTooLargeError:  # the image helpers word it for images
        raise InputTooLargeError(f"{field} is over the PDF size limit: more than "
                                 f"{limits.max_bytes} bytes") from None


def _read_file(path: str, field: str, limits: PdfLimits) -> bytes:
    try:
        check_pdf_size(os.path.getsize(path), field, limits)
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ImageError(f"{field}: cannot read file {path!r} ({exc.strerror})") from None


def _pdfium() -> Any:
    try:
        import pypdfium2
    except ImportError:
        raise MissingDependencyError("reading PDFs needs pypdfium2: pip install "
                                     "'m0rank[pdf]'") from None
    return pypdfium2
