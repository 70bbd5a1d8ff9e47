"""Image sources for the HTTP server: URLs fetched safely, base64, and operator-allowed files.

A request body may name images by URL, base64 text or data URI, and (only when the operator
names a media folder) by local path. This module turns each source into a decoded RGB
``PIL.Image`` and guards the server while doing it:

- **SSRF.** URLs are fetched by :class:`m0rank.server.fetch.SafeFetcher` (globally routable
  addresses only, every redirect hop vetted, DNS-rebinding safe). A URL is vetted again before
  a cached copy of it is served, so a restart with a stricter ``--allow-host`` takes effect.
- **Limits.** Decoding reuses :mod:`m0rank.preprocessing.images`, so byte and pixel limits and
  error wording match the library.
- **Cache.** Content-addressed: URL -> sha256 of the bytes (``cachetools.TTLCache``, an hour),
  and sha256 -> decoded image (``cachetools.LRUCache`` bounded by decoded bytes), with an
  optional folder of encoded bytes by sha256 and of URL -> sha256 records
  (:mod:`m0rank.server.image_cache`, whose I/O faults degrade to misses). A repeated image
  costs no second download or decode, and concurrent requests for one image share one of each.

Cached images are shared between requests: callers must treat them as read-only.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cachetools import TTLCache
from PIL import Image

from m0rank.config import ImageLimits
from m0rank.errors import (
    ImageError,
    InputTooLargeError,
    InvalidInputError,
    M0RankError,
)
from m0rank.preprocessing.images import (
    check_byte_size,
    classify_image_source,
    decode_base64_image,
    decode_image_bytes,
    decoded_size,
    is_url,
    open_image,
)
from m0rank.server.fetch import SafeFetcher
from m0rank.server.image_cache import ImageLRU, open_disk_store
from m0rank.types import CacheStats

__all__ = ["ImageFetchSettings", "ImageResolver", "URL_CACHE_TTL_S"]

logger = logging.getLogger(__name__)

URL_CACHE_TTL_S = 3600.0  # a URL's bytes are trusted this long before it is fetched again
_URL_CACHE_ENTRIES = 4096
_BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_MAX_PATH_LENGTH = 4096


@dataclass(frozen=True, kw_only=True)
class ImageFetchSettings:
    """Operator settings for images named in requests.

    Args:
        allow_hosts: Hostnames, IP addresses or CIDR networks that may be fetched even though
            they are loopback/private/link-local (for internal deployments).
        media_dir: Local files are accepted only when they resolve under this folder.
        cache_bytes: Budget of the decoded-image cache in memory, and of the disk folder.
        cache_dir: Optional folder keeping encoded image bytes by sha256 across restarts.
        limits: Timeouts, byte, pixel and redirect limits (shared with the library).
        draft_pixels: The model's resize budget: JPEGs far larger are decoded reduced
            (``decode_image_bytes``'s ``draft_pixels``); ``None`` decodes at full size.
        decode_bytes: Decoded bytes all concurrent decodes together may hold; a decode waits
            for room instead of growing memory.
    """

    allow_hosts: tuple[str, ...] = ()
    media_dir: Path | None = None
    cache_bytes: int = 256 * 1024 * 1024
    cache_dir: Path | None = None
    limits: ImageLimits = field(default_factory=ImageLimits)
    draft_pixels: int | None = None
    decode_bytes: int = 512 * 1024 * 1024

    def __post_init__(self) -> None:
        if isinstance(self.allow_hosts, str):
            raise InvalidInputError(
                f"allow_hosts must be a tuple of hosts or networks, got {self.allow_hosts!r}")
        if isinstance(self.cache_bytes, bool) or not isinstance(self.cache_bytes, int) \
                or self.cache_bytes < 0:
            raise InvalidInputError(
                f"cache_bytes must be a non-negative integer, got {self.cache_bytes!r}")


class DecodeBudget:
    """Bytes that concurrent image decodes may hold together (an async weighted semaphore).

    A decode larger than the whole budget runs alone rather than never.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, amount: int) -> AsyncIterator[None]:
        """Wait until ``amount`` bytes fit, hold them for the block, then give them back."""
        amount = min(amount, self.capacity)
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_use + amount <= self.capacity)
            self.in_use += amount
        try:
            yield
        finally:
            async with self._changed:
                self.in_use -= amount
                self._changed.notify_all()


class ImageResolver:
    """Turns image sources from requests into decoded RGB images, safely and cached.

    One resolver serves one event loop (the server's); it is not thread-safe.

    Args:
        settings: Operator settings (allowlist, media folder, cache budget and folder, limits).
    """

    def __init__(self, settings: ImageFetchSettings) -> None:
        self.settings = settings
        self.limits = settings.limits
        self.fetcher = SafeFetcher(settings.allow_hosts, settings.limits)
        self._media_root = settings.media_dir.resolve() if settings.media_dir else None
        self._images = ImageLRU(settings.cache_bytes)
        self._disk = open_disk_store(settings.cache_dir, settings.cache_bytes) \
            if settings.cache_dir else None
        self._urls: TTLCache[str, tuple[str, float]] = TTLCache(_URL_CACHE_ENTRIES,
                                                                ttl=URL_CACHE_TTL_S)
        self._inflight: dict[str, asyncio.Future[Image.Image]] = {}
        self._decode_budget = DecodeBudget(settings.decode_bytes)
        self._hits = 0
        self._misses = 0

    async def resolve(self, source: str, field: str) -> Image.Image:
        """Decode one image source from a request.

        Args:
            source: An http(s) URL, base64 text, a ``data:image/...;base64,`` URI, or a path
                (accepted only under the operator's media folder).
            field: Where the source came from (``"documents[2].image"``), named in errors.

        Returns:
            The decoded RGB image (shared with the cache: do not modify it).

        Raises:
            ImageFetchError: The URL is refused by the SSRF guard or cannot be fetched.
            ImageError: Not an image, a refused path, or an unusable size.
            InputTooLargeError: Over the byte or pixel limit.
        """
        if not isinstance(source, str) or not source.strip():
            raise InvalidInputError(f"{field} must be a non-empty image URL, base64 string or "
                                    f"data URI, got {source!r:.60}")
        source = source.strip()
        if is_url(source):
            return await self._once(source, lambda: self._resolve_url(source, field))
        data = await asyncio.to_thread(self._read_local, source, field)
        digest = hashlib.sha256(data).hexdigest()
        return await self._once(digest, lambda: self._from_bytes(data, field, digest))

    def stats(self) -> CacheStats:
        """Cache counters: images served without decoding (hits), decoded (misses), size."""
        return CacheStats(hits=self._hits, misses=self._misses, bytes=self._images.bytes,
                          entries=len(self._images.items), max_bytes=self._images.max_bytes,
                          errors=self._disk.errors if self._disk is not None else 0)

    async def fetch_bytes(self, source: str, field: str,
                          media_types: tuple[str, ...] = ("image/",)) -> bytes:
        """The raw bytes a source names (URL under the SSRF guard, base64, a data URI of one of
        ``media_types``, or a file under the media folder), without decoding: what PDF
        documents need."""
        if is_url(source):
            return await self.fetcher.fetch(source, field)
        return await asyncio.to_thread(self._read_local, source, field, media_types)

    async def aclose(self) -> None:
        """Close the HTTP connection pools."""
        await self.fetcher.aclose()

    async def _once(self, key: str, work: Callable[[], Awaitable[Image.Image]]) -> Image.Image:
        """Run ``work`` unless the same key is already being resolved; then share its result.

        A waiter whose leader failed runs ``work`` itself, so its error names its own field; so
        does one whose leader was cancelled (its client went away).
        """
        pending = self._inflight.get(key)
        if pending is not None:
            try:
                image = await asyncio.shield(pending)
            except M0RankError:
                return await work()
            except asyncio.CancelledError:
                if pending.cancelled() and not _being_cancelled():
                    return await work()  # the leader's request went away, not ours
                raise
            self._hits += 1  # served by another request's decode
            return image
        future: asyncio.Future[Image.Image] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            image = await work()
            future.set_result(image)
            return image
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # mark it retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            del self._inflight[key]

    async def _resolve_url(self, url: str, field: str) -> Image.Image:
        await self.fetcher.vet(url, field)  # a cached copy is served only if fetching may be
        digest = await self._url_digest(url)
        if digest is not None:
            image = self._images.get(digest)
            if image is not None:
                self._hits += 1
                return image
            # Disk reads (up to max_bytes, hashed) stay off the event loop, like the writes.
            data = await asyncio.to_thread(self._disk.read, digest) if self._disk else None
            if data is not None:
                return await self._from_bytes(data, field, digest)
        data = await self.fetcher.fetch(url, field)
        digest = hashlib.sha256(data).hexdigest()
        self._remember_url(url, digest, time.time())
        if self._disk is not None:
            await asyncio.to_thread(self._disk.write_url, url, digest, time.time())
        return await self._from_bytes(data, field, digest)

    async def _url_digest(self, url: str) -> str | None:
        entry = self._urls.get(url)
        if entry is None and self._disk is not None:
            entry = await asyncio.to_thread(self._disk.read_url, url)
            if entry is not None:
                self._remember_url(url, *entry)
        if entry is None or time.time() - entry[1] > URL_CACHE_TTL_S:
            return None
        return entry[0]

    def _remember_url(self, url: str, digest: str, fetched: float) -> None:
        self._urls[url] = (digest, fetched)

    async def _from_bytes(self, data: bytes, field: str, digest: str | None = None) -> Image.Image:
        digest = digest or hashlib.sha256(data).hexdigest()
        image = self._images.get(digest)
        if image is not None:  # same bytes, same limits: the cached decode is valid here too
            self._hits += 1
            return image
        image = await self._decode(data, field)
        self._misses += 1
        self._images.put(digest, image)
        if self._disk is not None:
            await asyncio.to_thread(self._disk.write, digest, data)
        return image

    async def _decode(self, data: bytes, field: str) -> Image.Image:
        """Decode in a thread once the decode budget has room for the decoded pixels."""
        header = open_image(data, field, self.limits)  # header only: cheap, on the loop
        width, height = decoded_size(header, self.settings.draft_pixels)
        async with self._decode_budget.hold(width * height * 4):
            return await asyncio.to_thread(decode_image_bytes, data, field, self.limits,
                                           self.settings.draft_pixels)

    def _read_local(self, source: str, field: str,
                    media_types: tuple[str, ...] = ("image/",)) -> bytes:
        """Bytes of base64 text, a data URI, or a file under the media folder (in a thread)."""
        path = self._media_path(source)
        if path is not None:
            check_byte_size(path.stat().st_size, field, self.limits)
            return path.read_bytes()
        kind = classify_image_source(source)
        if kind == "data-uri":
            return decode_base64_image(source, field, self.limits, media_types)
        path_like = kind == "path"
        if path_like and not _BASE64_CHARS.issuperset(source):
            raise self._path_refused(source, field)
        try:
            return decode_base64_image(source, field, self.limits, media_types)
        except InputTooLargeError:
            raise
        except ImageError:
            if path_like:
                raise self._path_refused(source, field) from None
            raise

    def _media_path(self, source: str) -> Path | None:
        """The file ``source`` names under the media folder, or None (never outside it)."""
        if self._media_root is None or len(source) > _MAX_PATH_LENGTH or "\0" in source:
            return None
        candidate = (self._media_root / source.removeprefix("file://")).resolve()
        if candidate.is_relative_to(self._media_root) and candidate.is_file():
            return candidate
        return None

    def _path_refused(self, source: str, field: str) -> ImageError:
        if self._media_root is None:
            return ImageError(f"{field}: local file paths are not accepted by this server "
                              f"(got {source[:80]!r}); send a URL or base64 data")
        return ImageError(f"{field}: {source[:80]!r} is not a file under the server's media "
                          f"folder")


def _being_cancelled() -> bool:
    """Whether the current task was asked to stop (Python 3.11+; False before)."""
    task = asyncio.current_task()
    return bool(task is not None and getattr(task, "cancelling", lambda: 0)())
