"""The vision-feature cache: keys, byte-bounded LRU, counters, and its use by the model."""

from __future__ import annotations

import numpy as np
import torch
from tests.support.bench import page

from m0rank.config import ScoreOptions
from m0rank.model.qwen2vl.vision_cache import CachedFeatures, VisionFeatureCache, image_cache_key
from m0rank.types import Document


def _entry(rows: int) -> CachedFeatures:
    return CachedFeatures(torch.zeros(rows, 4), (1, 2, 2 * rows))  # rows * 16 bytes


def test_lru_evicts_least_recently_used_to_stay_under_budget() -> None:
    cache = VisionFeatureCache(max_bytes=3 * 16)
    for key in "abc":
        cache.put(key, _entry(1))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("d", _entry(1))
    assert cache.get("b") is None
    assert all(cache.get(key) is not None for key in "acd")
    stats = cache.stats()
    assert stats.entries == 3
    assert stats.bytes == 48
    assert stats.evictions == 1


def test_entry_larger_than_budget_is_not_stored_and_zero_disables() -> None:
    cache = VisionFeatureCache(max_bytes=16)
    cache.put("big", _entry(2))
    assert cache.get("big") is None
    disabled = VisionFeatureCache(max_bytes=0)
    disabled.put("a", _entry(1))
    assert disabled.get("a") is None
    assert disabled.stats().bytes == 0


def test_replacing_a_key_keeps_byte_count_exact() -> None:
    cache = VisionFeatureCache(max_bytes=1000)
    cache.put("a", _entry(2))
    cache.put("a", _entry(3))
    assert cache.stats().bytes == 48
    cache.clear()
    assert cache.stats().bytes == 0 and cache.get("a") is None


def test_key_depends_on_pixels_and_settings_only() -> None:
    first, same = page((10, 20, 30), (64, 48)), page((10, 20, 30), (64, 48))
    assert image_cache_key(first, "s") == image_cache_key(same, "s")
    assert image_cache_key(first, "s") != image_cache_key(first, "other settings")
    assert image_cache_key(first, "s") != image_cache_key(page((10, 20, 31), (64, 48)), "s")
    assert image_cache_key(first, "s") != image_cache_key(first.convert("RGBA"), "s")


def test_page_encoded_once_across_queries_with_identical_scores(m0_model) -> None:  # noqa: ANN001
    m0_model.vision_cache.clear()
    before = m0_model.cache_stats()["vision"]
    document = Document(images=(page((200, 30, 30), (300, 200)),))
    cold = [m0_model.preprocess(Document(text=q), document, ScoreOptions(), "p")
            for q in ("first query", "second query")]
    assert all(image.features is None for pair in cold for image in pair.payload.images)
    first = m0_model.forward(cold).numpy()  # same page twice in one micro-batch
    after_first = m0_model.cache_stats()["vision"]
    assert after_first.misses - before.misses == 1
    assert after_first.hits - before.hits == 1

    warm = [m0_model.preprocess(Document(text=q), document, ScoreOptions(), "p")
            for q in ("first query", "second query")]
    assert all(image.pixel_values is None for pair in warm for image in pair.payload.images)
    second = m0_model.forward(warm).numpy()
    after_second = m0_model.cache_stats()["vision"]
    assert after_second.misses == after_first.misses
    assert after_second.hits - after_first.hits == 2
    assert after_second.entries >= 1
    np.testing.assert_array_equal(first, second)


def test_prepared_pair_survives_eviction_before_it_runs(m0_model) -> None:  # noqa: ANN001
    document = Document(images=(page((20, 90, 200), (120, 460)),))
    m0_model.forward([m0_model.preprocess(Document(text="q"), document, ScoreOptions(), "p")])
    prepared = m0_model.preprocess(Document(text="q"), document, ScoreOptions(), "p")
    assert prepared.payload.images[0].features is not None
    m0_model.vision_cache.clear()
    uncached = m0_model.vision_cache.max_bytes
    m0_model.vision_cache.max_bytes = 0
    try:
        fresh = m0_model.preprocess(Document(text="q"), document, ScoreOptions(), "p")
        np.testing.assert_allclose(m0_model.forward([prepared]).numpy(),
                                   m0_model.forward([fresh]).numpy(), atol=1e-6, rtol=0)
    finally:
        m0_model.vision_cache.max_bytes = uncached
