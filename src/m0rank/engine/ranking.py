"""Ordering scored documents: the one place that decides ranks and ``top_n``.

``Reranker.rank``, the HTTP server, the batch job and the evaluation harness all rank through
:func:`rank_order`, so ties, ``top_n`` and its validation behave the same on every path. Wire
dialects that spell "all" differently (vLLM's ``top_n: 0``) translate at their edge
(``m0rank.server.protocol``), never here.

``diversity`` (maximal marginal relevance) re-orders here too, from the documents'
fingerprints (``m0rank.engine.diversity``), so it is the same on every path.
"""

from __future__ import annotations

from collections.abc import Sequence

from m0rank.engine.diversity import Fingerprint, check_diversity, mmr_order
from m0rank.errors import InvalidInputError

__all__ = ["check_top_n", "rank_order"]


def check_top_n(top_n: object, field: str = "top_n", none: str = "None") -> int | None:
    """``top_n`` if it is ``None`` or a positive int (``bool`` is not an int here); ``none``
    is how the caller's language spells ``None`` in the message (``"null"`` over HTTP).

    Raises:
        InvalidInputError: Anything else, naming ``field`` and the value.
    """
    if top_n is None:
        return None
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise InvalidInputError(f"{field} must be a positive integer or {none}, got {top_n!r}")
    return top_n


def rank_order(scores: Sequence[float], top_n: int | None = None, *,
               diversity: float | None = None,
               fingerprints: Sequence[Fingerprint] | None = None) -> list[int]:
    """Indices of ``scores`` from most to least relevant, ties in input order, cut to
    ``top_n`` (``None``: all). Validates ``top_n`` with :func:`check_top_n`.

    With ``diversity`` (a λ in [0, 1]) and the documents' ``fingerprints``, the order is by
    maximal marginal relevance instead (``m0rank.engine.diversity.mmr_order``).
    """
    keep = check_top_n(top_n)
    if check_diversity(diversity) is not None:
        if fingerprints is None or len(fingerprints) != len(scores):
            raise InvalidInputError("diversity needs one fingerprint per score")
        return mmr_order(scores, fingerprints, float(diversity), keep)  # type: ignore[arg-type]
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return order if keep is None else order[:keep]
