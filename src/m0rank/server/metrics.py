"""Prometheus metrics of one app, in the app's own registry (never the global default one, so
several apps in one process, as in the tests, do not collide).

Exposed at ``GET /metrics``:

- ``m0rank_requests_total{route,status}`` and ``m0rank_request_latency_seconds{route}``;
- ``m0rank_batch_size`` (pairs per forward pass) and ``m0rank_batch_requests`` (distinct
  requests sharing a forward pass: above 1 means cross-request batching is working);
- ``m0rank_tokens_total`` (tokens read by the model, image tokens included);
- ``m0rank_queue_depth`` (pairs waiting for the model), ``m0rank_requests_in_flight``,
  ``m0rank_requests_abandoned_total`` (clients that disconnected before their answer);
- ``m0rank_cache_{hits,misses,evictions}_total{cache}`` and
  ``m0rank_cache_{bytes,max_bytes,entries}{cache}``, read on each scrape from the image cache
  (``cache="image"``) and the model's own caches (``cache="vision"``, ``"ocr"``...), each a
  typed :class:`m0rank.types.CacheStats`;
- with replicas (``m0rank serve --replicas N`` / ``--devices``), per replica:
  ``m0rank_replica_up{replica}``, ``m0rank_replica_queue_depth{replica}`` (pairs sent to it and
  not answered), ``m0rank_replica_{batches,pairs,restarts,lost_batches}_total{replica}`` and
  ``m0rank_replica_info{replica,device,pid}``; and ``m0rank_replica_retried_batches_total`` /
  ``m0rank_replica_failed_batches_total`` (micro-batches of a dead replica sent again / answered
  503).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from m0rank.types import CacheStats

if TYPE_CHECKING:
    from m0rank.server.replicas import PoolStats

__all__ = ["ServerMetrics", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_REQUEST_BUCKETS = (1, 2, 3, 4, 6, 8, 16, 32)

StatsSource = Callable[[], Mapping[str, CacheStats]]


class ServerMetrics:
    """The collectors of one server instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter("m0rank_requests", "HTTP requests answered",
                                ["route", "status"], registry=reg)
        self.latency = Histogram("m0rank_request_latency_seconds", "HTTP request latency",
                                 ["route", "status"], buckets=_LATENCY_BUCKETS, registry=reg)
        self.batch_size = Histogram("m0rank_batch_size", "Pairs per forward pass",
                                    buckets=_SIZE_BUCKETS, registry=reg)
        self.batch_requests = Histogram("m0rank_batch_requests",
                                        "Distinct requests sharing one forward pass",
                                        buckets=_REQUEST_BUCKETS, registry=reg)
        self.tokens = Counter("m0rank_tokens", "Tokens read by the model", registry=reg)
        self.queue_depth = Gauge("m0rank_queue_depth", "Pairs waiting for the model",
                                 registry=reg)
        self.abandoned = Counter("m0rank_requests_abandoned",
                                 "Requests whose client disconnected before the answer; their "
                                 "unscored work was cancelled", registry=reg)
        self.in_flight = Gauge("m0rank_requests_in_flight", "HTTP requests being served",
                               registry=reg)
        self._caches = _CacheCollector()
        reg.register(self._caches)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route, status=str(status)).observe(seconds)

    def observe_batch(self, pairs: int, requests: int, tokens: int) -> None:
        """Record one forward pass (called by the batcher)."""
        self.batch_size.observe(pairs)
        self.batch_requests.observe(requests)
        self.tokens.inc(tokens)

    def watch_queue(self, depth: Callable[[], int]) -> None:
        """Read the queue depth from ``depth`` at every scrape."""
        self.queue_depth.set_function(depth)

    def watch_caches(self, stats: StatsSource) -> None:
        """Report the caches ``stats()`` returns at each scrape, labelled by their names."""
        self._caches.sources.append(stats)

    def watch_replicas(self, stats: Callable[[], PoolStats]) -> None:
        """Report the model replicas ``stats()`` describes at each scrape."""
        self.registry.register(_ReplicaCollector(stats))

    def render(self) -> bytes:
        """The text exposition format of every metric."""
        return generate_latest(self.registry)


# CacheStats field -> (metric kind, help)
_CACHE_STATS = {
    "hits": ("counter", "Cache hits"),
    "misses": ("counter", "Cache misses"),
    "evictions": ("counter", "Cache evictions"),
    "errors": ("counter", "Cache I/O faults, each served as a miss"),
    "max_bytes": ("gauge", "Cache budget in bytes"),
    "bytes": ("gauge", "Bytes held"),
    "entries": ("gauge", "Entries held"),
}


class _CacheCollector(Collector):
    """Reads cache counters on each scrape (the caches own them; we only report)."""

    def __init__(self) -> None:
        self.sources: list[StatsSource] = []

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            stat: (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                f"m0rank_cache_{stat}", text, labels=["cache"])
            for stat, (kind, text) in _CACHE_STATS.items()
        }
        for source in self.sources:
            for name, stats in source().items():
                for stat, value in asdict(stats).items():
                    families[stat].add_metric([name], float(value))
        yield from families.values()

    def describe(self) -> Iterator[Metric]:
        return iter(())


# ReplicaStats field -> (metric kind, help)
_REPLICA_STATS = {
    "up": ("gauge", "1 while the replica runs its model, 0 while it is (re)starting or down"),
    "queue_depth": ("gauge", "Pairs sent to the replica and not answered yet"),
    "batches": ("counter", "Forward passes run by the replica"),
    "pairs": ("counter", "Pairs scored by the replica"),
    "restarts": ("counter", "Times the replica's process died and was started again"),
    "lost_batches": ("counter", "Micro-batches in flight when the replica died (retried once)"),
}


class _ReplicaCollector(Collector):
    """Reads the replica pool's counters on each scrape."""

    def __init__(self, stats: Callable[[], PoolStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        pool = self.stats()
        info = GaugeMetricFamily("m0rank_replica_info", "Device and process id of each replica",
                                 labels=["replica", "device", "pid"])
        for stat, (kind, text) in _REPLICA_STATS.items():
            family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                f"m0rank_replica_{stat}", text, labels=["replica"])
            for replica in pool.replicas:
                family.add_metric([str(replica.replica)], float(getattr(replica, stat)))
            yield family
        for replica in pool.replicas:
            info.add_metric([str(replica.replica), replica.device, str(replica.pid)], 1.0)
        yield info
        yield CounterMetricFamily("m0rank_replica_retried_batches",
                                  "Micro-batches of a dead replica sent to another one",
                                  value=pool.retried_batches)
        yield CounterMetricFamily("m0rank_replica_failed_batches",
                                  "Micro-batches answered 503 because their retry failed too",
                                  value=pool.failed_batches)

    def describe(self) -> Iterator[Metric]:
        return iter(())
