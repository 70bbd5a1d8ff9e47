"""The SSRF-guarded fetcher: malformed URLs are 400s naming the field, only globally routable
addresses pass (embedded IPv4 included), and a cached URL is vetted again before it is served."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
from image_helpers import LOOPBACK, Route, png, resolve_all
from server_helpers import call, make_app

from m0rank.errors import ImageError, ImageFetchError
from m0rank.server.fetch import address_refusal
from m0rank.server.images import ImageFetchSettings

FIELD = "documents[0].image"


@pytest.mark.parametrize(("url", "reason"), [
    ("http://0177.0.0.1/", "is not a valid URL (Invalid IPv4 address: '0177.0.0.1')"),
    ("http://999.1.1.1/", "is not a valid URL (Invalid IPv4 address: '999.1.1.1')"),
    ("http://[::1", "is not a valid URL ("),
    ("http://[1:2::3::4]/", "is not a valid URL (Invalid IPv6 address"),
    ("http://xn--/x.png", "is not a valid URL ("),
    ("http://exa\x00mple.com/x.png", "is not a valid URL ("),
    ("http://", "is not an http(s) URL with a host"),
])
def test_malformed_urls_are_refused_naming_the_field(url: str, reason: str,
                                                     connections: list[object]) -> None:
    with pytest.raises(ImageFetchError, match=re.escape(f"{FIELD}: {url!r} {reason}")):
        resolve_all(ImageFetchSettings(), url)
    assert connections == []


@pytest.mark.parametrize(("address", "reason"), [
    ("fec0::1", "a site-local address"),
    ("2002:7f00:1::", "a loopback address (it embeds 127.0.0.1)"),
    ("2002:a9fe:a9fe::", "a link-local address (it embeds 169.254.169.254)"),
    ("64:ff9b::a9fe:a9fe", "a link-local address (it embeds 169.254.169.254)"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "a loopback address (it embeds 127.0.0.1)"),
    ("::ffff:10.1.2.3", "a private address"),
])
def test_embedded_and_site_local_addresses_are_refused(address: str, reason: str) -> None:
    assert address_refusal(ipaddress.ip_address(address)) == reason


def test_global_addresses_pass() -> None:
    for address in ("93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
                    "2002:5db8:d70e::"):  # 6to4 of a public address
        assert address_refusal(ipaddress.ip_address(address)) is None


def test_a_6to4_loopback_url_is_refused_before_connecting(connections: list[object]) -> None:
    url = "http://[2002:7f00:1::]:8000/x.png"
    with pytest.raises(ImageFetchError, match=re.escape(
            "is a loopback address (it embeds 127.0.0.1) (not in the server's allowed hosts)")):
        resolve_all(ImageFetchSettings(), url)
    assert connections == []


def test_a_cached_url_is_vetted_again_after_a_stricter_restart(server, tmp_path: Path) -> None:
    server.routes["/a.png"] = Route(png())
    cache = tmp_path / "cache"
    resolve_all(ImageFetchSettings(allow_hosts=("127.0.0.1",), cache_dir=cache),
                server.url("/a.png"))
    with pytest.raises(ImageFetchError, match="127.0.0.1 is a loopback address"):
        resolve_all(ImageFetchSettings(cache_dir=cache), server.url("/a.png"))
    assert server.hits == {"/a.png": 1}


def test_a_data_uri_must_declare_an_image_type() -> None:
    import base64

    uri = "data:text/html;base64," + base64.b64encode(png()).decode()
    with pytest.raises(ImageError, match=re.escape(
            f"{FIELD} is a data URI of type 'text/html'; expected image/*")):
        resolve_all(LOOPBACK, uri)


@pytest.mark.parametrize("url", ["http://0177.0.0.1/", "http://[::1", "http://"])
def test_bad_urls_are_400_over_http(dummy_reranker, url: str) -> None:
    async def post(client):
        return await client.post("/v1/rerank", json={"query": "q",
                                                     "documents": [{"image": url}]})

    response = call(make_app(dummy_reranker), post)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{FIELD}: {url!r}")
