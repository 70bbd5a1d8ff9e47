"""Near-duplicates and diversity among ranked documents (m0rank extensions to the APIs).

- ``dedup=True`` marks a document that nearly duplicates a better-ranked one
  (``duplicate_of``): images by a 64-bit difference hash (dHash, Krawetz 2013) within
  :data:`IMAGE_HAMMING` bits, texts by the MinHash estimate of the Jaccard similarity of their
  word 5-shingles (Broder 1997) of at least :data:`TEXT_JACCARD`.
- ``diversity=LAMBDA`` re-orders by maximal marginal relevance (Carbonell & Goldstein 1998):
  each next document maximises ``LAMBDA * score - (1 - LAMBDA) * max similarity to those
  already chosen``; ``1.0`` is the plain ranking, ``0.0`` only avoids repeats.

Similarity is the same signal as dedup: ``1 - hamming / 64`` for two images, estimated
Jaccard for two texts, 0 across modalities. A PDF page compares by its image.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
from PIL import Image

from m0rank.errors import InvalidInputError
from m0rank.types import Document

__all__ = ["Fingerprint", "fingerprint", "similarity", "mark_duplicates", "mmr_order",
           "check_diversity", "IMAGE_HAMMING", "TEXT_JACCARD"]

IMAGE_HAMMING = 6  # of 64 bits: re-encodes, small crops and rescans stay within it
TEXT_JACCARD = 0.8
_SHINGLE = 5
_PERMUTATIONS = 64
# Multiply-shift hash family (Dietzfelbinger et al. 1997): h(x) = a * x + b mod 2^64 with odd
# a; fixed seeds, so the same text always gets the same signature in every process.
_SEEDS = np.random.default_rng(20260101).integers(0, np.iinfo(np.uint64).max, (2, _PERMUTATIONS),
                                                  dtype=np.uint64, endpoint=True)
_A, _B = _SEEDS[0] | np.uint64(1), _SEEDS[1]
_WORD = re.compile(r"\w+", re.UNICODE)

Fingerprint = tuple[str, object]  # ("image", int) | ("text", np.ndarray) | ("none", None)


def check_diversity(value: object, field: str = "diversity") -> float | None:
    """``value`` if ``None`` or a number in [0, 1].

    Raises:
        InvalidInputError: Anything else, naming ``field`` and the value.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InvalidInputError(f"{field} must be a number from 0 to 1 (1: plain relevance), "
                                f"got {value!r}")
    return float(value)


def fingerprint(document: Document) -> Fingerprint:
    """The dHash of a document's first image, else the MinHash of its text."""
    if document.images and isinstance(document.images[0], Image.Image):
        return ("image", _dhash(document.images[0]))
    if document.text:
        return ("text", _minhash(document.text))
    return ("none", None)


def similarity(a: Fingerprint, b: Fingerprint) -> float:
    """Similarity in [0, 1] of two fingerprints (0 across kinds)."""
    if a[0] != b[0] or a[0] == "none":
        return 0.0
    if a[0] == "image":
        return 1.0 - bin(int(a[1]) ^ int(b[1])).count("1") / 64  # type: ignore[call-overload]
    return float(np.mean(np.asarray(a[1]) == np.asarray(b[1])))


def mark_duplicates(order: Sequence[int], prints: Sequence[Fingerprint]) -> dict[int, int]:
    """For each position in ``order`` that nearly duplicates an earlier one, that earlier
    position (the first such in ranked order)."""
    found: dict[int, int] = {}
    for rank, current in enumerate(order):
        for earlier in order[:rank]:
            if earlier not in found and _duplicate(prints[current], prints[earlier]):
                found[current] = earlier
                break
    return found


def mmr_order(scores: Sequence[float], prints: Sequence[Fingerprint], diversity: float,
              top_n: int | None = None) -> list[int]:
    """Positions re-ordered by maximal marginal relevance (see module docstring); ties keep
    input order."""
    remaining = list(range(len(scores)))
    closest = [0.0] * len(scores)  # max similarity to the chosen ones
    chosen: list[int] = []
    limit = len(scores) if top_n is None else min(top_n, len(scores))
    while len(chosen) < limit:
        pick = max(remaining, key=lambda i: (
            diversity * scores[i] - (1 - diversity) * closest[i], -i))
        chosen.append(pick)
        remaining.remove(pick)
        for i in remaining:
            closest[i] = max(closest[i], similarity(prints[i], prints[pick]))
    return chosen


def _duplicate(a: Fingerprint, b: Fingerprint) -> bool:
    if a[0] != b[0] or a[0] == "none":
        return False
    if a[0] == "image":
        return bin(int(a[1]) ^ int(b[1])).count("1") <= IMAGE_HAMMING  # type: ignore[call-overload]
    return similarity(a, b) >= TEXT_JACCARD


def _dhash(image: Image.Image) -> int:
    """64-bit difference hash: is each pixel brighter than its right neighbour (9x8 grey)."""
    small = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=float)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def _minhash(text: str) -> np.ndarray:
    """MinHash signature of the word 5-shingles (shorter texts: the whole text)."""
    words = [w.lower() for w in _WORD.findall(text)]
    shingles = {" ".join(words[i:i + _SHINGLE])
                for i in range(max(1, len(words) - _SHINGLE + 1))}
    values = np.array([int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "big")
                       for s in shingles], dtype=np.uint64)
    with np.errstate(over="ignore"):  # arithmetic mod 2^64 is the point
        hashed = values[:, None] * _A[None, :] + _B[None, :]  # (shingles, permutations)
    return hashed.min(axis=0)
