"""Model replicas behind one server (``m0rank serve --replicas N`` / ``--devices``).

Real ``m0rank serve`` processes on loopback with the weight-free dummy model and a known cost
per pair, so spreading, death, restart and retry are the server's, not a model's; one test
checks that replicas score the tiny jina-m0 exactly as ``Reranker.score`` does. Every loop is
bounded in count and time.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from server_helpers import make_app, running
from test_hostile_clients import dummy_model, serve

from m0rank import Reranker
from m0rank.cli.main import main
from m0rank.config import EngineConfig
from m0rank.errors import InvalidInputError, ModelLoadError, ServiceUnavailableError
from m0rank.model.base import PreparedPair
from m0rank.server import replicas as replicas_module
from m0rank.server.replicas import ReplicaPool, ReplicaSpec, check_devices
from m0rank.server.settings import ServerSettings

DOCUMENTS = ["alpha beta", "beta", "gamma", "alpha", "delta", "alpha beta gamma", "x", "y"]


def metric(text: str, name: str, replica: int | None = None) -> float:
    """One sample of the exposition text (the replica's, when given)."""
    labels = "" if replica is None else f'{{replica="{replica}"}}'
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))


def replica_pid(text: str, replica: int) -> int:
    match = re.search(rf'^m0rank_replica_info{{device="[^"]+",pid="(\d+)",replica="{replica}"}}',
                      text, re.MULTILINE)
    assert match, "m0rank_replica_info missing"
    return int(match.group(1))


def rerank(url: str, query: str = "alpha beta") -> httpx.Response:
    return httpx.post(f"{url}/v1/rerank", json={"query": query, "documents": DOCUMENTS},
                      timeout=60)


def wait_for(url: str, check, timeout: float = 60.0) -> str:  # noqa: ANN001 - a predicate
    """Poll /metrics until ``check(text)``; its last text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        if check(text):
            return text
        time.sleep(0.05)
    raise TimeoutError(f"/metrics never satisfied the check:\n{text}")


# --- settings and CLI ---------------------------------------------------------------------


def test_settings_count_replicas_from_replicas_or_devices() -> None:
    assert ServerSettings().replica_count == 1
    assert ServerSettings(replicas=3).replica_devices() == (None, None, None)
    settings = ServerSettings.from_env({"M0RANK_DEVICES": "cuda:0, cuda:1"})
    assert settings.devices == ("cuda:0", "cuda:1")
    assert settings.replica_count == 2
    assert settings.load_kwargs()["device"] == "cpu"  # the front only prepares pairs
    assert settings.load_kwargs()["vision_cache_bytes"] == 0
    assert ServerSettings(devices=("cuda:1",)).load_kwargs()["device"] == "cuda:1"


@pytest.mark.parametrize(("values", "message"), [
    ({"replicas": 0}, "replicas must be a positive number, got 0"),
    ({"devices": "cuda:0,gpu1"}, "devices: 'gpu1' is not a device (use cpu, cuda or cuda:N)"),
    ({"devices": "cuda:0,cuda:1", "replicas": 3},
     "replicas (3) and devices (cuda:0,cuda:1) disagree"),
    ({"devices": "cuda:0,cuda:1", "device": "cpu"},
     "device ('cpu') and devices (cuda:0,cuda:1) are both set; give one"),
])
def test_settings_refuse_bad_replica_options(values: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        ServerSettings(**values)


def test_devices_without_cuda_fail_before_loading(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(InvalidInputError, match=re.escape(
            "devices: cuda:0,cuda:1 needs CUDA, which is not available on this machine")):
        check_devices(("cuda:0", "cuda:1"))
    check_devices(("cpu", "cpu"))  # CPU replicas need nothing
    status = main(["serve", "--model", str(tmp_path / "missing"), "--devices", "cuda:0,cuda:1"])
    assert status == 2  # refused before the (missing) model is even looked for
    assert "needs CUDA, which is not available" in capsys.readouterr().err


# --- real servers with CPU replicas ---------------------------------------------------------


@pytest.fixture(scope="module")
def two_replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ``m0rank serve --replicas 2`` for the tests below (the kill test runs last)."""
    with serve(dummy_model(tmp_path_factory.mktemp("dummy")), "--replicas", "2") as (url, _, _):
        yield url


def test_two_replicas_both_serve(two_replicas: str) -> None:
    url = two_replicas
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: rerank(url), range(16)))
    assert [r.status_code for r in responses] == [200] * 16
    top = {r.json()["results"][0]["index"] for r in responses}
    assert top == {0}  # every query word (tied with 5, input order breaks the tie)
    text = httpx.get(f"{url}/metrics").text
    pairs = [metric(text, "m0rank_replica_pairs_total", i) for i in (0, 1)]
    assert sum(pairs) == 16 * len(DOCUMENTS)
    assert min(pairs) > 0, f"one replica did no work: {pairs}"
    assert metric(text, "m0rank_replica_up", 0) == metric(text, "m0rank_replica_up", 1) == 1
    assert replica_pid(text, 0) != replica_pid(text, 1)


def test_killed_replica_loses_no_request_and_restarts(two_replicas: str) -> None:
    url = two_replicas
    victim = replica_pid(httpx.get(f"{url}/metrics").text, 0)
    with ThreadPoolExecutor(12) as pool:
        futures = [pool.submit(rerank, url) for _ in range(24)]
        wait_for(url, lambda t: metric(t, "m0rank_replica_queue_depth", 0) > 0)
        os.kill(victim, signal.SIGKILL)
        responses = [future.result(timeout=120) for future in futures]
    assert [r.status_code for r in responses] == [200] * 24, [r.text for r in responses]
    assert all(len(r.json()["results"]) == len(DOCUMENTS) for r in responses)
    text = wait_for(url, lambda t: metric(t, "m0rank_replica_restarts_total", 0) == 1
                    and metric(t, "m0rank_replica_up", 0) == 1)
    assert metric(text, "m0rank_replica_lost_batches_total", 0) > 0
    assert metric(text, "m0rank_replica_retried_batches_total") > 0
    assert metric(text, "m0rank_replica_failed_batches_total") == 0
    assert replica_pid(text, 0) != victim
    before = metric(text, "m0rank_replica_pairs_total", 0)
    for _ in range(20):  # the new replica 0 takes work again
        with ThreadPoolExecutor(4) as pool:
            assert all(r.status_code == 200 for r in pool.map(lambda _: rerank(url), range(4)))
        if metric(httpx.get(f"{url}/metrics").text, "m0rank_replica_pairs_total", 0) > before:
            break
    else:
        pytest.fail("the restarted replica never scored anything")


# --- the pool on its own: a retry that fails too is a 503 -----------------------------------


def test_retry_that_fails_too_is_a_clear_503(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replicas_module, "_RETRY_WAIT_S", 1.0)
    model = dummy_model(tmp_path / "dummy", seconds_per_pair=0.5)
    pool = ReplicaPool([ReplicaSpec(model=str(model), device="cpu")])
    outcomes: dict[int, object] = {}

    async def scenario() -> None:
        await pool.attach()
        (model / "config.json").unlink()  # its restart will fail
        batch = [PreparedPair(num_tokens=3, payload=1.0)] * 2
        task = pool.run_window([batch, batch], outcomes.__setitem__)
        pid = pool.stats().replicas[0].pid
        await asyncio.sleep(0.2)
        os.kill(pid, signal.SIGKILL)
        await asyncio.wait_for(task, 60)
        assert pool.unavailable() is None or "replicas are down" in pool.unavailable()
        deadline = time.monotonic() + 60  # its restarts keep failing: then it gives up
        while pool.unavailable() is None:
            assert time.monotonic() < deadline, "the pool never reported itself down"
            await asyncio.sleep(0.2)
        unavailable.append(pool.unavailable())

    unavailable: list[str | None] = []
    try:
        asyncio.run(scenario())
    finally:
        pool.close()
    assert sorted(outcomes) == [0, 1]
    for outcome in outcomes.values():
        assert isinstance(outcome, ServiceUnavailableError)
        assert "the model process scoring this request stopped: replica 0 (exit code -9); " \
               "no other replica could take it over" in str(outcome)
    assert pool.stats().failed_batches == 2
    assert unavailable == ["all 1 model replicas are down; see the server log"]  # /ready: 503


def test_a_replica_that_cannot_load_stops_the_start(tmp_path: Path) -> None:
    pool = ReplicaPool([ReplicaSpec(model=str(tmp_path / "missing"), device="cpu")])
    with pytest.raises(ModelLoadError, match=re.escape("replica 0 (cpu) did not start: ")):
        pool.start()
    assert pool.stats().replicas[0].up is False


# --- the tiny jina-m0: replicas score exactly like Reranker.score --------------------------


@pytest.mark.slow
def test_replicas_score_like_the_library(reranker, m0_checkpoint: Path) -> None:  # noqa: ANN001
    documents = ["a passage about cats", "dogs and wolves", "cats sleep a lot", "nothing",
                 "the cat sat on the mat", "wolves howl", "a b c d", "sleep"]
    expected = reranker.score("where do cats sleep?", documents)
    settings = {"model": str(m0_checkpoint), "replicas": 2, "max_batch_size": 2}
    front = Reranker(reranker.model, engine_config=EngineConfig(max_batch_size=2))
    app = make_app(front, **settings)  # windows of 4 x 2 pairs: three requests need both

    async def scenario() -> list[dict]:
        async with running(app, wait_ready=True) as client:
            calls = [client.post("/v1/rerank", json={"query": "where do cats sleep?",
                                                     "documents": documents})
                     for _ in range(3)]
            responses = await asyncio.gather(*calls)
            metrics = (await client.get("/metrics")).text
        assert metric(metrics, "m0rank_replica_pairs_total", 0) > 0
        assert metric(metrics, "m0rank_replica_pairs_total", 1) > 0
        return [r.json() for r in responses]

    for body in asyncio.run(scenario()):
        for result in body["results"]:
            assert result["relevance_score"] == pytest.approx(
                expected[result["index"]].score, abs=1e-6)


@pytest.mark.gpu
def test_gpu_replicas_score_like_the_library(reranker, m0_checkpoint: Path) -> None:  # noqa: ANN001
    """Two replicas on one GPU (``--devices cuda:0,cuda:0``) in fp32 score like the CPU
    library within float tolerance (not run here: no GPU was lent)."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    documents = ["a passage about cats", "dogs and wolves", "cats sleep a lot", "nothing"] * 4
    expected = reranker.score("where do cats sleep?", documents)
    front = Reranker(reranker.model, engine_config=EngineConfig(max_batch_size=2))
    app = make_app(front, model=str(m0_checkpoint), devices=("cuda:0", "cuda:0"),
                   dtype="fp32", max_batch_size=2)

    async def scenario() -> tuple[list[dict], str]:
        async with running(app) as client:
            calls = [client.post("/v1/rerank", json={"query": "where do cats sleep?",
                                                     "documents": documents})
                     for _ in range(3)]
            bodies = [r.json() for r in await asyncio.gather(*calls)]
            return bodies, (await client.get("/metrics")).text

    bodies, metrics = asyncio.run(scenario())
    assert 'm0rank_replica_info{device="cuda:0"' in metrics
    for body in bodies:
        for result in body["results"]:
            assert result["relevance_score"] == pytest.approx(
                expected[result["index"]].score, abs=1e-4)
