"""Helpers for the offline-model tests: check-set texts and a synthetic photo."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image


def synthetic_photo(size: tuple[int, int] = (480, 320)) -> Image.Image:
    """Smooth colour gradients plus sensor-like noise: photo statistics, no glyphs."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
    base = np.stack([x / size[0], y / size[1], (x + y) / sum(size)], axis=-1) * 200 + 30
    noisy = base + rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def topic_docs(language: str, topics: tuple[str, ...]) -> list[str]:
    """Passage ``a`` of each topic, in ``language``."""
    from m0rank.testing.checkset import build_checkset

    docs = build_checkset(language).docs
    return [docs[f"{topic}-a"] for topic in topics]


def question(language: str, topic: str) -> str:
    """The check set's question of ``topic`` in ``language``."""
    from m0rank.testing.checkset import build_checkset

    return build_checkset(language).queries[topic]


def top_index(results: list[Any]) -> int:
    """Index of the best-ranked document."""
    return results[0].index
