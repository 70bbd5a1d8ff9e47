"""Image sources for the HTTP server: URLs fetched safely, base64, and operator-allowed files.

A request body may name images by URL, base64 text or data URI, and (only when the operator
names a media folder) by local path. This module turns each source into a decoded RGB
``PIL.Image`` and guards the server while doing it:

- **SSRF.** The host of every URL, and of every redirect hop, is resolved here with
  ``loop.getaddrinfo``; loopback, private, link-local, multicast, reserved, unspecified and other
  non-global addresses are refused unless ``allow_hosts`` names the host or a network holding
  the address. The request then goes to the vetted IP (the original ``Host`` header and TLS SNI
  are kept), so a second DNS answer cannot point the connection elsewhere (DNS rebinding).
- **Limits.** Connect/read timeouts, an overall deadline, a redirect cap, a byte cap enforced
  while streaming and a content-type check (``image/*``; ``application/octet-stream`` or no type
  is accepted only if the bytes decode as an image). Decoding reuses
  :mod:`m0rank.preprocessing.images`, so pixel limits and error wording match the library.
- **Cache.** Content-addressed: URL -> sha256 of the bytes (for an hour), and sha256 -> decoded
  image in an LRU bounded by decoded bytes, with an optional folder of encoded bytes by sha256
  and of URL -> sha256 records (:mod:`m0rank.server.image_cache`). A repeated image costs no
  second download or decode, and concurrent requests for one image share one of each.

Cached images are shared between requests: callers must treat them as read-only.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import httpx
from PIL import Image

from m0rank.config import ImageLimits
from m0rank.errors import (
    ImageError,
    ImageFetchError,
    InputTooLargeError,
    InvalidInputError,
    M0RankError,
)
from m0rank.preprocessing.images import (
    check_byte_size,
    classify_image_source,
    decode_base64_image,
    decode_image_bytes,
    is_url,
)
from m0rank.server.image_cache import DiskStore, ImageLRU
from m0rank.types import CacheStats

__all__ = ["ImageFetchSettings", "ImageResolver", "URL_CACHE_TTL_S"]

logger = logging.getLogger(__name__)

URL_CACHE_TTL_S = 3600.0  # a URL's bytes are trusted this long before it is fetched again
_URL_CACHE_ENTRIES = 4096
# All hops plus the whole body must arrive within this many fetch timeouts, so a server that
# drips one byte per read timeout cannot hold a request forever.
_DEADLINE_FACTOR = 3
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_BASE64_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
_MAX_PATH_LENGTH = 4096
_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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
    """

    allow_hosts: tuple[str, ...] = ()
    media_dir: Path | None = None
    cache_bytes: int = 256 * 1024 * 1024
    cache_dir: Path | None = None
    limits: ImageLimits = field(default_factory=ImageLimits)

    def __post_init__(self) -> None:
        if isinstance(self.allow_hosts, str):
            raise InvalidInputError(
                f"allow_hosts must be a tuple of hosts or networks, got {self.allow_hosts!r}")
        if isinstance(self.cache_bytes, bool) or not isinstance(self.cache_bytes, int) \
                or self.cache_bytes < 0:
            raise InvalidInputError(
                f"cache_bytes must be a non-negative integer, got {self.cache_bytes!r}")


class _HostPolicy:
    """Which hosts and addresses may be fetched (the SSRF guard)."""

    def __init__(self, allow_hosts: tuple[str, ...]) -> None:
        self.networks: list[_Network] = []
        self.names: set[str] = set()
        for entry in allow_hosts:
            try:
                self.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self.names.add(entry.lower().rstrip("."))

    def refusal(self, host: str, ip: _IP) -> str | None:
        """Why ``ip`` (an address of ``host``) may not be fetched, or None when it may."""
        if host.lower().rstrip(".") in self.names or any(ip in net for net in self.networks):
            return None
        mapped = getattr(ip, "ipv4_mapped", None)
        kind = _address_kind(mapped or ip)
        return None if kind is None else f"a {kind} address"


def _address_kind(ip: _IP) -> str | None:
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "non-global"


# Besides image/*: untyped downloads, and PDFs (m0rank's {"pdf": URL} documents use this fetch).
_BINARY_TYPES = ("application/octet-stream", "application/pdf")


class ImageResolver:
    """Turns image sources from requests into decoded RGB images, safely and cached.

    One resolver serves one event loop (the server's); it is not thread-safe.

    Args:
        settings: Operator settings (allowlist, media folder, cache budget and folder, limits).
    """

    def __init__(self, settings: ImageFetchSettings) -> None:
        self.settings = settings
        self.limits = settings.limits
        self._policy = _HostPolicy(settings.allow_hosts)
        self._media_root = settings.media_dir.resolve() if settings.media_dir else None
        self._images = ImageLRU(settings.cache_bytes)
        self._disk = DiskStore(settings.cache_dir, settings.cache_bytes) \
            if settings.cache_dir else None
        self._urls: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Image.Image]] = {}
        self._hits = 0
        self._misses = 0
        timeout = httpx.Timeout(self.limits.fetch_timeout)
        # trust_env=False: an environment proxy would bypass the address checks below.
        self._http = httpx.AsyncClient(timeout=timeout, trust_env=False)
        # No keep-alive for TLS: a pooled connection is keyed by IP, and one verified for host
        # A must not carry a request for host B.
        self._https = httpx.AsyncClient(timeout=timeout, trust_env=False,
                                        limits=httpx.Limits(max_keepalive_connections=0))

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
                          entries=len(self._images.items), max_bytes=self._images.max_bytes)

    async def aclose(self) -> None:
        """Close the HTTP connection pools."""
        await self._http.aclose()
        await self._https.aclose()

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
        data = await self._fetch(url, field)
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
        self._urls.move_to_end(url)
        return entry[0]

    def _remember_url(self, url: str, digest: str, fetched: float) -> None:
        self._urls[url] = (digest, fetched)
        self._urls.move_to_end(url)
        if len(self._urls) > _URL_CACHE_ENTRIES:
            self._urls.popitem(last=False)

    async def _from_bytes(self, data: bytes, field: str, digest: str | None = None) -> Image.Image:
        digest = digest or hashlib.sha256(data).hexdigest()
        image = self._images.get(digest)
        if image is not None:  # same bytes, same limits: the cached decode is valid here too
            self._hits += 1
            return image
        image = await asyncio.to_thread(decode_image_bytes, data, field, self.limits)
        self._misses += 1
        self._images.put(digest, image)
        if self._disk is not None:
            await asyncio.to_thread(self._disk.write, digest, data)
        return image

    async def _fetch(self, url: str, field: str) -> bytes:
        """Download ``url`` within the deadline, turning transport failures into errors."""
        deadline = self.limits.fetch_timeout * _DEADLINE_FACTOR
        try:
            return await asyncio.wait_for(self._follow(url, field), deadline)
        except httpx.TimeoutException:
            raise ImageFetchError(f"{field}: fetching {url!r} timed out after "
                                  f"{self.limits.fetch_timeout:g} s") from None
        except asyncio.TimeoutError:
            raise ImageFetchError(f"{field}: fetching {url!r} did not finish within "
                                  f"{deadline:g} s") from None
        except httpx.HTTPError as exc:
            raise ImageFetchError(f"{field}: could not fetch {url!r} "
                                  f"({type(exc).__name__})") from None

    async def _follow(self, url: str, field: str) -> bytes:
        """GET ``url``, vetting the address of every hop and following redirects by hand."""
        current = url
        for _ in range(self.limits.max_redirects + 1):
            request = await self._vetted_request(current, url, field)
            client = self._https if request.url.scheme == "https" else self._http
            response = await client.send(request, stream=True)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECT_STATUSES and location:
                    current = urljoin(current, location)
                    continue
                return await self._read_body(response, url, field)
            finally:
                await response.aclose()
        raise ImageFetchError(f"{field}: fetching {url!r} exceeded {self.limits.max_redirects} "
                              f"redirects")

    async def _vetted_request(self, hop: str, url: str, field: str) -> httpx.Request:
        """A GET for ``hop`` sent to an address that passed the SSRF guard."""
        target = httpx.URL(hop)
        if target.scheme not in ("http", "https") or not target.host:
            raise ImageFetchError(f"{field}: fetching {url!r} was redirected to {hop!r}, which "
                                  f"is not an http(s) URL")
        ip = await self._vet(target.host, target.port, url, field)
        headers = {"Host": target.netloc.decode("ascii"), "Accept": "image/*"}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        return self._http.build_request("GET", target.copy_with(host=str(ip)), headers=headers,
                                        extensions=extensions)

    async def _vet(self, host: str, port: int | None, url: str, field: str) -> _IP:
        """Resolve ``host`` and refuse it if any of its addresses is not allowed."""
        addresses = await self._addresses(host, port, url, field)
        for ip in addresses:
            reason = self._policy.refusal(host, ip)
            if reason is not None:
                logger.warning("refused image URL %r: %s is %s", url, ip, reason)
                shown = f"{host} is" if _is_ip(host) else f"{host!r} resolves to {ip},"
                raise ImageFetchError(
                    f"{field}: refusing to fetch {url!r}: {shown} {reason} (not in the "
                    f"server's allowed hosts)")
        return addresses[0]

    async def _addresses(self, host: str, port: int | None, url: str, field: str) -> list[_IP]:
        if _is_ip(host):
            return [ipaddress.ip_address(host)]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port or 443, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise ImageFetchError(f"{field}: cannot resolve the host of {url!r} ({exc})") from None
        # "fe80::1%eth0" -> "fe80::1": a scope id does not change which network the address is in.
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
        if not addresses:
            raise ImageFetchError(f"{field}: cannot resolve the host of {url!r}")
        # IPv4 first: many servers resolve AAAA records without having an IPv6 route.
        return sorted(dict.fromkeys(addresses), key=lambda ip: ip.version)

    async def _read_body(self, response: httpx.Response, url: str, field: str) -> bytes:
        """The body of a final response, after status, type and size checks."""
        if response.status_code != 200:
            raise ImageFetchError(f"{field}: fetching {url!r} returned HTTP "
                                  f"{response.status_code}")
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind and not kind.startswith("image/") and kind not in _BINARY_TYPES:
            raise ImageFetchError(f"{field}: {url!r} is not an image (content-type {kind!r})")
        max_bytes = self.limits.max_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit():
            check_byte_size(int(declared), field, self.limits)
        buffer = bytearray()
        async for chunk in response.aiter_bytes():
            buffer.extend(chunk)
            if len(buffer) > max_bytes:
                raise InputTooLargeError(f"{field} is over the image size limit: more than "
                                         f"{max_bytes} bytes")
        return bytes(buffer)

    def _read_local(self, source: str, field: str) -> bytes:
        """Bytes of base64 text, a data URI, or a file under the media folder (in a thread)."""
        path = self._media_path(source)
        if path is not None:
            check_byte_size(path.stat().st_size, field, self.limits)
            return path.read_bytes()
        kind = classify_image_source(source)
        if kind == "data-uri":
            return decode_base64_image(source, field, self.limits)
        path_like = kind == "path"
        if path_like and not _BASE64_CHARS.issuperset(source):
            raise self._path_refused(source, field)
        try:
            return decode_base64_image(source, field, self.limits)
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


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
