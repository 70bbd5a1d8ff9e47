"""Scoring units: PDF pages, text windows, and folding windows back into their document."""

from __future__ import annotations

from m0rank.engine.units import chunk_units, document_unit, fold_windows, page_units
from m0rank.preprocessing.chunking import ChunkOptions
from m0rank.preprocessing.pdf import render_pdf
from m0rank.testing.pdfs import text_pdf
from m0rank.types import Document, PairScore

LONG = " ".join(f"Sentence {i} is here." for i in range(40))


def test_page_units_name_each_page() -> None:
    pages = render_pdf(text_pdf([["one"], ["two"]]), "documents[1].pdf")
    units = page_units(1, pages, "documents[1]", use_text_layer=True)
    assert [(u.index, u.page, u.field, u.document.text) for u in units] == [
        (1, 1, "documents[1].page[1]", "one"), (1, 2, "documents[1].page[2]", "two")]


def test_chunk_units_split_only_long_texts_and_keep_the_whole() -> None:
    units = [document_unit(0, Document(text=LONG), "documents[0]"),
             document_unit(1, Document(text="short"), "documents[1]")]
    assert chunk_units(units, None) == units
    chunked = chunk_units(units, ChunkOptions(chunk_size=20))
    windows = [u for u in chunked if u.index == 0]
    assert len(windows) > 3 and all(u.source.text == LONG for u in windows)
    assert all(LONG[u.span[0]:u.span[1]] == u.document.text for u in windows)
    assert [u.span for u in chunked if u.index == 1] == [(0, 5)]


def test_fold_keeps_the_best_window_and_sums_tokens() -> None:
    units = chunk_units([document_unit(0, Document(text=LONG), "d")], ChunkOptions(chunk_size=20))
    scores = [PairScore(score=0.1 * (i % 3), logit=0.0, num_tokens=10) for i in range(len(units))]
    kept, folded = fold_windows(units, scores)
    assert len(kept) == 1 and folded[0].score == 0.2
    assert folded[0].chunk == units[2].span and folded[0].num_tokens == 10 * len(units)
