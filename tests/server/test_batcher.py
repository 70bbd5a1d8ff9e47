"""Cross-request batching: shared forward passes, library-equal scores, back-pressure, cancel,
failures and shutdown. A gate holds the model's forward pass so that what is queued while it
runs is known exactly."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest
from server_helpers import make_app, running

from m0rank import Reranker
from m0rank.config import EngineConfig, ScoreOptions
from m0rank.engine import Engine
from m0rank.errors import OverloadedError, ServiceUnavailableError
from m0rank.server.batcher import Batcher, BatcherConfig
from m0rank.types import Document

QUERIES = ["markdown model", "bread recipe", "vision language", "tables"]
DOCS = [["ReaderLM converts HTML.", "Sourdough needs time."], ["Flour, water, salt."],
        ["Qwen2-VL reads images.", "A cat.", "Markdown tables."], ["| a | b |"]]


class Gate:
    """Holds forward passes until released; records the pairs of every batch."""

    def __init__(self, engine: Engine) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.batches: list[list[int]] = []
        original = engine.launch

        def run_batch(batch):
            self.entered.set()
            assert self.release.wait(30)
            self.batches.append([p.num_tokens for p in batch])
            return original(batch)

        engine.launch = run_batch

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 30)


def pairs(query: str, docs: list[str]) -> list[tuple[Document, Document]]:
    return [(Document(text=query), Document(text=d)) for d in docs]


def fields(n: int) -> list[str]:
    return [f"documents[{i}]" for i in range(n)]


def test_concurrent_requests_share_forward_passes_and_score_like_the_library(reranker):
    own = Reranker(reranker.model)
    gate = Gate(own.engine)
    app = make_app(own)

    async def scenario():
        async with running(app) as client:
            first = asyncio.ensure_future(client.post("/v1/rerank", json={
                "query": "warm", "documents": ["hold the model"]}))
            await gate.wait_entered()
            batcher = app.state.m0rank.service.batcher
            others = [asyncio.ensure_future(client.post("/v1/rerank", json={
                "query": q, "documents": d})) for q, d in zip(QUERIES, DOCS, strict=True)]
            while batcher.prepared_pairs < sum(map(len, DOCS)):
                await asyncio.sleep(0.01)
            gate.release.set()
            responses = [await first, *[await task for task in others]]
            metrics = (await client.get("/metrics")).text
            return responses, metrics

    responses, metrics = asyncio.run(scenario())
    assert all(r.status_code == 200 for r in responses)
    # one pass for the first request, then ONE pass for all 7 pairs of the 4 queued requests
    assert [len(b) for b in gate.batches] == [1, 7]
    assert _value(metrics, "m0rank_batch_requests_count") == 2
    assert _value(metrics, "m0rank_batch_requests_sum") == 1 + len(QUERIES)
    assert _value(metrics, "m0rank_batch_size_sum") == 8
    for query, docs, response in zip(QUERIES, DOCS, responses[1:], strict=True):
        library = {r.index: r.score for r in reranker.rank(query, docs)}
        served = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
        assert served == pytest.approx(library, abs=1e-6)


def test_simultaneous_requests_without_a_gate_batch_together(reranker):
    app = make_app(reranker, max_batch_wait_ms=300)

    async def scenario():
        async with running(app) as client:
            responses = await asyncio.gather(*[
                client.post("/v2/rerank", json={"query": q, "documents": d})
                for q, d in zip(QUERIES, DOCS, strict=True)])
            return responses, (await client.get("/metrics")).text

    responses, metrics = asyncio.run(scenario())
    assert all(r.status_code == 200 for r in responses)
    assert _value(metrics, "m0rank_batch_size_sum") == sum(map(len, DOCS))
    assert _value(metrics, "m0rank_batch_requests_count") < len(QUERIES)
    for query, docs, response in zip(QUERIES, DOCS, responses, strict=True):
        library = [s.score for s in reranker.score(query, docs)]
        served = sorted(response.json()["results"], key=lambda r: r["index"])
        assert [r["relevance_score"] for r in served] == pytest.approx(library, abs=1e-6)


def test_small_token_budget_splits_windows_into_micro_batches(reranker):
    engine = Engine(reranker.model, EngineConfig(max_batch_tokens=40, max_batch_size=2))
    gate = Gate(engine)
    gate.release.set()
    docs = ["one", "two words", "three little words", "four"]

    async def scenario():
        batcher = Batcher(engine, BatcherConfig(max_wait_ms=0))
        await batcher.start()
        scores = await batcher.score(pairs("q", docs), ScoreOptions(), fields(4))
        await batcher.stop(drain_timeout=5)
        return scores

    scores = asyncio.run(scenario())
    # padded (rows x longest) or packed (sum of rows) cost: either way the sum fits the budget
    assert all(len(b) == 1 or (len(b) <= 2 and sum(b) <= 40) for b in gate.batches)
    assert len(gate.batches) >= 2
    assert [s.score for s in scores] == pytest.approx(
        [s.score for s in reranker.score("q", docs)], abs=1e-6)


def test_full_queue_raises_overloaded_and_cancelled_pairs_are_skipped(reranker):
    engine = Engine(reranker.model)
    gate = Gate(engine)

    async def scenario():
        batcher = Batcher(engine, BatcherConfig(max_queue_pairs=3, max_wait_ms=0))
        await batcher.start()
        held = asyncio.ensure_future(batcher.score(pairs("q", ["a"]), ScoreOptions(), fields(1)))
        await gate.wait_entered()
        doomed = asyncio.ensure_future(
            batcher.score(pairs("q", ["b", "c", "d"]), ScoreOptions(), fields(3)))
        while batcher.prepared_pairs < 3:
            await asyncio.sleep(0.01)
        with pytest.raises(OverloadedError, match=re.escape(
                "the server is overloaded (3 pairs queued, limit 3); retry later")):
            await batcher.score(pairs("q", ["e"]), ScoreOptions(), fields(1))
        doomed.cancel()
        gate.release.set()
        result = await held
        after = await batcher.score(pairs("q", ["f"]), ScoreOptions(), fields(1))
        await batcher.stop(drain_timeout=5)
        return result, after

    result, after = asyncio.run(scenario())
    assert len(result) == 1 and len(after) == 1
    assert [len(b) for b in gate.batches] == [1, 1]  # the cancelled request's 3 pairs never ran


def test_a_failing_forward_pass_fails_its_requests_only(reranker):
    engine = Engine(reranker.model)
    original = engine.launch
    calls = []

    def flaky(batch):
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("device fell over")
        return original(batch)

    engine.launch = flaky

    async def scenario():
        batcher = Batcher(engine, BatcherConfig(max_wait_ms=0))
        await batcher.start()
        with pytest.raises(RuntimeError, match="device fell over"):
            await batcher.score(pairs("q", ["a"]), ScoreOptions(), fields(1))
        scores = await batcher.score(pairs("q", ["a"]), ScoreOptions(), fields(1))
        await batcher.stop(drain_timeout=5)
        return scores

    assert len(asyncio.run(scenario())) == 1


def test_preparation_errors_reach_the_caller(reranker):
    async def scenario():
        batcher = Batcher(Engine(reranker.model))
        await batcher.start()
        try:
            # an image-only document with a text-sized budget cannot fit its image tokens
            from PIL import Image

            image = Image.new("RGB", (600, 600))
            big = [(Document(text="q"), Document(images=(image,)))]
            await batcher.score(big, ScoreOptions(max_length=64, max_query_length=8),
                                fields(1))
        finally:
            await batcher.stop(drain_timeout=5)

    with pytest.raises(Exception, match=re.escape("documents[0]: the prompt needs")):
        asyncio.run(scenario())


def test_stop_refuses_new_work_and_fails_what_cannot_drain(reranker):
    engine = Engine(reranker.model)
    gate = Gate(engine)

    async def scenario():
        batcher = Batcher(engine, BatcherConfig(max_wait_ms=0))
        await batcher.start()
        held = asyncio.ensure_future(batcher.score(pairs("q", ["a"]), ScoreOptions(), fields(1)))
        await gate.wait_entered()
        queued = asyncio.ensure_future(batcher.score(pairs("q", ["b"]), ScoreOptions(),
                                                     fields(1)))
        while batcher.prepared_pairs < 1:
            await asyncio.sleep(0.01)
        stopping = asyncio.ensure_future(batcher.stop(drain_timeout=0.2))
        await asyncio.sleep(0)
        with pytest.raises(ServiceUnavailableError, match=re.escape(
                "the server is shutting down and takes no new requests")):
            await batcher.score(pairs("q", ["c"]), ScoreOptions(), fields(1))
        await stopping
        gate.release.set()
        return await asyncio.gather(held, queued, return_exceptions=True)

    held, queued = asyncio.run(scenario())
    assert isinstance(held, (asyncio.CancelledError, ServiceUnavailableError))
    assert isinstance(queued, ServiceUnavailableError)
    assert str(queued) == "the server shut down before this request was scored"


def _value(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in metrics")


def test_pairs_being_prepared_count_against_the_bound(reranker):
    """A flood of requests cannot pile up in front of preprocessing either."""
    engine = Engine(reranker.model)
    entered, release = threading.Event(), threading.Event()
    original = engine.prepare_one

    def slow_prepare(*args):
        entered.set()
        assert release.wait(30)
        return original(*args)

    engine.prepare_one = slow_prepare

    async def scenario():
        batcher = Batcher(engine, BatcherConfig(max_queue_pairs=2, max_wait_ms=0))
        await batcher.start()
        first = asyncio.ensure_future(batcher.score(pairs("q", ["a", "b"]), ScoreOptions(),
                                                    fields(2)))
        assert await asyncio.to_thread(entered.wait, 30)
        assert (batcher.queue_depth, batcher.prepared_pairs) == (2, 0)
        with pytest.raises(OverloadedError, match=re.escape(
                "the server is overloaded (2 pairs queued, limit 2); retry later")):
            await batcher.score(pairs("q", ["c"]), ScoreOptions(), fields(1))
        release.set()
        scores = await first
        await batcher.stop(drain_timeout=5)
        return scores, batcher.queue_depth

    scores, depth = asyncio.run(scenario())
    assert len(scores) == 2 and depth == 0


def test_retry_after_is_estimated_from_the_queue_and_measured_throughput():
    from m0rank.model.dummy import DummyReranker

    engine = Engine(DummyReranker(seconds_per_pair=0.02), EngineConfig(max_batch_size=4))

    async def scenario():
        batcher = Batcher(engine, BatcherConfig(max_queue_pairs=60, max_wait_ms=0))
        await batcher.start()
        await batcher.score(pairs("q", ["a"] * 40), ScoreOptions(), fields(40))  # ~50 pairs/s
        backlog = asyncio.ensure_future(batcher.score(pairs("q", ["b"] * 60), ScoreOptions(),
                                                      fields(60)))
        await asyncio.sleep(0)  # the backlog is admitted: 60 pairs queued
        assert batcher.queue_depth == 60
        with pytest.raises(OverloadedError) as refused:
            await batcher.score(pairs("q", ["c"] * 20), ScoreOptions(), fields(20))
        await backlog
        await batcher.stop(drain_timeout=5)
        return refused.value.retry_after

    retry_after = asyncio.run(asyncio.wait_for(scenario(), 120))  # fail, never hang
    assert 1.0 < retry_after < 10.0  # 60 pairs at ~50 pairs/s: about 2 s, not a fixed 1 s
