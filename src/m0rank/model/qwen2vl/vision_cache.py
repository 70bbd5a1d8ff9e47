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

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cachetools import LRUCache

from m0rank.preprocessing.images import image_cache_key
from m0rank.types import CacheStats

if TYPE_CHECKING:
    import torch

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


class _CountingLRU(LRUCache[str, CachedFeatures]):
    """``cachetools.LRUCache`` sized by device bytes that counts what it evicts."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(maxsize=max_bytes, getsizeof=_entry_bytes)
        self.evictions = 0

    def popitem(self) -> tuple[str, CachedFeatures]:
        self.evictions += 1
        return super().popitem()


def _entry_bytes(entry: CachedFeatures) -> int:
    return entry.nbytes


class VisionFeatureCache:
    """Least-recently-used map ``key -> CachedFeatures`` holding at most ``max_bytes``.

    A ``cachetools.LRUCache`` sized by each entry's device bytes, behind a lock (the server
    prepares requests in threads while the model runs), plus hit/miss counters.

    Args:
        max_bytes: Device bytes the cached features may occupy; ``0`` disables the cache
            (every lookup misses, nothing is stored).

    Example:
        >>> cache = VisionFeatureCache(max_bytes=0)
        >>> cache.get("k") is None
        True
    """

    def __init__(self, max_bytes: int) -> None:
        self._lock = threading.Lock()
        self._entries = _CountingLRU(max(0, int(max_bytes)))
        self._evicted_before = 0  # evictions of caches replaced by a new budget
        self._hits = 0
        self._misses = 0

    @property
    def max_bytes(self) -> int:
        """The byte budget; setting it empties the cache (counters stay)."""
        return int(self._entries.maxsize)

    @max_bytes.setter
    def max_bytes(self, value: int) -> None:
        with self._lock:
            self._evicted_before += self._entries.evictions
            self._entries = _CountingLRU(max(0, int(value)))

    def get(self, key: str) -> CachedFeatures | None:
        """The entry for ``key`` (marked most recently used), or ``None``. Not counted: the
        caller counts with :meth:`count` once it knows whether the encoder ran."""
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, entry: CachedFeatures) -> None:
        """Store ``entry``, evicting least-recently-used entries to stay under the budget.

        An entry larger than the whole budget is not stored.
        """
        with self._lock:
            if 0 < entry.nbytes <= self._entries.maxsize:
                self._entries[key] = entry

    def count(self, *, hits: int = 0, misses: int = 0) -> None:
        """Record images served from the cache (hits) and images the encoder ran on (misses)."""
        with self._lock:
            self._hits += hits
            self._misses += misses

    def clear(self) -> None:
        """Drop every entry (for example after the vision weights changed); counters stay."""
        with self._lock:
            evictions = self._entries.evictions
            self._entries.clear()  # MutableMapping.clear pops items: not evictions
            self._entries.evictions = evictions

    def stats(self) -> CacheStats:
        """Counters and current size, reported as ``cache="vision"``."""
        with self._lock:
            return CacheStats(hits=self._hits, misses=self._misses,
                              evictions=self._evicted_before + self._entries.evictions,
                              entries=len(self._entries), bytes=int(self._entries.currsize),
                              max_bytes=int(self._entries.maxsize))
