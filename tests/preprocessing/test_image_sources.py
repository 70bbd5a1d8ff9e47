"""Image sources, limits and errors (m0rank.preprocessing.images)."""

from __future__ import annotations

import base64
import http.server
import io
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from m0rank.config import ImageLimits
from m0rank.errors import ImageError, ImageFetchError, InputTooLargeError, InvalidInputError
from m0rank.preprocessing.images import load_image


def _png_bytes(size: tuple[int, int] = (40, 30), color: tuple[int, int, int] = (10, 20, 30),
               mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 128).save(buffer, format="PNG")
    return buffer.getvalue()


def test_every_source_kind_gives_the_same_rgb_pixels(tmp_path: Path) -> None:
    data = _png_bytes()
    path = tmp_path / "page.png"
    path.write_bytes(data)
    b64 = base64.b64encode(data).decode()
    sources = [data, str(path), b64, f"data:image/png;base64,{b64}", Image.open(io.BytesIO(data))]
    images = [load_image(src, "documents[0].image") for src in sources]
    for image in images:
        assert image.mode == "RGB" and image.size == (40, 30)
        assert image.getpixel((5, 5)) == (10, 20, 30)


def test_grayscale_and_rgba_are_converted_to_rgb() -> None:
    assert load_image(_png_bytes(mode="L"), "f").mode == "RGB"
    rgba = io.BytesIO()
    Image.new("RGBA", (20, 20), (1, 2, 3, 100)).save(rgba, format="PNG")
    assert load_image(rgba.getvalue(), "f").mode == "RGB"


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (60, 20), (200, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    loaded = load_image(buffer.getvalue(), "query.image")
    assert loaded.size == (20, 60)


def test_small_side_is_refused_with_field_and_size() -> None:
    with pytest.raises(ImageError, match=re.escape(
            "documents[2].image is 9x40 pixels; each side must be at least 10")):
        load_image(_png_bytes((9, 40)), "documents[2].image")


def test_extreme_aspect_ratio_is_refused() -> None:
    with pytest.raises(ImageError, match=re.escape(
            "documents[1].image is 2020x10 pixels; the aspect ratio 202.0 is over 200")):
        load_image(_png_bytes((2020, 10)), "documents[1].image")


def test_too_many_pixels_is_refused_before_decoding() -> None:
    limits = ImageLimits(max_pixels=1000)
    with pytest.raises(InputTooLargeError, match=re.escape(
            "documents[0].image is 40x30 = 1200 pixels; the limit is 1000")):
        load_image(_png_bytes(), "documents[0].image", limits)


def test_too_many_bytes_is_refused() -> None:
    data = _png_bytes()
    with pytest.raises(InputTooLargeError, match=re.escape(
            f"query.image is over the image size limit: {len(data)} bytes > 50")):
        load_image(data, "query.image", ImageLimits(max_bytes=50))


def test_corrupt_and_unsupported_images() -> None:
    truncated = _png_bytes((200, 200))[:80]
    with pytest.raises(ImageError, match=re.escape("documents[0].image is a corrupt or truncated PNG image")):
        load_image(truncated, "documents[0].image")
    with pytest.raises(ImageError, match=re.escape(
            "documents[3].image is not an image in a supported format (12 bytes, starting b'not an i')")):
        load_image(b"not an image", "documents[3].image")


def test_invalid_base64_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=re.escape(
            "documents[0].image is neither an existing file, an http(s) URL, nor valid base64: "
            "'%%%' (str)")):
        load_image("%%%", "documents[0].image")
    missing = tmp_path / "nope.png"
    with pytest.raises(ImageError, match=re.escape(
            f"documents[1].image: cannot read file {str(missing)!r} (No such file or directory)")):
        load_image(str(missing), "documents[1].image")


def test_wrong_type_and_empty_string() -> None:
    with pytest.raises(InvalidInputError, match=re.escape(
            "query.image must be a path, URL, base64 string, bytes or PIL image, got 42 (int)")):
        load_image(42, "query.image")
    with pytest.raises(InvalidInputError, match=re.escape("query.image must not be empty")):
        load_image("  ", "query.image")


@pytest.fixture()
def image_server() -> Iterator[str]:
    png = _png_bytes((32, 32), (1, 2, 3))

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/page.png":
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()
                self.wfile.write(png)
            elif self.path == "/loop":
                self.send_response(302)
                self.send_header("Location", "/loop")
                self.end_headers()
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_url_is_fetched(image_server: str) -> None:
    image = load_image(f"{image_server}/page.png", "documents[0].image")
    assert image.size == (32, 32) and image.getpixel((0, 0)) == (1, 2, 3)


def test_url_errors_name_the_field(image_server: str) -> None:
    with pytest.raises(ImageFetchError, match=re.escape(
            f"documents[4].image: fetching '{image_server}/missing.png' returned HTTP 404")):
        load_image(f"{image_server}/missing.png", "documents[4].image")
    with pytest.raises(ImageFetchError, match=re.escape(
            f"documents[0].image: fetching '{image_server}/loop' exceeded 3 redirects")):
        load_image(f"{image_server}/loop", "documents[0].image")


def test_unreachable_url_fails_fast() -> None:
    # Port 9 on loopback (discard) is closed here: connection refused, not a hang.
    with pytest.raises(ImageFetchError, match=re.escape(
            "documents[0].image: could not fetch 'http://127.0.0.1:9/x.png' (ConnectError)")):
        load_image("http://127.0.0.1:9/x.png", "documents[0].image", ImageLimits(fetch_timeout=2))
