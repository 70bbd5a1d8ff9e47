"""vLLM's (and infinity's) rerank and score dialects: raw scores, usage.prompt_tokens, bare
documents, content parts as one document, ``/score``, ``/invocations``, and the vLLM flags we
refuse by name instead of ignoring.

Reference: vllm ``entrypoints/pooling/score/protocol.py`` (RerankRequest, ScoreRequest with
queries/documents, queries/items, text_1/text_2, data_1/data_2, RerankUsage, ScoreResponse),
``score/utils.py`` (1:1, 1:N or N:N) and ``examples/pooling/score/vision_rerank_api_online.py``.
"""

from __future__ import annotations

import pytest
from server_helpers import SERVED_NAME, png_base64

QUERY = "small language model"
DOCS = ["a recipe for bread", "small language model for markdown", "language of bees"]


@pytest.fixture(scope="module")
def reranker(dummy_reranker):
    """The HTTP shapes are under test: the weight-free dummy model's scores suffice."""
    return dummy_reranker


def assert_400(response, message):
    body = response.json()
    assert response.status_code == 400, body
    assert body["detail"] == message
    assert body["error"]["type"] == "invalid_request"


@pytest.mark.parametrize("flags", [{"use_activation": False}, {"softmax": False},
                                   {"activation": False}, {"raw_scores": True}])
def test_raw_scores_return_logits(app_client, reranker, flags):
    response = app_client("POST", "/rerank", json={"query": QUERY, "documents": DOCS, **flags})
    assert response.status_code == 200
    logits = [s.logit for s in reranker.score(QUERY, DOCS)]
    results = response.json()["results"]
    assert [r["index"] for r in results] == sorted(range(3), key=lambda i: (-logits[i], i))
    assert [r["relevance_score"] for r in results] == [logits[r["index"]] for r in results]


def test_raw_scores_on_cohere_v2_path(app_client, reranker):
    response = app_client("POST", "/v2/rerank", json={"query": QUERY, "documents": DOCS,
                                                      "use_activation": False, "top_n": 1})
    logit = max(s.logit for s in reranker.score(QUERY, DOCS))
    assert response.json()["results"][0]["relevance_score"] == logit


def test_contradicting_raw_flags_are_400(app_client):
    response = app_client("POST", "/v1/rerank", json={
        "query": QUERY, "documents": DOCS, "raw_scores": True, "use_activation": True})
    assert_400(response, "raw_scores=true contradicts use_activation=true; send one of them")


@pytest.mark.parametrize(("flags", "message"), [
    ({"truncate_prompt_tokens": 128},
     "truncate_prompt_tokens is not supported (got 128): documents are always truncated to fit "
     "the model; send max_tokens_per_doc to truncate them shorter, or -1 or null"),
    ({"mm_processor_kwargs": {"max_pixels": 1000}},
     "mm_processor_kwargs is not supported (got keys ['max_pixels']): image resizing is set by "
     "the server's --min-pixels and --max-pixels"),
    ({"priority": 1},
     "priority is not supported (got 1): requests are not scheduled by priority; send 0 or "
     "null"),
])
@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank", "/v2/rerank", "/score"])
def test_unsupported_vllm_flags_are_400_by_name(app_client, flags, message, path):
    body = ({"queries": QUERY, "documents": DOCS} if path == "/score"
            else {"query": QUERY, "documents": DOCS})
    assert_400(app_client("POST", path, json={**body, **flags}), message)


def test_default_values_of_those_flags_are_accepted(app_client):
    response = app_client("POST", "/rerank", json={
        "query": QUERY, "documents": DOCS, "truncate_prompt_tokens": -1,
        "mm_processor_kwargs": {}, "priority": 0, "use_activation": None})
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank"])
def test_usage_has_prompt_tokens(app_client, reranker, path):
    response = app_client("POST", path, json={"query": QUERY, "documents": DOCS})
    tokens = sum(s.num_tokens for s in reranker.score(QUERY, DOCS))
    assert response.json()["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


def test_a_bare_string_is_one_document(app_client, reranker):
    response = app_client("POST", "/rerank", json={"query": QUERY, "documents": DOCS[1]})
    assert response.status_code == 200
    [score] = reranker.score(QUERY, [DOCS[1]])
    assert response.json()["results"] == [{"index": 0, "relevance_score": score.score,
                                           "document": {"text": DOCS[1]}}]


def test_bare_content_parts_are_one_mixed_document(app_client, reranker):
    image = "data:image/png;base64," + png_base64()
    parts = [{"type": "text", "text": DOCS[1]},
             {"type": "image_url", "image_url": {"url": image}}]
    response = app_client("POST", "/rerank", json={"query": QUERY,
                                                   "documents": {"content": parts}})
    assert response.status_code == 200
    [score] = reranker.score(QUERY, [{"text": DOCS[1], "image": image}])
    assert response.json()["results"] == [{"index": 0, "relevance_score": score.score,
                                           "document": {"text": DOCS[1], "image": image}}]


def score_body(response):
    body = response.json()
    assert response.status_code == 200, body
    assert body["id"] == response.headers["x-request-id"]
    assert isinstance(body.pop("created"), int)
    body.pop("id")
    return body


@pytest.mark.parametrize(("sides", "path"), [
    ({"queries": QUERY, "documents": DOCS}, "/score"),
    ({"queries": [QUERY], "items": DOCS}, "/score"),
    ({"text_1": QUERY, "text_2": DOCS}, "/v1/score"),
    ({"data_1": [QUERY], "data_2": DOCS}, "/score"),
])
def test_score_one_query_against_n_documents(app_client, reranker, sides, path):
    scores = reranker.score(QUERY, DOCS)
    tokens = sum(s.num_tokens for s in scores)
    assert score_body(app_client("POST", path, json={"model": "m", **sides})) == {
        "object": "list", "model": SERVED_NAME,
        "data": [{"index": i, "object": "score", "score": s.score} for i, s in enumerate(scores)],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens, "completion_tokens": 0}}


def test_score_n_to_n_is_pairwise_with_raw_scores(app_client, reranker):
    queries = [QUERY, "bread", QUERY]
    response = app_client("POST", "/score", json={"text_1": queries, "text_2": DOCS,
                                                  "use_activation": False})
    pairs = [reranker.score(q, [d])[0] for q, d in zip(queries, DOCS, strict=True)]
    body = score_body(response)
    assert body["data"] == [{"index": i, "object": "score", "score": s.logit}
                            for i, s in enumerate(pairs)]
    assert body["usage"]["total_tokens"] == sum(s.num_tokens for s in pairs)


@pytest.mark.parametrize(("body", "message"), [
    ({"text_1": ["a", "b"], "text_2": ["a", "b", "c"]},
     "text_1 has 2 items and text_2 3: send one text_1 item (scored against every text_2 item) "
     "or as many as text_2 (scored pairwise)"),
    ({"queries": QUERY, "documents": []}, "documents must not be empty"),
    ({"text_1": ["a", "b", "c"], "text_2": ["x", "y", " "]},
     "text_2[2] must not be empty or only whitespace"),
    ({"queries": " ", "documents": ["x"]}, "queries must not be empty or only whitespace"),
    ({"queries": QUERY}, "a score request needs exactly one pair of sides: queries and "
     "documents, queries and items, text_1 and text_2, or data_1 and data_2; got ['queries']"),
    ({"text_1": QUERY, "documents": DOCS}, "a score request needs exactly one pair of sides: "
     "queries and documents, queries and items, text_1 and text_2, or data_1 and data_2; got "
     "['documents', 'text_1']"),
])
def test_score_shape_errors_are_400(app_client, body, message):
    assert_400(app_client("POST", "/score", json=body), message)


def test_invocations_dispatch_by_body_shape(app_client, reranker):
    scores = reranker.score(QUERY, DOCS)
    rerank = app_client("POST", "/invocations", json={"query": QUERY, "documents": DOCS})
    assert rerank.status_code == 200
    assert {r["index"]: r["relevance_score"] for r in rerank.json()["results"]} == {
        i: s.score for i, s in enumerate(scores)}
    score = app_client("POST", "/invocations", json={"queries": QUERY, "documents": DOCS})
    assert [d["score"] for d in score_body(score)["data"]] == [s.score for s in scores]
    tei = app_client("POST", "/invocations", json={"query": QUERY, "texts": DOCS})
    assert sorted((r["index"], r["score"]) for r in tei.json()) == [
        (i, s.score) for i, s in enumerate(scores)]


def test_invocations_without_a_known_shape_is_400(app_client):
    assert_400(app_client("POST", "/invocations", json={"input": "x"}),
               "cannot tell what this /invocations body asks for: send a rerank body (query "
               "and documents), a TEI rerank body (query and texts) or a score body (queries "
               "and documents, text_1 and text_2, or data_1 and data_2)")


def test_score_gives_a_pdf_its_best_page(app_client, reranker):
    pytest.importorskip("pypdfium2")
    import base64

    from m0rank.testing.pdfs import text_pdf

    pdf = {"pdf": base64.b64encode(text_pdf([["bread"], [QUERY], ["bees"]])).decode()}
    pages = reranker.score(QUERY, [pdf])
    assert len(pages) == 3
    response = app_client("POST", "/score", json={"queries": QUERY, "documents": [pdf, DOCS[0]]})
    assert [d["score"] for d in score_body(response)["data"]] == [
        max(p.score for p in pages), reranker.score(QUERY, [DOCS[0]])[0].score]
