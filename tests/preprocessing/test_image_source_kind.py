"""One image-source classifier for the library and the server (``classify_image_source``)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from m0rank.preprocessing.images import classify_image_source, load_image


def _jpeg_base64() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buffer, "JPEG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize(("source", "kind"), [
    ("https://example.com/cat.png", "url"),
    ("http://127.0.0.1:8080/x", "url"),
    ("data:image/png;base64,iVBORw0KGgo=", "data-uri"),
    ("/etc/passwd", "path"),
    ("./cat.png", "path"),
    ("../secret.png", "path"),
    ("~/x.jpg", "path"),
    ("C:\\images\\a.png", "path"),
    ("file:///etc/hosts", "path"),
    ("sub/cat.png", "path"),
    ("cat.png", "path"),
    ("bm90IGFuIGltYWdl", "base64"),
    ("not base64 at all!", "base64"),  # whitespace: wrapped base64, never a path
    ("%%%", "base64"),
    ("/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0a", "base64"),
    ("/a" * 3000, "base64"),  # longer than any path
])
def test_each_kind(source: str, kind: str) -> None:
    assert classify_image_source(source) == kind


def test_raw_jpeg_base64_is_decoded_not_read_as_a_file() -> None:
    source = _jpeg_base64()
    assert source.startswith("/9j/")
    assert load_image(source, "documents[0].image").size == (40, 30)


def test_an_existing_file_wins_locally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("RGB", (20, 20)).save(tmp_path / "page one.png")
    monkeypatch.chdir(tmp_path)
    assert classify_image_source("page one.png") == "base64"  # the string alone
    assert load_image("page one.png", "documents[0].image").size == (20, 20)  # the file exists
