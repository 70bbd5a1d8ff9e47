"""Near-duplicates (dHash, MinHash) and MMR re-ordering."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from m0rank.engine.diversity import fingerprint, mark_duplicates, mmr_order, similarity
from m0rank.engine.ranking import rank_order
from m0rank.errors import InvalidInputError
from m0rank.types import Document

BASE = ("Wind turbine blades fail by fatigue after many load cycles; the tests measured "
        "crack growth in glass fibre laminates under variable amplitude loading.")


def _page(seed: int) -> Image.Image:
    image = Image.new("RGB", (400, 500), "white")
    draw = ImageDraw.Draw(image)
    for i in range(12):
        y = 30 + i * 35
        draw.rectangle([40, y, 40 + ((i * 37 + seed * 91) % 300), y + 18], fill="black")
    return image


def test_text_near_duplicate_is_found_and_a_different_text_is_not() -> None:
    near = BASE.replace("many", "a great many")
    other = "Cooking pasta needs salted water and a large pot; stir often and taste it."
    prints = [fingerprint(Document(text=t)) for t in (BASE, near, other)]
    assert similarity(prints[0], prints[1]) > 0.5
    assert similarity(prints[0], prints[2]) < 0.1
    assert mark_duplicates([2, 0, 1], [fingerprint(Document(text=t))
                                       for t in (BASE, other, BASE + " ")]) == {0: 2}


def test_image_duplicates_survive_reencoding_and_resizing() -> None:
    page = _page(1)
    resized = page.resize((300, 375))
    prints = [fingerprint(Document(images=(im,))) for im in (page, resized, _page(2))]
    assert mark_duplicates([0, 1, 2], prints) == {1: 0}


def test_mmr_demotes_the_duplicate_of_the_top_document() -> None:
    prints = [fingerprint(Document(text=t)) for t in (BASE, BASE, "unrelated cooking text")]
    scores = [0.9, 0.89, 0.5]
    assert rank_order(scores) == [0, 1, 2]
    assert mmr_order(scores, prints, 0.5) == [0, 2, 1]
    assert mmr_order(scores, prints, 1.0) == [0, 1, 2]
    assert rank_order(scores, 2, diversity=0.5, fingerprints=prints) == [0, 2]


@pytest.mark.parametrize("value", [-0.1, 1.5, "0.5", True])
def test_diversity_is_checked(value: object) -> None:
    with pytest.raises(InvalidInputError, match="diversity must be a number from 0 to 1"):
        rank_order([0.1], diversity=value, fingerprints=[("none", None)])  # type: ignore[arg-type]
