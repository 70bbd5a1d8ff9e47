"""A rendered-page task for training tests: which page carries the queried word?

Each word gets a page image showing only that word. A training example is the word as a text
query, its page as the positive and the other words' pages as negatives, so a model must read
the pixels to rank. The held-out pages are rendered at another font size and margin, so they
are pixel-for-pixel different from every training page. An untrained model ranks the right
page first about ``1 / len(words)`` of the time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from m0rank.testing.pages import render_page
from m0rank.types import Document

__all__ = ["WORDS", "word_pages", "word_page_examples", "word_page_accuracy"]

WORDS = ("apple", "river", "cloud", "tiger", "piano", "stone")
TRAIN_RENDERINGS = ((36, 8), (44, 12))  # (font size, margin) of the training pages
HELDOUT_RENDERING = (40, 10)


def word_pages(words: Sequence[str], font_size: int, margin: int) -> dict[str, Any]:
    """One small page per word (224 px wide, black word on white)."""
    return {w: render_page([w], width=224, font_size=font_size, margin=margin) for w in words}


def word_page_examples(words: Sequence[str] = WORDS) -> list[Any]:
    """Training examples: for each word and each training rendering, the word's page is the
    positive and the other words' pages (same rendering) are the negatives."""
    from m0rank.train import TrainExample

    examples = []
    for font_size, margin in TRAIN_RENDERINGS:
        pages = word_pages(words, font_size, margin)
        for word in words:
            examples.append(TrainExample(
                query=Document(text=word), pos=(Document(images=(pages[word],)),),
                neg=tuple(Document(images=(pages[w],)) for w in words if w != word),
                source=f"pages[{word}/{font_size}]"))
    return examples


def word_page_accuracy(reranker: Any, words: Sequence[str] = WORDS) -> float:
    """Share of words whose held-out page the reranker ranks first among all held-out pages."""
    pages = word_pages(words, *HELDOUT_RENDERING)
    documents = [{"image": pages[w]} for w in words]
    hits = sum(reranker.rank(word, documents, top_n=1)[0].index == i
               for i, word in enumerate(words))
    return hits / len(words)
