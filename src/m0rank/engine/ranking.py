"""Ordering scored documents: the one place that decides ranks and ``top_n``.

``Reranker.rank``, the HTTP server, the batch job and the evaluation harness all rank through
:func:`rank_order`, so ties, ``top_n`` and its validation behave the same on every path. Wire
dialects that spell "all" differently (vLLM's ``top_n: 0``) translate at their edge
(``m0rank.server.protocol``), never here.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def rank_order(scores: Sequence[float], top_n: int | None = None) -> list[int]:
    """Indices of ``scores`` from most to least relevant, ties in input order, cut to
    ``top_n`` (``None``: all). Validates ``top_n`` with :func:`check_top_n`."""
    keep = check_top_n(top_n)
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    return order if keep is None else order[:keep]
