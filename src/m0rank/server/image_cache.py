"""The two stores behind the server's image cache, both keyed by the sha256 of image bytes.

:class:`ImageLRU` keeps decoded images in memory, bounded by decoded bytes; :class:`DiskStore`
keeps encoded bytes (and which URL had which content) in a folder, so a restart does not
download them again. :class:`m0rank.server.images.ImageResolver` decides what goes where.
``ImageLRU`` is used from the event loop only; ``DiskStore`` is called from worker threads and
serialises its writes with a lock.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image

__all__ = ["ImageLRU", "DiskStore"]


class ImageLRU:
    """Decoded images by content hash, bounded by decoded bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.items: OrderedDict[str, tuple[Image.Image, int]] = OrderedDict()

    def get(self, key: str) -> Image.Image | None:
        """The image for ``key``, marked most recently used, or None."""
        entry = self.items.get(key)
        if entry is None:
            return None
        self.items.move_to_end(key)
        return entry[0]

    def put(self, key: str, image: Image.Image) -> None:
        """Keep ``image``, evicting the least recently used entries to stay in budget."""
        size = image.width * image.height * len(image.getbands())
        if size > self.max_bytes or key in self.items:
            return
        self.items[key] = (image, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, evicted) = self.items.popitem(last=False)
            self.bytes -= evicted


class DiskStore:
    """Encoded image bytes by sha256 in a folder (``ab/abcd...``), pruned oldest-used first to
    a byte budget, plus ``urls/<sha256 of URL>`` files naming a URL's content hash and time."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "urls").mkdir(exist_ok=True)
        self._lock = threading.Lock()
        self.bytes = sum(path.stat().st_size for path in folder.glob("??/*"))

    def read(self, digest: str) -> bytes | None:
        """The stored bytes of ``digest`` (refreshing its use time), or None."""
        path = self.folder / digest[:2] / digest
        try:
            data = path.read_bytes()
            os.utime(path)
        except OSError:
            return None
        return data if hashlib.sha256(data).hexdigest() == digest else None

    def write(self, digest: str, data: bytes) -> None:
        """Store ``data`` atomically, then prune to the budget."""
        path = self.folder / digest[:2] / digest
        with self._lock:
            if path.exists():
                os.utime(path)  # used again: the last to be pruned
                return
            if len(data) > self.max_bytes:
                return
            path.parent.mkdir(exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.part")
            partial.write_bytes(data)
            partial.replace(path)
            self.bytes += len(data)
            if self.bytes > self.max_bytes:
                self._prune()

    def read_url(self, url: str) -> tuple[str, float] | None:
        """``(content hash, fetch time)`` recorded for ``url``, or None."""
        try:
            digest, fetched = self._url_path(url).read_text().split()
            return digest, float(fetched)
        except (OSError, ValueError):
            return None

    def write_url(self, url: str, digest: str, fetched: float) -> None:
        """Record that ``url`` had content ``digest`` at ``fetched`` (epoch seconds)."""
        path = self._url_path(url)
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_text(f"{digest} {fetched}")
        partial.replace(path)

    def _url_path(self, url: str) -> Path:
        return self.folder / "urls" / hashlib.sha256(url.encode()).hexdigest()

    def _prune(self) -> None:
        """Delete least recently used files until 90 % of the budget (the lock is held)."""
        files = []
        for path in self.folder.glob("??/*"):
            try:
                stat = path.stat()
            except OSError:  # removed by another process sharing the folder
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        for _, size, path in sorted(files):
            if self.bytes <= self.max_bytes * 0.9:
                break
            path.unlink(missing_ok=True)
            self.bytes -= size
