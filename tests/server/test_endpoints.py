"""Every endpoint's happy path over the tiny checkpoint; scores must equal the library's."""

from __future__ import annotations

import pytest
from server_helpers import SERVED_NAME, png_base64, ranked

DOCS = ["ReaderLM-v2 turns HTML into markdown.", "A recipe for bread.", "Markdown tables."]
QUERY = "small language model for markdown"


def library_ranking(reranker, query, documents, **kwargs):
    results = reranker.rank(query, documents, **kwargs)
    return [r.index for r in results], [r.score for r in results]


def assert_same_ranking(results, expected):
    indices, scores = ranked(results)
    assert indices == expected[0]
    assert scores == pytest.approx(expected[1], abs=1e-6)


@pytest.mark.parametrize("path", ["/v1/rerank", "/rerank"])
def test_jina_rerank_matches_library(app_client, reranker, path):
    response = app_client("POST", path, json={"model": "jina-reranker-m0", "query": QUERY,
                                              "documents": DOCS})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == SERVED_NAME
    assert_same_ranking(body["results"], library_ranking(reranker, QUERY, DOCS))
    assert [r["document"] for r in body["results"]] == [{"text": DOCS[r["index"]]}
                                                         for r in body["results"]]
    expected_tokens = sum(s.num_tokens for s in reranker.score(QUERY, DOCS))
    assert body["usage"] == {"prompt_tokens": expected_tokens, "total_tokens": expected_tokens}
    assert body["meta"]["tokens"] == {"input_tokens": expected_tokens, "output_tokens": 0}
    assert body["meta"]["billed_units"] == {"search_units": 1}
    assert body["id"] == response.headers["x-request-id"]
    assert "warnings" not in body


def test_top_n_return_documents_false_and_nulls(app_client, reranker):
    response = app_client("POST", "/v1/rerank", json={
        "query": QUERY, "documents": DOCS, "top_n": 2, "return_documents": False,
        "model": None, "max_tokens_per_doc": None, "rank_fields": None,
        "max_chunks_per_doc": None, "unknown_field": {"x": 1}})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["index"] for r in results] == library_ranking(reranker, QUERY, DOCS)[0][:2]
    assert all(set(r) == {"index", "relevance_score"} for r in results)


@pytest.mark.parametrize("top_n", [None, 0])
def test_top_n_null_or_zero_means_all(app_client, top_n):
    response = app_client("POST", "/v1/rerank", json={"query": QUERY, "documents": DOCS,
                                                      "top_n": top_n, "return_documents": None})
    assert len(response.json()["results"]) == 3
    assert "document" in response.json()["results"][0]


def test_object_documents_and_image_query(app_client, reranker):
    image = png_base64()
    documents = [{"text": DOCS[0]}, {"image": image}, {"text": "caption", "image": image}]
    response = app_client("POST", "/v1/rerank", json={"query": {"image": image},
                                                      "documents": documents})
    assert response.status_code == 200
    body = response.json()
    expected = library_ranking(reranker, {"image": image}, documents)
    assert_same_ranking(body["results"], expected)
    assert {r["index"]: r["document"] for r in body["results"]} == dict(enumerate(documents))
    assert body["usage"]["total_tokens"] == sum(
        s.num_tokens for s in reranker.score({"image": image}, documents))


def test_vllm_content_shapes(app_client, reranker):
    image = png_base64()
    data_uri = "data:image/png;base64," + image
    document = {"content": [{"type": "image_url", "image_url": {"url": data_uri}},
                            {"type": "text", "text": "a blue square"}]}
    response = app_client("POST", "/rerank", json={"query": QUERY, "documents": [document]})
    assert response.status_code == 200
    result = response.json()["results"][0]
    assert result["document"] == {"text": "a blue square", "image": data_uri}
    assert result["relevance_score"] == pytest.approx(
        reranker.score(QUERY, [document])[0].score, abs=1e-6)
    # A bare {"content": [text, image]} is ONE mixed document, as in current vLLM.
    parts = [{"type": "text", "text": DOCS[0]}, {"type": "image_url", "image_url": data_uri}]
    response = app_client("POST", "/rerank", json={"query": QUERY,
                                                   "documents": {"content": parts}})
    assert response.status_code == 200
    [result] = response.json()["results"]
    assert (result["index"], result["document"]) == (0, {"text": DOCS[0], "image": data_uri})
    assert result["relevance_score"] == pytest.approx(
        reranker.score(QUERY, [{"content": parts}])[0].score, abs=1e-6)


def test_cohere_v1_rank_fields(app_client, reranker):
    documents = [{"title": "Bread", "text": DOCS[1]}, {"title": "ReaderLM", "text": DOCS[0]}]
    response = app_client("POST", "/v1/rerank", json={
        "model": "rerank-english-v3.0", "query": QUERY, "documents": documents,
        "rank_fields": ["title", "text"], "return_documents": True, "max_chunks_per_doc": 4})
    assert response.status_code == 200
    texts = [f"title: {d['title']}\ntext: {d['text']}" for d in documents]
    expected = library_ranking(reranker, QUERY, texts)
    body = response.json()
    assert_same_ranking(body["results"], expected)
    assert body["results"][0]["document"] == documents[body["results"][0]["index"]]


def test_cohere_v2(app_client, reranker):
    response = app_client("POST", "/v2/rerank", json={
        "model": "rerank-v3.5", "query": QUERY, "documents": DOCS, "top_n": 2,
        "max_tokens_per_doc": None, "priority": 0})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "results", "meta"}
    assert_same_ranking(body["results"], library_ranking(reranker, QUERY, DOCS, top_n=2))
    assert body["meta"]["api_version"] == {"version": "2"}


def test_cohere_v2_max_tokens_per_doc_truncates(app_client, reranker):
    long_doc = "markdown " * 3000
    for max_tokens, expected_len in ((5, 5), (10**9, 9728)):
        response = app_client("POST", "/v2/rerank", json={
            "query": QUERY, "documents": [long_doc], "max_tokens_per_doc": max_tokens})
        assert response.status_code == 200
        expected = reranker.score(QUERY, [long_doc], max_doc_length=expected_len)[0]
        assert response.json()["results"][0]["relevance_score"] == pytest.approx(
            expected.score, abs=1e-6)
        assert response.json()["meta"]["tokens"]["input_tokens"] == expected.num_tokens


def test_models_health_ready_metrics(app_client):
    models = app_client("GET", "/v1/models").json()
    assert models["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in models["data"]] == [
        (SERVED_NAME, "model", "m0rank")]
    assert app_client("GET", "/health").json() == {"status": "ok"}
    assert app_client("GET", "/ready").json() == {"status": "ready", "model": SERVED_NAME}
    metrics = app_client("GET", "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    for name in ("m0rank_requests_total", "m0rank_request_latency_seconds_bucket",
                 "m0rank_batch_size_bucket", "m0rank_tokens_total", "m0rank_queue_depth",
                 'm0rank_cache_hits_total{cache="image"}',
                 'm0rank_cache_misses_total{cache="image"}'):
        assert name in text
    assert 'm0rank_requests_total{route="/v1/models",status="200"} 1.0' in text


def test_docs_and_root(app_client):
    assert app_client("GET", "/docs").status_code == 200
    root = app_client("GET", "/")
    assert root.status_code == 200


def test_image_cache_counts_repeated_images(app_client):
    image = png_base64(color=(1, 2, 3))
    before = _metric(app_client, 'm0rank_cache_hits_total{cache="image"}')
    for _ in range(2):
        assert app_client("POST", "/v1/rerank", json={
            "query": QUERY, "documents": [{"image": image}]}).status_code == 200
    assert _metric(app_client, 'm0rank_cache_hits_total{cache="image"}') == before + 1


def _metric(app_client, name: str) -> float:
    for line in app_client("GET", "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not found")


def test_model_warnings_reach_the_response(reranker):
    """Warnings a model attaches to a pair (e.g. the offline model on a photo) are returned per
    result and, de-duplicated, at the top level of both response shapes."""
    import dataclasses

    from server_helpers import call, make_app

    from m0rank import Reranker

    own = Reranker(reranker.model)
    original = own.engine.collect

    def warn_on_photos(batch, handle):
        scores = original(batch, handle)
        return [dataclasses.replace(s, warnings=("cannot judge photos",)) if s.num_tokens > 20
                else s for s in scores]

    own.engine.collect = warn_on_photos
    documents = ["short", {"image": png_base64()}, {"image": png_base64(color=(9, 9, 9))}]

    async def scenario(client):
        v1 = await client.post("/v1/rerank", json={"query": QUERY, "documents": documents})
        v2 = await client.post("/v2/rerank", json={"query": QUERY, "documents": documents})
        return v1.json(), v2.json()

    for body in call(make_app(own), scenario):
        assert body["warnings"] == ["cannot judge photos"]
        by_index = {r["index"]: r.get("warnings") for r in body["results"]}
        assert by_index == {0: None, 1: ["cannot judge photos"], 2: ["cannot judge photos"]}
