"""TEI's ``/rerank`` dialect on our ``/rerank``: a body with ``texts`` gets TEI's answer (a bare
list of ``{index, score, text?}``, best first) and TEI's error body ``{error, error_type}``;
bodies with ``documents`` keep vLLM's/Jina's shape on the same path.

Reference: text-embeddings-inference ``router/src/http/types.rs`` (RerankRequest, Rank,
ErrorResponse) and ``server.rs`` (``rerank``: "`texts` cannot be empty", ``ErrorType::Empty``).
"""

from __future__ import annotations

import json

import pytest

QUERY = "small language model"
TEXTS = ["a recipe for bread", "small language model for markdown", "language of bees"]


@pytest.fixture(scope="module")
def reranker(dummy_reranker):
    """The HTTP shapes are under test: the weight-free dummy model's scores suffice."""
    return dummy_reranker


def expected_ranks(reranker, *, raw=False, text=False):
    scores = reranker.score(QUERY, TEXTS)
    values = [s.logit if raw else s.score for s in scores]
    order = sorted(range(len(TEXTS)), key=lambda i: (-values[i], i))
    return [{"index": i, **({"text": TEXTS[i]} if text else {}), "score": values[i]}
            for i in order]


def test_texts_get_teis_bare_list_best_first(app_client, reranker):
    response = app_client("POST", "/rerank", json={"query": QUERY, "texts": TEXTS})
    assert response.status_code == 200
    assert response.json() == expected_ranks(reranker)
    assert response.headers["x-request-id"]


def test_return_text_and_raw_scores(app_client, reranker):
    response = app_client("POST", "/rerank", json={
        "query": QUERY, "texts": TEXTS, "return_text": True, "raw_scores": True,
        "truncate": True, "truncation_direction": "Right"})  # Haystack's TEI ranker body
    assert response.status_code == 200
    assert response.json() == expected_ranks(reranker, raw=True, text=True)
    assert response.json()[0]["score"] > 1  # a logit, not a probability


def test_empty_texts_is_400_with_error_type_empty(app_client):
    response = app_client("POST", "/rerank", json={"query": QUERY, "texts": []})
    assert response.status_code == 400
    assert response.json() == {"error": "`texts` cannot be empty", "error_type": "empty"}


@pytest.mark.parametrize(("payload", "status", "message"), [
    ({"query": QUERY, "texts": ["a"], "top_n": 1}, 422,
     "invalid request: top_n: Extra inputs are not permitted"),
    ({"query": QUERY, "texts": "a"}, 422, "invalid request: texts: Input should be a valid list"),
    ({"query": QUERY, "texts": ["a"], "raw_scores": "yes"}, 422,
     "invalid request: raw_scores: Input should be a valid boolean"),
    ({"query": QUERY, "texts": ["a"], "truncation_direction": "left"}, 400,
     "truncation_direction 'left' is not supported: texts are truncated at their end (send "
     "'right' or omit it)"),
    ({"query": " ", "texts": ["a"]}, 400, "query must not be empty or only whitespace"),
    ({"query": QUERY, "texts": ["a\ud800"]}, 400,
     "texts[0] contains a lone surrogate \\ud800 at character 1; text must be valid "
     "Unicode"),
    ({"query": QUERY, "texts": ["a", " "]}, 400,
     "texts[1] must not be empty or only whitespace"),
])
def test_tei_errors_use_teis_body(app_client, payload, status, message):
    # json.dumps escapes the lone surrogate as JSON "\ud800", as a client's encoder would
    response = app_client("POST", "/rerank", content=json.dumps(payload),
                          headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.json() == {"error": message, "error_type": "validation"}


def test_tei_limits_keep_their_status_in_teis_body(reranker):
    from fastapi.testclient import TestClient
    from server_helpers import make_app

    with TestClient(make_app(reranker, max_documents=2)) as client:
        response = client.post("/rerank", json={"query": QUERY, "texts": TEXTS})
    assert response.status_code == 413
    assert response.json() == {
        "error": "documents has 3 items; this server accepts at most 2 per request",
        "error_type": "validation"}


def test_documents_on_the_same_path_keep_the_rerank_shape(app_client, reranker):
    response = app_client("POST", "/rerank", json={"query": QUERY, "documents": TEXTS,
                                                   "top_n": 1})
    assert response.status_code == 200
    body = response.json()
    best = expected_ranks(reranker)[0]
    assert body["results"] == [{"index": best["index"], "relevance_score": best["score"],
                                "document": {"text": TEXTS[best["index"]]}}]
    assert set(body) == {"id", "model", "usage", "results", "meta"}
