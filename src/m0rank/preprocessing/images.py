"""Reading images from every source a user may give, with size limits checked early.

Sources: a ``PIL.Image.Image``, raw ``bytes``, a local path, an ``http(s)://`` URL, or base64
text (with or without a ``data:image/...;base64,`` prefix). The reference resolves the same
sources through ``transformers.image_utils.load_image``; like it we apply the EXIF orientation
and convert to RGB. Unlike it we check sizes from the image header *before* decoding, so a
decompression bomb is refused instead of expanded, and every error names the field.

URL fetching here is synchronous (the library and CLI). The server fetches asynchronously with
its own SSRF guard and hands the bytes to :func:`decode_image_bytes`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import os
import warnings
from typing import Any, Literal

from PIL import Image, ImageOps, UnidentifiedImageError

from m0rank.config import ImageLimits
from m0rank.errors import (
    ImageError,
    ImageFetchError,
    InputTooLargeError,
    InvalidInputError,
    describe_value,
)

__all__ = [
    "load_image",
    "image_cache_key",
    "open_image",
    "decoded_size",
    "decode_image_bytes",
    "decode_base64_image",
    "fetch_image_bytes",
    "validate_image_size",
    "check_byte_size",
    "is_url",
    "classify_image_source",
    "ImageSourceKind",
]

ImageSourceKind = Literal["url", "data-uri", "base64", "path"]

_DATA_PREFIX = "data:"
_MAX_PATH_LENGTH = 4096
# Real base64 images are longer than this (a 1x1 PNG is ~90 characters), so a shorter string
# with a '/' is a path even though '/' is a base64 character.
_SHORT_PATH = 64


def is_url(source: str) -> bool:
    """True for ``http://`` and ``https://`` sources."""
    return source.startswith(("http://", "https://"))


def classify_image_source(source: str) -> ImageSourceKind:
    """What a (stripped) image string is: ``url``, ``data-uri``, ``path`` or ``base64``.

    The one rule shared by the library and the server (which accepts paths only under its
    media folder). A path starts like one (``./``, ``../``, ``~``, ``file:``), has a ``\\``
    or a ``.`` (neither is in the base64 alphabet), or is short and has a ``/``. Strings with
    whitespace are base64 (wrapped lines), and so is everything else: raw JPEG base64 starts
    with ``/9j/``, so a leading ``/`` alone does not make a path.

    Example:
        >>> classify_image_source("./cat.png"), classify_image_source("/9j/4AAQSkZJRg" * 8)
        ('path', 'base64')
    """
    if is_url(source):
        return "url"
    if source.startswith(_DATA_PREFIX):
        return "data-uri"
    if len(source) > _MAX_PATH_LENGTH or any(ch.isspace() for ch in source):
        return "base64"
    if source.startswith(("./", "../", "~", "file:")) or "\\" in source or "." in source \
            or ("/" in source and len(source) < _SHORT_PATH):
        return "path"
    return "base64"


def load_image(source: Any, field: str, limits: ImageLimits | None = None) -> Image.Image:
    """Resolve any supported image source to an RGB ``PIL.Image``.

    Args:
        source: A ``PIL.Image``, bytes, a local path, an http(s) URL or base64 text.
        field: Where the value came from (``"documents[2].image"``), used in error messages.
        limits: Size and fetch limits; defaults to :class:`ImageLimits()`.

    Raises:
        ImageError: The source cannot be read or decoded, or its size is not allowed.
        ImageFetchError: The URL cannot be fetched.
        InputTooLargeError: Over ``limits.max_bytes`` or ``limits.max_pixels``.
    """
    limits = limits or ImageLimits()
    if isinstance(source, Image.Image):
        validate_image_size(source.size, field, limits)
        return _normalise(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image_bytes(bytes(source), field, limits)
    if not isinstance(source, str):
        raise InvalidInputError(
            f"{field} must be a path, URL, base64 string, bytes or PIL image, "
            f"got {describe_value(source)}"
        )
    source = source.strip()
    if not source:
        raise InvalidInputError(f"{field} must not be empty")
    kind = classify_image_source(source)
    if kind == "url":
        return decode_image_bytes(fetch_image_bytes(source, field, limits), field, limits)
    # Locally, an existing file wins over any reading of the string (e.g. "my page.png").
    if kind == "path" or (kind == "base64" and len(source) <= _MAX_PATH_LENGTH
                          and os.path.exists(source)):
        return decode_image_bytes(_read_file(source, field, limits), field, limits)
    return decode_image_bytes(decode_base64_image(source, field, limits), field, limits)


def decode_image_bytes(data: bytes, field: str, limits: ImageLimits | None = None,
                       draft_pixels: int | None = None) -> Image.Image:
    """Decode encoded image bytes after checking byte size and header dimensions.

    ``draft_pixels``: the area the caller will resize to anyway. A JPEG more than four times
    that area is decoded reduced in the DCT (PIL's ``draft``, 1/2 to 1/8 per side), keeping at
    least twice the target's width and height, which cuts decode time and memory by up to 64x
    for photos far larger than the model reads. ``None`` (the library's default) decodes at
    full size, so scores stay bit-identical to the reference.
    """
    limits = limits or ImageLimits()
    image = open_image(data, field, limits)
    if draft_pixels is not None and image.format == "JPEG":
        _draft(image, draft_pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(f"{field} is a corrupt or truncated {image.format} image") from exc
    return _normalise(image)


def open_image(data: bytes, field: str, limits: ImageLimits | None = None) -> Image.Image:
    """Parse an image's header only (no pixels decoded yet) and check bytes and dimensions;
    what a caller needs to budget the decode before paying for it."""
    limits = limits or ImageLimits()
    check_byte_size(len(data), field, limits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageError(
                f"{field} is not an image in a supported format ({len(data)} bytes, "
                f"starting {data[:8]!r})"
            ) from None
        except Image.DecompressionBombError:
            raise InputTooLargeError(
                f"{field} has more pixels than allowed ({limits.max_pixels})"
            ) from None
    validate_image_size(image.size, field, limits)
    return image


def decoded_size(image: Image.Image, draft_pixels: int | None) -> tuple[int, int]:
    """Width and height :func:`decode_image_bytes` will produce for an opened image."""
    width, height = image.size
    if draft_pixels is None or image.format != "JPEG":
        return width, height
    scale = _draft_scale(width * height, draft_pixels)
    return -(-width // scale), -(-height // scale)


def _draft_scale(area: int, draft_pixels: int) -> int:
    """The largest JPEG reduction (1, 2, 4, 8) keeping at least 4x ``draft_pixels``."""
    scale = 1
    while scale < 8 and area / ((scale * 2) ** 2) >= 4 * draft_pixels:
        scale *= 2
    return scale


def _draft(image: Image.Image, draft_pixels: int) -> None:
    scale = _draft_scale(image.width * image.height, draft_pixels)
    if scale > 1:
        image.draft(image.mode, (-(-image.width // scale), -(-image.height // scale)))


def decode_base64_image(text: str, field: str, limits: ImageLimits | None = None,
                        media_types: tuple[str, ...] = ("image/",)) -> bytes:
    """Decode base64 text, with or without a ``data:image/...;base64,`` prefix.

    A data URI must declare a type starting with one of ``media_types`` (``image/`` for
    images, ``application/pdf`` for PDFs): ``data:text/html;base64,...`` is not an image even
    if its bytes happen to decode as one.
    """
    limits = limits or ImageLimits()
    payload = text
    if text.startswith(_DATA_PREFIX):
        header, _, payload = text.partition(",")
        if ";base64" not in header:
            raise ImageError(f"{field} is a data URI without base64 encoding: {header[:40]!r}")
        mime = header[len(_DATA_PREFIX):].split(";")[0].strip().lower()
        if not mime.startswith(media_types):
            wanted = " or ".join(f"{kind}*" if kind.endswith("/") else kind
                                 for kind in media_types)
            raise ImageError(f"{field} is a data URI of type {mime or 'none'!r}; expected "
                             f"{wanted}")
    # base64 is 4/3 the size of the bytes; refuse early instead of decoding a huge string.
    check_byte_size(len(payload) * 3 // 4, field, limits)
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ImageError(
            f"{field} is neither an existing file, an http(s) URL, nor valid base64: "
            f"{describe_value(text)}"
        ) from None


def fetch_image_bytes(url: str, field: str, limits: ImageLimits | None = None) -> bytes:
    """Download an image URL with timeouts, a redirect cap and a byte cap while streaming."""
    import httpx

    limits = limits or ImageLimits()
    timeout = httpx.Timeout(limits.fetch_timeout)
    try:
        with httpx.Client(
            timeout=timeout, follow_redirects=True, max_redirects=limits.max_redirects
        ) as client:
            with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise ImageFetchError(
                        f"{field}: fetching {url!r} returned HTTP {response.status_code}"
                    )
                return _read_capped(response.iter_bytes(), field, limits)
    except httpx.TimeoutException:
        raise ImageFetchError(
            f"{field}: fetching {url!r} timed out after {limits.fetch_timeout} s"
        ) from None
    except httpx.TooManyRedirects:
        raise ImageFetchError(
            f"{field}: fetching {url!r} exceeded {limits.max_redirects} redirects"
        ) from None
    except httpx.HTTPError as exc:
        raise ImageFetchError(
            f"{field}: could not fetch {url!r} ({type(exc).__name__})"
        ) from None


def validate_image_size(size: tuple[int, int], field: str, limits: ImageLimits) -> None:
    """Refuse images too small, too elongated or with too many pixels for the model."""
    width, height = size
    if min(width, height) < limits.min_side:
        raise ImageError(
            f"{field} is {width}x{height} pixels; each side must be at least {limits.min_side}"
        )
    ratio = max(width, height) / min(width, height)
    if ratio > limits.max_aspect_ratio:
        raise ImageError(
            f"{field} is {width}x{height} pixels; the aspect ratio {ratio:.1f} is over "
            f"{limits.max_aspect_ratio:g}"
        )
    if width * height > limits.max_pixels:
        raise InputTooLargeError(
            f"{field} is {width}x{height} = {width * height} pixels; the limit is "
            f"{limits.max_pixels}"
        )


def _read_capped(chunks: Any, field: str, limits: ImageLimits) -> bytes:
    buffer = bytearray()
    for chunk in chunks:
        buffer.extend(chunk)
        check_byte_size(len(buffer), field, limits)
    return bytes(buffer)


def _read_file(path: str, field: str, limits: ImageLimits) -> bytes:
    try:
        size = os.path.getsize(path)
        check_byte_size(size, field, limits)
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise ImageError(f"{field}: cannot read file {path!r} ({exc.strerror})") from None


def check_byte_size(size: int, field: str, limits: ImageLimits) -> None:
    """Refuse an encoded image (file, download or payload) over ``limits.max_bytes``."""
    if size > limits.max_bytes:
        raise InputTooLargeError(
            f"{field} is over the image size limit: {size} bytes > {limits.max_bytes}"
        )


def _normalise(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation and convert to RGB, as ``transformers`` ``load_image`` does."""
    image = ImageOps.exif_transpose(image) or image
    return image if image.mode == "RGB" else image.convert("RGB")


def image_cache_key(image: Image.Image, settings: str) -> str:
    """SHA-256 over the decoded pixels of ``image`` and ``settings`` (resize budget + model).

    Hashing decoded pixels rather than the encoded file lets the same page sent as a path,
    a URL, base64 or raw bytes share one entry.
    """
    digest = hashlib.sha256()
    digest.update(f"{settings}|{image.mode}|{image.size[0]}x{image.size[1]}|".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()
