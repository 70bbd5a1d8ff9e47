"""The server's image resolver: real fetches from a loopback test server, the SSRF guard,
limits, local paths, and the content-addressed cache.

Only 127.0.0.1 ever receives traffic. Private, link-local and other refused addresses are
checked with a patched resolver and a socket guard that records (and blocks) every connection
attempt, so each refusal is shown to happen before any socket is opened.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from image_helpers import LOOPBACK, ImageServer, Route, fake_dns, png, resolve_all
from PIL import Image

from m0rank.config import ImageLimits
from m0rank.errors import ImageError, ImageFetchError, InputTooLargeError
from m0rank.server.images import ImageFetchSettings, ImageResolver

# --- fetching and caching ------------------------------------------------------------------

def test_fetches_a_url_and_keeps_the_host_header(server: ImageServer) -> None:
    server.routes["/a.png"] = Route(png((40, 30), (1, 2, 3)))
    (image,), stats = resolve_all(LOOPBACK, server.url("/a.png"))
    assert image.mode == "RGB" and image.size == (40, 30)
    assert image.getpixel((0, 0)) == (1, 2, 3)
    assert server.host_headers == [f"127.0.0.1:{server.port}"]
    assert (stats.hits, stats.misses, stats.bytes, stats.entries) == (0, 1, 40 * 30 * 3, 1)


def test_a_repeated_url_is_downloaded_and_decoded_once(server: ImageServer) -> None:
    server.routes["/a.png"] = Route(png())
    images, stats = resolve_all(LOOPBACK, *[server.url("/a.png")] * 3)
    assert server.hits == {"/a.png": 1}
    assert images[0] is images[1] is images[2]
    assert stats.hits == 2 and stats.misses == 1


def test_same_bytes_under_another_url_or_as_base64_are_not_decoded_again(
        server: ImageServer) -> None:
    data = png()
    server.routes["/a.png"] = server.routes["/b.png"] = Route(data)
    b64 = base64.b64encode(data).decode()
    images, stats = resolve_all(LOOPBACK, server.url("/a.png"), server.url("/b.png"), b64,
                                f"data:image/png;base64,{b64}")
    assert server.hits == {"/a.png": 1, "/b.png": 1}
    assert all(image is images[0] for image in images)
    assert (stats.hits, stats.misses, stats.bytes, stats.entries) == (3, 1, 32 * 24 * 3, 1)


def test_concurrent_requests_for_one_url_share_a_single_download(server: ImageServer) -> None:
    server.routes["/slow.png"] = Route(png(), delay=0.3)

    async def main() -> list[Image.Image]:
        resolver = ImageResolver(LOOPBACK)
        try:
            return await asyncio.gather(*[
                resolver.resolve(server.url("/slow.png"), f"documents[{i}].image")
                for i in range(5)])
        finally:
            await resolver.aclose()

    images = asyncio.run(main())
    assert server.hits == {"/slow.png": 1}
    assert len({id(image) for image in images}) == 1


def test_concurrent_failures_name_each_callers_own_field(server: ImageServer) -> None:
    server.routes["/gone.png"] = Route(b"gone", status=410, delay=0.2)
    url = server.url("/gone.png")

    async def main() -> list[BaseException]:
        resolver = ImageResolver(LOOPBACK)
        try:
            return await asyncio.gather(*[resolver.resolve(url, f"documents[{i}].image")
                                          for i in range(2)], return_exceptions=True)
        finally:
            await resolver.aclose()

    errors = asyncio.run(main())
    assert [str(e) for e in errors] == [
        f"documents[{i}].image: fetching {url!r} returned HTTP 410" for i in range(2)]
    assert all(type(e) is ImageFetchError for e in errors)


def test_a_waiter_survives_the_cancellation_of_the_request_it_waited_on(
        server: ImageServer) -> None:
    server.routes["/slow.png"] = Route(png(), delay=0.4)
    url = server.url("/slow.png")

    async def main() -> Image.Image:
        resolver = ImageResolver(LOOPBACK)
        try:
            leader = asyncio.create_task(resolver.resolve(url, "documents[0].image"))
            await asyncio.sleep(0.05)
            waiter = asyncio.create_task(resolver.resolve(url, "documents[1].image"))
            await asyncio.sleep(0.05)
            leader.cancel()
            return await waiter
        finally:
            await resolver.aclose()

    assert asyncio.run(main()).size == (32, 24)
    assert server.hits == {"/slow.png": 2}  # the waiter fetched again by itself


def test_concurrent_copies_of_one_base64_image_are_decoded_once() -> None:
    b64 = base64.b64encode(png((300, 200))).decode()

    async def main() -> tuple[list[Image.Image], dict]:
        resolver = ImageResolver(ImageFetchSettings())
        try:
            images = await asyncio.gather(*[resolver.resolve(b64, f"documents[{i}].image")
                                            for i in range(6)])
            return images, resolver.stats()
        finally:
            await resolver.aclose()

    images, stats = asyncio.run(main())
    assert len({id(image) for image in images}) == 1
    assert stats.misses == 1 and stats.hits == 5  # the others waited for that decode


def test_the_cache_stays_within_its_byte_budget(server: ImageServer) -> None:
    for i in range(4):
        server.routes[f"/{i}.png"] = Route(png((20, 20), (i, i, i)))
    settings = ImageFetchSettings(allow_hosts=("127.0.0.1",), cache_bytes=2 * 20 * 20 * 3)
    urls = [server.url(f"/{i}.png") for i in range(4)]
    _, stats = resolve_all(settings, *urls, urls[3], urls[0])
    # 0..3 decoded; 3 is still cached (a hit); 0 was evicted, so it is fetched and decoded again.
    assert (stats.hits, stats.misses, stats.bytes, stats.entries) == (1, 5, 2 * 1200, 2)
    assert server.hits == {"/0.png": 2, "/1.png": 1, "/2.png": 1, "/3.png": 1}


def test_disk_cache_survives_a_new_resolver(server: ImageServer, tmp_path: Path) -> None:
    server.routes["/a.png"] = Route(png())
    settings = ImageFetchSettings(allow_hosts=("127.0.0.1",), cache_dir=tmp_path / "cache")
    resolve_all(settings, server.url("/a.png"))
    stored = list((tmp_path / "cache").glob("??/*"))
    assert len(stored) == 1 and stored[0].read_bytes() == png()
    (image,), stats = resolve_all(settings, server.url("/a.png"))  # a new, empty resolver
    assert image.size == (32, 24) and (stats.hits, stats.misses, stats.bytes,
                                       stats.entries) == (0, 1, 32 * 24 * 3, 1)
    assert server.hits == {"/a.png": 1}  # decoded from the disk copy, not downloaded again


def test_the_disk_cache_keeps_to_its_budget_dropping_the_least_recently_used(
        tmp_path: Path) -> None:
    images = [png((20, 20), (i, 0, 0)) for i in range(4)]
    budget = int(sum(len(data) for data in images[:3]) * 1.05)  # room for three files
    settings = ImageFetchSettings(cache_dir=tmp_path / "c", cache_bytes=budget)
    sources = [base64.b64encode(data).decode() for data in images]
    resolve_all(settings, *sources[:3])
    time.sleep(0.05)
    resolve_all(settings, sources[0])  # image 0 is used again
    time.sleep(0.05)
    resolve_all(settings, sources[3])  # over budget: the least recently used files go
    kept = [path.read_bytes() for path in (tmp_path / "c").glob("??/*")]
    assert sum(len(data) for data in kept) <= budget
    assert sorted(kept) == sorted([images[0], images[3]])


def test_redirects_are_followed_on_allowed_hosts(server: ImageServer) -> None:
    server.routes["/a.png"] = Route(png())
    server.routes["/go"] = Route(status=302, headers={"Location": "/a.png"})
    (image,), _ = resolve_all(LOOPBACK, server.url("/go"))
    assert image.size == (32, 24) and server.hits == {"/go": 1, "/a.png": 1}


def test_octet_stream_is_accepted_when_the_bytes_are_an_image(server: ImageServer) -> None:
    server.routes["/blob"] = Route(png(), headers={"Content-Type": "application/octet-stream"})
    server.routes["/junk"] = Route(b"not an image at all",
                                   headers={"Content-Type": "application/octet-stream"})
    (image,), _ = resolve_all(LOOPBACK, server.url("/blob"))
    assert image.size == (32, 24)
    with pytest.raises(ImageError, match=re.escape(
            "documents[0].image is not an image in a supported format (19 bytes, starting "
            "b'not an i')")):
        resolve_all(LOOPBACK, server.url("/junk"))


def test_allowlist_accepts_networks_and_hostnames(server: ImageServer) -> None:
    server.routes["/a.png"] = Route(png())
    resolve_all(ImageFetchSettings(allow_hosts=("127.0.0.0/8",)), server.url("/a.png"))
    resolve_all(ImageFetchSettings(allow_hosts=("localhost",)),
                server.url("/a.png", host="localhost"))
    assert server.hits == {"/a.png": 2}
    assert server.host_headers[-1] == f"localhost:{server.port}"


def test_https_goes_to_the_vetted_ip_with_the_hostname_for_sni_and_verification(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection goes to 127.0.0.1, yet TLS verifies the certificate for 'localhost'
    (it has no IP entry), so the fetch only works if SNI and verification use the hostname."""
    if subprocess.run(["openssl", "version"], capture_output=True).returncode != 0:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    monkeypatch.setattr("certifi.where", lambda: str(cert))  # trust only the test certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    tls.sni_callback = lambda sock, name, context: names.append(name)
    server = ImageServer(tls)
    try:
        server.routes["/a.png"] = Route(png())
        (image,), _ = resolve_all(ImageFetchSettings(allow_hosts=("localhost",)),
                                  server.url("/a.png", host="localhost"))
        assert image.size == (32, 24) and names == ["localhost"]
        url = server.url("/a.png")  # by IP: the certificate does not name 127.0.0.1
        with pytest.raises(ImageFetchError, match=re.escape(
                f"documents[0].image: could not fetch {url!r} (ConnectError)")):
            resolve_all(LOOPBACK, url)
        assert server.hits == {"/a.png": 1}
    finally:
        server.close()


# --- the SSRF guard ------------------------------------------------------------------------

@pytest.mark.parametrize(("host", "shown"), [
    ("127.0.0.1", "127.0.0.1 is a loopback address"),
    ("[::1]", "::1 is a loopback address"),
    ("10.0.0.5", "10.0.0.5 is a private address"),
    ("192.168.1.20", "192.168.1.20 is a private address"),
    ("169.254.169.254", "169.254.169.254 is a link-local address"),
    ("224.0.0.1", "224.0.0.1 is a multicast address"),
    ("0.0.0.0", "0.0.0.0 is an unspecified address"),
    ("240.0.0.1", "240.0.0.1 is a reserved address"),
    ("100.64.0.1", "100.64.0.1 is a non-global address"),
    ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1 is a loopback address"),
    ("[fe80::1]", "fe80::1 is a link-local address"),
])
def test_internal_addresses_are_refused_before_connecting(
        host: str, shown: str, connections: list[object]) -> None:
    url = f"http://{host}:8000/x.png"
    message = f"documents[0].image: refusing to fetch {url!r}: {shown}".replace(
        "is an unspecified", "is a unspecified")
    with pytest.raises(ImageFetchError, match=re.escape(message + " (not in the server's")):
        resolve_all(ImageFetchSettings(), url)
    assert connections == []


def test_names_resolving_to_internal_addresses_are_refused(
        monkeypatch: pytest.MonkeyPatch, connections: list[object]) -> None:
    fake_dns(monkeypatch, {"intranet.example": "10.0.0.5", "meta.example": "169.254.169.254"})
    for name, kind in (("intranet.example", "10.0.0.5, a private"),
                       ("meta.example", "169.254.169.254, a link-local")):
        url = f"https://{name}/img.png"
        with pytest.raises(ImageFetchError, match=re.escape(
                f"documents[0].image: refusing to fetch {url!r}: {name!r} resolves to {kind} "
                f"address (not in the server's allowed hosts)")):
            resolve_all(ImageFetchSettings(allow_hosts=("127.0.0.1",)), url)
    assert connections == []


def test_localhost_is_refused_without_the_allowlist(
        server: ImageServer, connections: list[object]) -> None:
    server.routes["/a.png"] = Route(png())
    url = server.url("/a.png", host="localhost")
    with pytest.raises(ImageFetchError, match=re.escape(
            f"refusing to fetch {url!r}: 'localhost' resolves to")):
        resolve_all(ImageFetchSettings(), url)
    assert connections == [] and server.hits == {}


def test_a_redirect_to_an_internal_address_is_refused(
        server: ImageServer, connections: list[object]) -> None:
    server.routes["/go"] = Route(status=302,
                                 headers={"Location": "http://169.254.169.254/latest/meta"})
    url = server.url("/go")
    with pytest.raises(ImageFetchError, match=re.escape(
            f"refusing to fetch {url!r}: 169.254.169.254 is a link-local address")):
        resolve_all(LOOPBACK, url)
    assert server.hits == {"/go": 1}
    assert all(address[0] == "127.0.0.1" for address in connections)


def test_redirect_loops_and_other_schemes_are_refused(server: ImageServer) -> None:
    server.routes["/loop"] = Route(status=301, headers={"Location": "/loop"})
    server.routes["/file"] = Route(status=302, headers={"Location": "file:///etc/passwd"})
    url = server.url("/loop")
    with pytest.raises(ImageFetchError, match=re.escape(
            f"documents[0].image: fetching {url!r} exceeded 3 redirects")):
        resolve_all(LOOPBACK, url)
    assert server.hits["/loop"] == 4
    url = server.url("/file")
    with pytest.raises(ImageFetchError, match=re.escape(
            f"fetching {url!r} was redirected to 'file:///etc/passwd', which is not an http(s)")):
        resolve_all(LOOPBACK, url)


# --- limits ---------------------------------------------------------------------------------

def test_non_image_content_types_are_refused_before_reading(server: ImageServer) -> None:
    server.routes["/page"] = Route(b"<html></html>", headers={"Content-Type": "text/html"})
    url = server.url("/page")
    with pytest.raises(ImageFetchError, match=re.escape(
            f"documents[0].image: {url!r} is not an image (content-type 'text/html')")):
        resolve_all(LOOPBACK, url)


def test_http_errors_are_reported(server: ImageServer) -> None:
    url = server.url("/nothing-here.png")
    with pytest.raises(ImageFetchError, match=re.escape(
            f"documents[0].image: fetching {url!r} returned HTTP 404")):
        resolve_all(LOOPBACK, url)


@pytest.mark.parametrize("declared", [True, False])
def test_the_byte_cap_holds_with_and_without_content_length(
        server: ImageServer, declared: bool) -> None:
    server.routes["/big"] = Route(b"\x89PNG" + b"\0" * 5000, length=declared)
    settings = ImageFetchSettings(allow_hosts=("127.0.0.1",),
                                  limits=ImageLimits(max_bytes=1000))
    expected = "5004 bytes > 1000" if declared else "more than 1000 bytes"
    with pytest.raises(InputTooLargeError, match=re.escape(
            f"documents[0].image is over the image size limit: {expected}")):
        resolve_all(settings, server.url("/big"))


def test_a_slow_server_times_out(server: ImageServer) -> None:
    server.routes["/slow.png"] = Route(png(), delay=2.0)
    settings = ImageFetchSettings(allow_hosts=("127.0.0.1",),
                                  limits=ImageLimits(fetch_timeout=0.3))
    url = server.url("/slow.png")
    with pytest.raises(ImageFetchError, match=re.escape(
            f"documents[0].image: fetching {url!r} timed out after 0.3 s")):
        resolve_all(settings, url)


def test_pixel_limits_apply_to_fetched_images(server: ImageServer) -> None:
    server.routes["/wide.png"] = Route(png((400, 300)))
    settings = ImageFetchSettings(allow_hosts=("127.0.0.1",),
                                  limits=ImageLimits(max_pixels=100_000))
    with pytest.raises(InputTooLargeError, match=re.escape(
            "documents[0].image is 400x300 = 120000 pixels; the limit is 100000")):
        resolve_all(settings, server.url("/wide.png"))


# --- base64 and local paths -----------------------------------------------------------------

@pytest.mark.parametrize("path", ["/etc/passwd", "./cat.png", "../secret.png", "~/x.jpg",
                                  "C:\\images\\a.png", "file:///etc/hosts"])
def test_local_paths_are_refused_without_a_media_folder(path: str) -> None:
    with pytest.raises(ImageError, match=re.escape(
            f"documents[0].image: local file paths are not accepted by this server "
            f"(got {path!r}); send a URL or base64 data")):
        resolve_all(ImageFetchSettings(), path)


def test_files_under_the_media_folder_are_served_and_nothing_else(tmp_path: Path) -> None:
    media = tmp_path / "media"
    (media / "sub").mkdir(parents=True)
    (media / "sub" / "cat.png").write_bytes(png((50, 40)))
    (tmp_path / "outside.png").write_bytes(png())
    (media / "link.png").symlink_to(tmp_path / "outside.png")
    settings = ImageFetchSettings(media_dir=media)
    (image,), _ = resolve_all(settings, "sub/cat.png")
    assert image.size == (50, 40)
    for path in ("../outside.png", str(tmp_path / "outside.png"), "link.png", "sub/none.png"):
        with pytest.raises(ImageError, match=re.escape(
                f"documents[0].image: {path!r} is not a file under the server's media folder")):
            resolve_all(settings, path)


def test_bad_base64_names_the_field() -> None:
    with pytest.raises(ImageError, match=re.escape(
            "documents[0].image is neither an existing file, an http(s) URL, nor valid base64")):
        resolve_all(ImageFetchSettings(), "not base64 at all!")
    with pytest.raises(ImageError, match=re.escape(
            "documents[0].image is a data URI without base64 encoding: 'data:image/png'")):
        resolve_all(ImageFetchSettings(), "data:image/png,abc")
