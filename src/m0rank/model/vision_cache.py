"""A byte-bounded LRU cache of vision-encoder outputs, keyed by image content.

In document reranking the same page is scored against many queries (every query of a
session re-ranks the same candidate pages), and for a page-image pair the vision encoder is
about four fifths of the work. Caching its merged features (``<|image_pad|>`` embeddings,
``tokens x hidden``) means a page is encoded once per process.

The key is the SHA-256 of the decoded pixels (mode, size, raw bytes) plus the resize settings
and a fingerprint of the model, so a cached entry is only reused by the same weights with the
same pixel budget. Hits, misses, evictions and bytes are counted for the server's metrics.
The cache is thread-safe: the server prepares requests in threads while the model runs.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = ["CachedFeatures", "VisionFeatureCache", "image_cache_key"]


@dataclass(frozen=True)
class CachedFeatures:
    """One image's merged vision features and the patch grid they came from."""

    features: torch.Tensor  # (tokens, hidden), on the model's device and dtype
    grid: tuple[int, int, int]

    @property
    def nbytes(self) -> int:
        """Bytes held on the device by this entry."""
        return self.features.numel() * self.features.element_size()


def image_cache_key(image: Image.Image, settings: str) -> str:
    """SHA-256 over the decoded pixels of ``image`` and ``settings`` (resize budget + model).

    Hashing decoded pixels rather than the encoded file lets the same page sent as a path,
    a URL, base64 or raw bytes share one entry.
    """
    digest = hashlib.sha256()
    digest.update(f"{settings}|{image.mode}|{image.size[0]}x{image.size[1]}|".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


class VisionFeatureCache:
    """Least-recently-used map ``key -> CachedFeatures`` holding at most ``max_bytes``.

    Args:
        max_bytes: Device bytes the cached features may occupy; ``0`` disables the cache
            (every lookup misses, nothing is stored).

    Example:
        >>> cache = VisionFeatureCache(max_bytes=0)
        >>> cache.get("k") is None
        True
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self._entries: OrderedDict[str, CachedFeatures] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._counts = {"hits": 0, "misses": 0, "evictions": 0}

    def get(self, key: str) -> CachedFeatures | None:
        """The entry for ``key`` (marked most recently used), or ``None``. Not counted: the
        caller counts with :meth:`count` once it knows whether the encoder ran."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: str, entry: CachedFeatures) -> None:
        """Store ``entry``, evicting least-recently-used entries to stay under the budget.

        An entry larger than the whole budget is not stored.
        """
        if entry.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._entries[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes
                self._counts["evictions"] += 1

    def count(self, *, hits: int = 0, misses: int = 0) -> None:
        """Record images served from the cache (hits) and images the encoder ran on (misses)."""
        with self._lock:
            self._counts["hits"] += hits
            self._counts["misses"] += misses

    def clear(self) -> None:
        """Drop every entry (for example after the vision weights changed); counters stay."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> dict[str, int]:
        """Counters and current size, prefixed ``vision_cache_`` for metric names."""
        with self._lock:
            values = {**self._counts, "entries": len(self._entries), "bytes": self._bytes,
                      "max_bytes": self.max_bytes}
        return {f"vision_cache_{name}": value for name, value in values.items()}
