"""Disk image cache faults degrade to cache misses with a warning and a metric; they never fail
a request or stop the server."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from image_helpers import Route, png, resolve_all
from server_helpers import call, make_app

from m0rank.server.image_cache import DiskStore, open_disk_store
from m0rank.server.images import ImageFetchSettings


def test_an_entry_that_is_a_directory_is_a_miss_counted_as_an_error(server, tmp_path: Path,
                                                                     caplog) -> None:
    server.routes["/a.png"] = Route(png())
    cache = tmp_path / "cache"
    digest = hashlib.sha256(png()).hexdigest()
    (cache / digest[:2] / digest).mkdir(parents=True)  # where the file should be
    settings = ImageFetchSettings(allow_hosts=("127.0.0.1",), cache_dir=cache)
    with caplog.at_level(logging.WARNING, logger="m0rank.server.image_cache"):
        (first,), _ = resolve_all(settings, server.url("/a.png"))
        (again,), stats = resolve_all(settings, server.url("/a.png"))  # a fresh resolver
    assert first.size == again.size == (32, 24)
    assert stats.errors >= 1
    assert server.hits == {"/a.png": 2}  # the broken entry was a miss: fetched again
    assert sum("treated as a cache miss" in r.message for r in caplog.records) == 1


def test_dangling_links_and_files_in_place_of_folders_do_not_stop_the_store(
        tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "ab").mkdir(parents=True)
    (cache / "ab" / ("ab" + "0" * 62)).symlink_to(tmp_path / "gone")  # dangling
    (cache / "urls").write_text("not a folder")  # a file where a folder should be
    assert open_disk_store(cache, 1 << 20) is None  # disabled with a warning, not a crash
    (cache / "urls").unlink()
    store = DiskStore(cache, 1 << 20)
    assert store.read("ab" + "0" * 62) is None
    store.write("cd" + "1" * 62, b"data")
    assert store.read("cd" + "1" * 62) is None  # content hash does not match: not served


def test_a_server_with_an_unusable_cache_folder_starts_and_serves(dummy_reranker,
                                                                  tmp_path: Path) -> None:
    blocked = tmp_path / "cache"
    blocked.write_text("a file, not a folder")

    async def scenario(client):
        return await client.post("/v1/rerank", json={"query": "red", "documents": ["red"]})

    response = call(make_app(dummy_reranker, image_cache_dir=blocked), scenario)
    assert response.status_code == 200
