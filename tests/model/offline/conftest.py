"""Fixtures for the first-generation offline model (``m0rank-offline-v1``): one shared
instance, pages and a photo."""

from __future__ import annotations

import pytest
from PIL import Image


@pytest.fixture(scope="session")
def offline():  # noqa: ANN201 - Reranker, imported lazily
    """The first generation, pinned by name (``m0rank-offline-v1``; shared, read-only)."""
    from m0rank import Reranker

    return Reranker.from_pretrained("m0rank-offline-v1")


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    """A real photograph without writing (scikit-learn's sample), else a synthetic scene."""
    try:
        from sklearn.datasets import load_sample_image

        return Image.fromarray(load_sample_image("flower.jpg"))
    except ImportError:
        from offline_helpers import synthetic_photo

        return synthetic_photo()
