"""The metrics registry: per-app isolation and how cache counters are reported."""

from __future__ import annotations

from prometheus_client import REGISTRY

from m0rank.server.metrics import ServerMetrics
from m0rank.types import CacheStats


def test_each_app_has_its_own_registry():
    first, second = ServerMetrics(), ServerMetrics()
    first.observe_request("/v1/rerank", 200, 0.01)
    assert b'm0rank_requests_total{route="/v1/rerank",status="200"} 1.0' in first.render()
    assert b"/v1/rerank" not in second.render()
    assert REGISTRY.get_sample_value("m0rank_requests_total") is None  # global registry untouched


def test_cache_counters_from_image_and_model_sources():
    metrics = ServerMetrics()
    metrics.watch_caches(lambda: {"image": CacheStats(hits=4, misses=2, bytes=100, entries=2)})
    metrics.watch_caches(lambda: {"vision": CacheStats(hits=7, misses=1, evictions=3,
                                                       max_bytes=1000, bytes=500)})
    text = metrics.render().decode()
    for line in ('m0rank_cache_hits_total{cache="image"} 4.0',
                 'm0rank_cache_misses_total{cache="image"} 2.0',
                 'm0rank_cache_bytes{cache="image"} 100.0',
                 'm0rank_cache_entries{cache="image"} 2.0',
                 'm0rank_cache_hits_total{cache="vision"} 7.0',
                 'm0rank_cache_evictions_total{cache="vision"} 3.0',
                 'm0rank_cache_max_bytes{cache="vision"} 1000.0',
                 'm0rank_cache_bytes{cache="vision"} 500.0'):
        assert line in text


def test_batches_queue_and_latency():
    metrics = ServerMetrics()
    depth = [3]
    metrics.watch_queue(lambda: depth[0])
    metrics.observe_batch(pairs=6, requests=3, tokens=120)
    metrics.observe_request("/v2/rerank", 429, 0.002)
    text = metrics.render().decode()
    assert "m0rank_queue_depth 3.0" in text
    assert "m0rank_batch_size_sum 6.0" in text
    assert "m0rank_batch_requests_sum 3.0" in text
    assert "m0rank_tokens_total 120.0" in text
    assert 'm0rank_request_latency_seconds_count{route="/v2/rerank",status="429"} 1.0' in text
