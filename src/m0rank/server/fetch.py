"""The SSRF-guarded HTTP fetcher behind every URL a request names (images, PDFs).

- **Parsing.** A URL that does not parse as an absolute http(s) URL with a host (``http://``,
  ``http://[::1``, ``http://[1:2::3::4]/``, a NUL or an invalid IDNA label in the host) is a
  400 naming the field. A host made only of digits and dots must be a canonical dotted-quad:
  ``0177.0.0.1`` (octal loopback to ``inet_aton``) and ``999.1.1.1`` are refused rather than
  handed to a resolver that may read them its own way.
- **Addresses.** The host of every URL and of every redirect hop is resolved here with
  ``loop.getaddrinfo``; only globally routable addresses pass, and IPv4 addresses embedded in
  IPv6 (mapped ``::ffff:a.b.c.d``, 6to4 ``2002::/16``, Teredo ``2001::/32``, NAT64
  ``64:ff9b::/96``) must be globally routable too, so ``2002:7f00:1::`` (loopback) or
  ``2002:a9fe:a9fe::`` (the cloud metadata address) are refused, as is site-local
  ``fec0::/10``. ``allow_hosts`` names hosts or networks the operator allows anyway.
- **Rebinding.** The request goes to the vetted IP (the original ``Host`` header and TLS SNI are
  kept), so a second DNS answer cannot point the connection elsewhere.
- **Limits.** Connect/read timeouts, an overall deadline, a redirect cap, a byte cap enforced
  while streaming, and a content-type check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from urllib.parse import urljoin

import httpx

from m0rank.config import ImageLimits
from m0rank.errors import ImageFetchError, InputTooLargeError
from m0rank.preprocessing.images import check_byte_size

__all__ = ["SafeFetcher", "HostPolicy", "address_refusal"]

logger = logging.getLogger(__name__)

# All hops plus the whole body must arrive within this many fetch timeouts, so a server that
# drips one byte per read timeout cannot hold a request forever.
_DEADLINE_FACTOR = 3
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
# Besides image/*: untyped downloads, and PDFs (m0rank's {"pdf": URL} documents use this fetch).
_BINARY_TYPES = ("application/octet-stream", "application/pdf")
_NUMERIC_HOST = re.compile(r"^[0-9.]+$")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IP = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_refusal(ip: _IP) -> str | None:
    """Why ``ip`` is not a globally routable address (``"a loopback address"``...), looking
    through every IPv4 address embedded in an IPv6 one; ``None`` when it may be fetched."""
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    if mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
        kind = _address_kind(mapped)
        return None if kind is None else f"a {kind} address"
    for embedded in _embedded_ipv4(ip):
        kind = _address_kind(embedded)
        if kind is not None:
            return f"a {kind} address (it embeds {embedded})"
    kind = _address_kind(ip)
    return None if kind is None else f"a {kind} address"


def _embedded_ipv4(ip: _IP) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses a 6to4, Teredo or NAT64 address carries (mapped ones are handled apart)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found = [ip.sixtofour, *(ip.teredo or ())]
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [address for address in found if address is not None]


def _address_kind(ip: _IP) -> str | None:
    for kind in ("loopback", "link_local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "site-local"
    return None if ip.is_global else "non-global"


class HostPolicy:
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
        return address_refusal(ip)


def parse_url(url: str, field: str, original: str | None = None) -> httpx.URL:
    """``url`` as an absolute http(s) URL with a valid host, else :class:`ImageFetchError`.

    ``original`` is the URL the request named when ``url`` is a redirect hop.
    """
    shown = original or url
    try:
        target = httpx.URL(url)
        host = target.host
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        raise ImageFetchError(f"{field}: {shown!r} is not a valid URL ({_reason(exc)})") from None
    if target.scheme not in ("http", "https") or not host:
        if original is not None:
            raise ImageFetchError(f"{field}: fetching {original!r} was redirected to {url!r}, "
                                  f"which is not an http(s) URL with a host")
        raise ImageFetchError(f"{field}: {url!r} is not an http(s) URL with a host")
    if _NUMERIC_HOST.match(host) and not _is_ip(host):
        raise ImageFetchError(f"{field}: {shown!r} has the host {host!r}, which is not a valid "
                              f"dotted-decimal IPv4 address")
    return target


def _reason(exc: BaseException) -> str:
    text = str(exc).replace("\x00", "\\x00")
    return text[:120] or type(exc).__name__


class SafeFetcher:
    """Downloads URLs under the SSRF guard and the operator's limits.

    Args:
        allow_hosts: Hostnames or networks allowed despite the guard.
        limits: Timeouts, byte cap and redirect cap.
    """

    def __init__(self, allow_hosts: tuple[str, ...], limits: ImageLimits) -> None:
        self.limits = limits
        self._policy = HostPolicy(allow_hosts)
        timeout = httpx.Timeout(limits.fetch_timeout)
        # trust_env=False: an environment proxy would bypass the address checks below.
        self._http = httpx.AsyncClient(timeout=timeout, trust_env=False)
        # No keep-alive for TLS: a pooled connection is keyed by IP, and one verified for host
        # A must not carry a request for host B.
        self._https = httpx.AsyncClient(timeout=timeout, trust_env=False,
                                        limits=httpx.Limits(max_keepalive_connections=0))

    async def aclose(self) -> None:
        """Close the connection pools."""
        await self._http.aclose()
        await self._https.aclose()

    async def vet(self, url: str, field: str) -> None:
        """Refuse ``url`` unless it parses and its host passes the guard *now* (what a cached
        copy of it must pass before it is served, e.g. after a stricter restart)."""
        target = parse_url(url, field)
        await self._vet_host(target.host, target.port, url, field)

    async def fetch(self, url: str, field: str) -> bytes:
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
        target = parse_url(hop, field, original=None if hop == url else url)
        ip = await self._vet_host(target.host, target.port, url, field)
        headers = {"Host": target.netloc.decode("ascii"), "Accept": "image/*, application/pdf"}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        return self._http.build_request("GET", target.copy_with(host=str(ip)), headers=headers,
                                        extensions=extensions)

    async def _vet_host(self, host: str, port: int | None, url: str, field: str) -> _IP:
        """Resolve ``host`` and refuse it if any of its addresses is not allowed."""
        addresses = await self._addresses(host, port, url, field)
        for ip in addresses:
            reason = self._policy.refusal(host, ip)
            if reason is not None:
                logger.warning("refused URL %r: %s is %s", url, ip, reason)
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
        except (socket.gaierror, UnicodeError, ValueError) as exc:
            raise ImageFetchError(f"{field}: cannot resolve the host of {url!r} "
                                  f"({_reason(exc)})") from None
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


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
