"""Chunking: windows within chunk_size, on sentence boundaries, overlapping, covering all."""

from __future__ import annotations

import re

import pytest

from m0rank.errors import InvalidInputError
from m0rank.preprocessing.chunking import ChunkOptions, count_tokens, split_text

SENTENCES = [f"Sentence number {i} talks about topic {i % 7} at some length." for i in range(60)]
TEXT = " ".join(SENTENCES)


def test_short_text_is_one_window() -> None:
    assert split_text("A short text.", ChunkOptions(chunk_size=16)) == [(0, 13)]


def test_windows_fit_end_on_sentences_and_cover_the_text() -> None:
    windows = split_text(TEXT, ChunkOptions(chunk_size=50, chunk_overlap=10))
    assert len(windows) > 5
    assert windows[0][0] == 0 and windows[-1][1] == len(TEXT)
    for (start, end), (next_start, _) in zip(windows, windows[1:], strict=False):
        assert count_tokens(TEXT[start:end]) <= 50
        assert TEXT[start:end].endswith(".")  # cut at a sentence end
        assert next_start < end  # overlap: nothing falls between windows


def test_overlap_zero_gives_adjacent_windows() -> None:
    windows = split_text(TEXT, ChunkOptions(chunk_size=50))
    for (_, end), (next_start, _) in zip(windows, windows[1:], strict=False):
        assert TEXT[end:next_start].strip() == ""


def test_a_sentence_longer_than_a_window_is_cut_mid_sentence() -> None:
    text = " ".join(["word"] * 100)
    windows = split_text(text, ChunkOptions(chunk_size=30, chunk_overlap=5))
    assert all(count_tokens(text[s:e]) <= 30 for s, e in windows)
    assert windows[-1][1] == len(text)


def test_cjk_counts_one_token_per_character() -> None:
    assert count_tokens("风力涡轮机 blade!") == 7


@pytest.mark.parametrize(("size", "overlap", "message"), [
    (4, 0, "chunk_size must be an integer of at least 8"),
    (64, 40, "chunk_overlap must be an integer from 0 to chunk_size // 2 (32)"),
    (64, -1, "chunk_overlap must be"),
])
def test_bad_options(size: int, overlap: int, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        ChunkOptions(chunk_size=size, chunk_overlap=overlap)
