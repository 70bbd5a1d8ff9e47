"""Small PDFs for tests and benchmarks: born-digital (a text layer) and scanned (images only).

Born-digital files are written by hand (PDF 1.4, one Helvetica text object per line, a
correct cross-reference table), so tests need no PDF-writing dependency; PDFium renders the
standard Helvetica font with its built-in metrics. Scanned files are PIL's PDF writer.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

__all__ = ["text_pdf", "image_pdf"]

_LETTER = (612, 792)  # points


def text_pdf(pages: Sequence[Sequence[str]], *, font_size: int = 16,
             size: tuple[int, int] = _LETTER) -> bytes:
    """A PDF whose page ``i`` shows the lines ``pages[i]`` (Latin-1 text) with a text layer."""
    width, height = size
    objects: list[bytes] = [b"", b""]  # catalog and page tree, filled in below
    font_id = 3
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    kids = []
    for lines in pages:
        stream = _content(lines, font_size, height)
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content_id = len(objects)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents %d 0 R "
                       b"/Resources << /Font << /F1 %d 0 R >> >> >>"
                       % (width, height, content_id, font_id))
        kids.append(len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % k for k in kids), len(kids))
    return _assemble(objects)


def image_pdf(images: Sequence[Image.Image]) -> bytes:
    """A scanned-style PDF: one page per image, no text layer."""
    buffer = io.BytesIO()
    first, *rest = [image.convert("RGB") for image in images]
    first.save(buffer, format="PDF", save_all=True, append_images=rest, resolution=96.0)
    return buffer.getvalue()


def _content(lines: Sequence[str], font_size: int, height: int) -> bytes:
    leading = int(font_size * 1.4)
    parts = [b"BT /F1 %d Tf %d TL 50 %d Td" % (font_size, leading, height - 60)]
    for line in lines:
        escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        parts.append(b"(" + escaped.encode("latin-1") + b") Tj T*")
    parts.append(b"ET")
    return b"\n".join(parts)


def _assemble(objects: list[bytes]) -> bytes:
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)
