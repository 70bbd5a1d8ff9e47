"""``m0rank.ray:app`` on a local Ray Serve answers ``/v1/rerank`` like ``m0rank serve``."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from m0rank.errors import InvalidInputError

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'm0rank[ray]')")
serve = pytest.importorskip("ray.serve", reason="ray[serve] is not installed")

BODY = {"model": "m", "query": "what is topic 1?",
        "documents": ["document 0 about topic 1", "a page on something else", "topic 1 is x"]}


@pytest.fixture(scope="module")
def serve_url(m0_checkpoint: Path):  # noqa: ANN201
    from m0rank.ray import app

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": 8765})
    serve.run(app({"model": str(m0_checkpoint), "replicas": "1", "num_cpus": "0.5",
                   "device": "cpu"}), route_prefix="/")
    url = "http://127.0.0.1:8765"
    deadline = time.monotonic() + 120
    while httpx.get(f"{url}/ready").status_code != 200:
        assert time.monotonic() < deadline, "Serve replica never became ready"
        time.sleep(0.5)
    yield url
    serve.shutdown()
    ray.shutdown()


def test_serve_app_answers_like_m0rank_serve(serve_url: str, reranker) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from m0rank.server.app import create_app
    from m0rank.server.settings import ServerSettings

    got = httpx.post(f"{serve_url}/v1/rerank", json=BODY, timeout=60)
    assert got.status_code == 200, got.text
    with TestClient(create_app(ServerSettings(), reranker)) as client:
        want = client.post("/v1/rerank", json=BODY)
    assert want.status_code == 200
    got_results, want_results = got.json()["results"], want.json()["results"]
    assert [r["index"] for r in got_results] == [r["index"] for r in want_results]
    for a, b in zip(got_results, want_results, strict=True):
        assert abs(a["relevance_score"] - b["relevance_score"]) <= 1e-6
    assert httpx.post(f"{serve_url}/v1/rerank", json={"query": "x"}).status_code == 422


def test_unknown_argument_is_named() -> None:
    from m0rank.ray import build_app

    with pytest.raises(InvalidInputError, match=r"unknown m0rank.ray:app argument\(s\) \['gpus'\]"):
        build_app({"gpus": "1"})
