"""PDF reading: sources, text layer vs image-only pages, page selection and limits."""

from __future__ import annotations

import base64
import re

import pytest
from PIL import Image

from m0rank.config import PdfLimits
from m0rank.errors import ImageError, InputTooLargeError, InvalidInputError
from m0rank.preprocessing.inputs import to_document
from m0rank.preprocessing.pdf import page_document, parse_pages, read_pdf_bytes, render_pdf
from m0rank.testing.pdfs import image_pdf, text_pdf

PAGES = [["Cover page"], ["Budget tables"], ["Wind turbine blade fatigue results"]]


def test_text_layer_pdf_keeps_each_pages_text_and_renders_near_the_pixel_budget() -> None:
    pages = render_pdf(text_pdf(PAGES), "doc")
    assert [p.number for p in pages] == [1, 2, 3]
    assert [p.text for p in pages] == ["Cover page", "Budget tables",
                                       "Wind turbine blade fatigue results"]
    width, height = pages[0].image.size
    assert abs(width * height - PdfLimits().render_pixels) / PdfLimits().render_pixels < 0.01
    assert pages[0].image.mode == "RGB"


def test_image_only_pdf_has_no_text_layer_and_shows_the_pixels() -> None:
    dark = Image.new("RGB", (300, 400), (20, 20, 20))
    pages = render_pdf(image_pdf([Image.new("RGB", (300, 400), "white"), dark]), "doc")
    assert [p.text for p in pages] == ["", ""]
    assert pages[1].image.convert("L").getextrema()[1] < 60  # the dark scan, rendered


def test_page_document_gives_text_readers_the_text_layer_and_others_the_image() -> None:
    page = render_pdf(text_pdf(PAGES), "doc")[2]
    as_text = page_document(page, use_text_layer=True)
    as_image = page_document(page, use_text_layer=False)
    assert as_text.text == page.text and not as_text.images
    assert as_image.images == (page.image,) and as_image.text is None
    assert as_image.text_layer == page.text
    scanned = render_pdf(image_pdf([Image.new("RGB", (300, 400), "white")]), "doc")[0]
    assert page_document(scanned, use_text_layer=True).images  # no text layer: the image


def test_pages_selects_and_orders_pages() -> None:
    pages = render_pdf(text_pdf(PAGES), "doc", pages=parse_pages("3,1"))
    assert [p.number for p in pages] == [3, 1]


@pytest.mark.parametrize(("value", "expected"), [
    (None, None), (2, (2,)), ([3, 1, 3], (3, 1)), ("1-3,7", (1, 2, 3, 7)), (" 2 ", (2,)),
])
def test_parse_pages(value: object, expected: object) -> None:
    assert parse_pages(value) == expected


@pytest.mark.parametrize("value", [0, [0], "3-1", "a", [], True, [1.5]])
def test_parse_pages_rejects_bad_values(value: object) -> None:
    with pytest.raises(InvalidInputError, match="pages must be"):
        parse_pages(value)


def test_missing_page_and_page_limit_are_clear_errors() -> None:
    data = text_pdf(PAGES)
    with pytest.raises(InvalidInputError, match=re.escape("doc has 3 pages; page 5 does not")):
        render_pdf(data, "doc", pages=[5])
    with pytest.raises(InputTooLargeError, match="3 pages to read; the limit is 2"):
        render_pdf(data, "doc", limits=PdfLimits(max_pages=2))


def test_size_limit_and_not_a_pdf() -> None:
    data = text_pdf(PAGES)
    with pytest.raises(InputTooLargeError, match="over the PDF size limit"):
        read_pdf_bytes(data, "documents[0].pdf", PdfLimits(max_bytes=100))
    with pytest.raises(ImageError, match="is not a PDF"):
        render_pdf(b"GIF89a....", "doc")


def test_sources_path_base64_data_uri_and_bytes(tmp_path) -> None:  # noqa: ANN001
    data = text_pdf(PAGES)
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    encoded = base64.b64encode(data).decode()
    for source in (str(path), encoded, f"data:application/pdf;base64,{encoded}", data):
        assert read_pdf_bytes(source, "doc") == data


def test_to_document_accepts_a_pdf_dict_with_pages() -> None:
    document = to_document({"pdf": "x.pdf", "pages": "2-3"}, "documents[0]")
    assert document.pdf == "x.pdf" and document.pages == (2, 3)
    assert document.to_dict() == {"pdf": "x.pdf"}
    with pytest.raises(InvalidInputError, match=r"documents\[0\] must have either a 'pdf'"):
        to_document({"pdf": "x.pdf", "text": "t"}, "documents[0]")


def test_url_source_is_fetched_with_the_image_rules() -> None:
    """The library fetches a PDF URL like an image URL (timeouts, redirect cap), the byte cap
    being the PDF's."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    data = text_pdf(PAGES)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/pdf")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/report.pdf"
        assert read_pdf_bytes(url, "doc") == data
        with pytest.raises(InputTooLargeError, match="doc is over the PDF size limit"):
            read_pdf_bytes(url, "doc", PdfLimits(max_bytes=len(data) - 1))
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(InputTooLargeError, match="doc is over the PDF size limit"):
        read_pdf_bytes(base64.b64encode(data).decode(), "doc", PdfLimits(max_bytes=100))
