"""Cases of the v2 tests: check-set topics, the README's Eiffel Tower example, a photo."""

from __future__ import annotations

import numpy as np
from PIL import Image

TOPICS = ("ev", "sourdough", "bees", "coffee")  # the query is about TOPICS[0]

EIFFEL_QUERY_DE = "Wie hoch ist der Eiffelturm?"
EIFFEL_ZH = "埃菲尔铁塔高330米。"
BERLIN_DE = "Berlin ist die Hauptstadt von Deutschland und hat viele Museen."


def passages(language: str, topics: tuple[str, ...] = TOPICS) -> list[str]:
    """Passage ``a`` of each topic in ``language``."""
    from m0rank.testing.checkset import build_checkset

    docs = build_checkset(language).docs
    return [docs[f"{topic}-a"] for topic in topics]


def question(language: str, topic: str = TOPICS[0]) -> str:
    """The check set's question of ``topic`` in ``language``."""
    from m0rank.testing.checkset import build_checkset

    return build_checkset(language).queries[topic]


def synthetic_photo(size: tuple[int, int] = (480, 320)) -> Image.Image:
    """Smooth colour gradients plus sensor-like noise: photo statistics, no glyphs."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    base = np.stack([x / size[0], y / size[1], (x + y) / sum(size)], axis=-1) * 200 + 30
    return Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
