"""Splitting a long text into overlapping windows on sentence boundaries (opt-in chunking).

By default a text longer than the context is cut, as the reference does, so scores match it.
With ``chunk_size`` a long text is split into windows of at most ``chunk_size`` tokens that
end on sentence boundaries where possible; each window is scored and the document scores by
its best window (MaxP, Dai & Callan 2019). Windows overlap by about ``chunk_overlap`` tokens,
so a passage cut by one boundary is whole in the next window.

Tokens here are counted the same way for every family: a word, a number, a punctuation mark
or one CJK character each count as one (:func:`count_tokens`). Subword tokenizers give a few
more tokens per word, so a window of ``chunk_size`` such tokens may hold somewhat more model
tokens; what matters for MaxP is that windows are passage-sized, not the exact count.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from m0rank.errors import InvalidInputError

__all__ = ["ChunkOptions", "split_text", "count_tokens", "token_spans"]

# A piece is a CJK character, a run of word characters, or one other non-space character.
_PIECE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W\u3400-\u9fff\uf900-\ufaff]+|[^\w\s]",
                    re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?。！？]['\")\]]*(?=\s|$)|\n\s*\n")


@dataclass(frozen=True, kw_only=True)
class ChunkOptions:
    """Window size and overlap in tokens (see :func:`count_tokens`).

    Raises:
        InvalidInputError: ``chunk_size`` below 8, or ``chunk_overlap`` negative or not
            smaller than half of ``chunk_size``.
    """

    chunk_size: int
    chunk_overlap: int = 0

    def __post_init__(self) -> None:
        size, overlap = self.chunk_size, self.chunk_overlap
        if isinstance(size, bool) or not isinstance(size, int) or size < 8:
            raise InvalidInputError(f"chunk_size must be an integer of at least 8 tokens, got "
                                    f"{size!r}")
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not \
                0 <= overlap <= size // 2:
            raise InvalidInputError(f"chunk_overlap must be an integer from 0 to chunk_size // 2 "
                                    f"({size // 2}), got {overlap!r}")


def token_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the tokens of ``text`` (see the module docstring)."""
    return [match.span() for match in _PIECE.finditer(text)]


def count_tokens(text: str) -> int:
    """Tokens of ``text`` as chunking counts them."""
    return sum(1 for _ in _PIECE.finditer(text))


def split_text(text: str, options: ChunkOptions) -> list[tuple[int, int]]:
    """``[start, end)`` character spans of the windows of ``text``; one span for the whole
    text when it fits in ``chunk_size`` tokens.

    A window ends at the last sentence boundary that keeps it within ``chunk_size`` tokens,
    or mid-sentence when one sentence is longer than a window; the next window starts
    ``chunk_overlap`` tokens before that end (at a sentence start when one is that close).
    """
    tokens = token_spans(text)
    if len(tokens) <= options.chunk_size:
        return [(0, len(text))]
    boundaries = _sentence_starts(text, tokens)
    windows: list[tuple[int, int]] = []
    first = 0
    while first < len(tokens):
        last = min(first + options.chunk_size, len(tokens))  # exclusive token index
        if last < len(tokens):
            last = _cut_at_sentence(boundaries, first, last, options.chunk_size)
        windows.append((tokens[first][0], tokens[last - 1][1]))
        if last >= len(tokens):
            break
        first = _next_start(boundaries, first, last, options.chunk_overlap)
    return windows


def _sentence_starts(text: str, tokens: list[tuple[int, int]]) -> list[bool]:
    """Per token: does a sentence start at it?"""
    ends = sorted({match.end() for match in _SENTENCE_END.finditer(text)})
    starts = [False] * len(tokens)
    previous_end = 0
    for i, (start, end) in enumerate(tokens):
        # a sentence end between the previous token and this one
        at = bisect.bisect_left(ends, previous_end)
        starts[i] = i == 0 or (at < len(ends) and ends[at] <= start)
        previous_end = end
    return starts


def _cut_at_sentence(boundaries: list[bool], first: int, last: int, size: int) -> int:
    """The latest sentence start in the window's second half, else ``last`` itself."""
    for index in range(last, first + size // 2, -1):
        if boundaries[index]:
            return index
    return last


def _next_start(boundaries: list[bool], first: int, last: int, overlap: int) -> int:
    """Start ``overlap`` tokens before ``last``, moved to a sentence start within that
    overlap when there is one; always after ``first``."""
    start = max(first + 1, last - overlap)
    for index in range(start, last):
        if boundaries[index]:
            return index
    return start
