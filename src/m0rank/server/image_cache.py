"""The two stores behind the server's image cache, both keyed by the sha256 of image bytes.

:class:`ImageLRU` keeps decoded images in memory, bounded by decoded bytes (a
``cachetools.LRUCache`` sized by ``getsizeof``); :class:`DiskStore` keeps encoded bytes (and
which URL had which content) in a folder, so a restart does not download them again.
:class:`m0rank.server.images.ImageResolver` decides what goes where. ``ImageLRU`` is used from
the event loop only; ``DiskStore`` is called from worker threads and serialises its writes with
a lock.

The disk store is a cache, never a source of truth: any I/O fault in it (an entry that is a
directory, a dangling symlink, a file where a folder should be, a full or read-only disk)
degrades to a cache miss with one warning per minute and a count in ``errors`` (reported as
``m0rank_cache_errors_total{cache="image"}``). A folder that cannot be used at all at start-up
disables the disk store instead of stopping the server.

Why not ``diskcache``: its SQLite index is a second source of truth that has to agree with the
files, and it gives no way to keep the plain ``ab/abcd...`` layout that operators inspect,
back up and share between processes; the store here is 100 lines with the same semantics.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

from cachetools import LRUCache
from PIL import Image

__all__ = ["ImageLRU", "DiskStore", "open_disk_store"]

logger = logging.getLogger(__name__)


def _decoded_bytes(entry: Image.Image) -> int:
    return entry.width * entry.height * len(entry.getbands())


class ImageLRU:
    """Decoded images by content hash, bounded by decoded bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: LRUCache[str, Image.Image] = LRUCache(maxsize=max_bytes,
                                                          getsizeof=_decoded_bytes)

    @property
    def bytes(self) -> int:
        """Decoded bytes held."""
        return int(self.items.currsize)

    def get(self, key: str) -> Image.Image | None:
        """The image for ``key``, marked most recently used, or None."""
        return self.items.get(key)

    def put(self, key: str, image: Image.Image) -> None:
        """Keep ``image``, evicting the least recently used entries to stay in budget."""
        if _decoded_bytes(image) > self.max_bytes or key in self.items:
            return
        self.items[key] = image


class DiskStore:
    """Encoded image bytes by sha256 in a folder (``ab/abcd...``), pruned oldest-used first to
    a byte budget, plus ``urls/<sha256 of URL>`` files naming a URL's content hash and time."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.errors = 0
        self._lock = threading.Lock()
        self._last_warning = -1e9
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "urls").mkdir(exist_ok=True)
        self.bytes = sum(_size(path) for path in folder.glob("??/*"))

    def read(self, digest: str) -> bytes | None:
        """The stored bytes of ``digest`` (refreshing its use time), or None."""
        path = self.folder / digest[:2] / digest
        try:
            if not path.exists():
                return None
            data = path.read_bytes()
            os.utime(path)
        except OSError as exc:
            return self._fault("read", path, exc)
        return data if hashlib.sha256(data).hexdigest() == digest else None

    def write(self, digest: str, data: bytes) -> None:
        """Store ``data`` atomically, then prune to the budget."""
        path = self.folder / digest[:2] / digest
        with self._lock:
            try:
                self._write_locked(path, data)
            except OSError as exc:
                self._fault("write", path, exc)

    def read_url(self, url: str) -> tuple[str, float] | None:
        """``(content hash, fetch time)`` recorded for ``url``, or None."""
        path = self._url_path(url)
        try:
            if not path.exists():
                return None
            digest, fetched = path.read_text().split()
            return digest, float(fetched)
        except ValueError:
            return None
        except OSError as exc:
            return self._fault("read", path, exc)

    def write_url(self, url: str, digest: str, fetched: float) -> None:
        """Record that ``url`` had content ``digest`` at ``fetched`` (epoch seconds)."""
        path = self._url_path(url)
        try:
            partial = path.with_suffix(f".{os.getpid()}.part")
            partial.write_text(f"{digest} {fetched}")
            partial.replace(path)
        except OSError as exc:
            self._fault("write", path, exc)

    def _write_locked(self, path: Path, data: bytes) -> None:
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

    def _fault(self, action: str, path: Path, exc: OSError) -> None:
        """Count an I/O fault; warn at most once a minute. The caller treats it as a miss."""
        self.errors += 1
        now = time.monotonic()
        if now - self._last_warning >= 60:
            self._last_warning = now
            logger.warning("image disk cache: cannot %s %s (%s); treated as a cache miss "
                           "(%d fault(s) so far)", action, path, exc.strerror or exc,
                           self.errors)

    def _url_path(self, url: str) -> Path:
        return self.folder / "urls" / hashlib.sha256(url.encode()).hexdigest()

    def _prune(self) -> None:
        """Delete least recently used files until 90 % of the budget (the lock is held)."""
        files = []
        for path in self.folder.glob("??/*"):
            try:
                stat = path.stat()
            except OSError:  # removed by another process, or a dangling link
                continue
            files.append((stat.st_mtime, stat.st_size, path))
        for _, size, path in sorted(files):
            if self.bytes <= self.max_bytes * 0.9:
                break
            try:
                path.unlink(missing_ok=True)
            except OSError:  # a directory where a file should be: leave it, count it
                self.errors += 1
                continue
            self.bytes -= size


def open_disk_store(folder: Path, max_bytes: int) -> DiskStore | None:
    """A :class:`DiskStore` on ``folder``, or ``None`` (with a warning) when the folder cannot
    be used: the server then runs with its memory cache only."""
    try:
        return DiskStore(folder, max_bytes)
    except OSError as exc:
        logger.warning("image disk cache disabled: cannot use %s (%s)", folder,
                       exc.strerror or exc)
        return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size if path.is_file() else 0
    except OSError:
        return 0
