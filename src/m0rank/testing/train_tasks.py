"""A rendered-page task for training tests: which page carries the queried word?

Each page is a small white image (112 x 56 px, 8 image tokens for jina-m0) showing one word
in black. A training example is the word as a text query, its page as the positive and the
other words' pages of the same rendering as the negatives, so a model must read the pixels to
rank. Renderings vary font size and position: training pages use even font sizes
(``TRAIN_SIZES``), held-out pages odd ones (``HELDOUT_SIZES``), each at a random offset, so
no held-out page equals any training page pixel for pixel. An untrained model ranks the right
page first about ``1 / len(words)`` of the time (``chance``).

Why so many renderings: with two renderings per word a tiny random model memorises the
training pages and stays near chance on new ones (docs/train.md, "Multimodal learning").
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from m0rank.testing.pages import find_font
from m0rank.types import Document

__all__ = ["WORDS", "PAGE_SIZE", "TRAIN_SIZES", "HELDOUT_SIZES", "Rendering", "renderings",
           "word_page", "word_page_examples", "word_page_accuracy", "chance", "train_word_pages"]

WORDS = ("apple", "river", "cloud", "tiger", "piano", "stone")
PAGE_SIZE = (112, 56)  # (width, height): a 4 x 8 patch grid, 8 merged image tokens
TRAIN_SIZES = (20, 22, 24, 26)  # font sizes of training pages
HELDOUT_SIZES = (21, 23, 25)  # font sizes of held-out pages, never used in training
MAX_OFFSET = (8, 6)  # largest (x, y) offset of the word from the top-left corner


@dataclass(frozen=True)
class Rendering:
    """How every word of one set of pages is drawn: font size and offset."""

    font_size: int
    dx: int
    dy: int


def renderings(count: int, sizes: Sequence[int], seed: int) -> list[Rendering]:
    """``count`` seeded renderings with font sizes drawn from ``sizes`` and random offsets."""
    rng = random.Random(f"renderings/{seed}")
    return [Rendering(rng.choice(list(sizes)), rng.randint(0, MAX_OFFSET[0]),
                      rng.randint(0, MAX_OFFSET[1])) for _ in range(count)]


def word_page(word: str, rendering: Rendering) -> Image.Image:
    """One page showing only ``word`` (black on white) as ``rendering`` says."""
    page = Image.new("RGB", PAGE_SIZE, "white")
    font = ImageFont.truetype(str(find_font()), rendering.font_size)
    ImageDraw.Draw(page).text((rendering.dx, rendering.dy), word, font=font, fill="black")
    return page


def word_page_examples(sets: Sequence[Rendering], words: Sequence[str] = WORDS) -> list[Any]:
    """Training examples: for each rendering and word, the word's page is the positive and
    the other words' pages (same rendering) are the negatives."""
    from m0rank.train import TrainExample

    examples = []
    for number, rendering in enumerate(sets):
        pages = {w: Document(images=(word_page(w, rendering),)) for w in words}
        examples.extend(
            TrainExample(query=Document(text=word), pos=(pages[word],),
                         neg=tuple(pages[w] for w in words if w != word),
                         source=f"pages[{number}/{word}]")
            for word in words)
    return examples


def word_page_accuracy(reranker: Any, sets: Sequence[Rendering],
                       words: Sequence[str] = WORDS) -> float:
    """Share of (rendering, word) queries whose page the reranker ranks first among that
    rendering's pages of all words."""
    hits = 0
    for rendering in sets:
        documents = [{"image": word_page(w, rendering)} for w in words]
        hits += sum(reranker.rank(word, documents, top_n=1)[0].index == i
                    for i, word in enumerate(words))
    return hits / (len(sets) * len(words))


def chance(words: Sequence[str] = WORDS) -> float:
    """Top-1 accuracy of a ranker that ignores the pages: one over the number of pages."""
    return 1 / len(words)


def train_word_pages(model: Path, output: Path, sets: Sequence[Rendering], steps: int, lr: float,
                     *, words: Sequence[str] = WORDS, seed: int = 0) -> Any:
    """Fine-tune ``model`` on the pages of ``sets`` for about ``steps`` optimizer steps, as
    ``m0rank.train.train`` does it: listwise + 0.1 BCE over groups of all words' pages,
    ``len(words)`` groups per step, every weight trained, the vision tower included.

    Returns the run's ``TrainResult``; the model is saved to ``output``.
    """
    from m0rank.train import TrainArgs, train

    examples = word_page_examples(sets, words)
    steps_per_epoch = -(-len(examples) // len(words))
    args = TrainArgs(model=str(model), data="(in memory)", output=str(output), loss="listwise",
                     group_size=len(words), groups_per_step=len(words),
                     epochs=max(1, round(steps / steps_per_epoch)), lr=lr, lora_r=0,
                     train_vision=True, max_length=256, max_pixels=PAGE_SIZE[0] * PAGE_SIZE[1],
                     seed=seed, device="cpu", show_progress=False, save_every=10**9,
                     keep_checkpoints=1)
    return train(args, examples=examples)
