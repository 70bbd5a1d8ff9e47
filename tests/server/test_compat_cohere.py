"""Cohere v2's ``max_tokens_per_doc``: omitted or null means 4096 tokens, as at Cohere (over the
tiny jina-m0 with the real Qwen2 tokenizer, so truncation is real)."""

from __future__ import annotations

import pytest

QUERY = "small language model for markdown"
# Well over 4096 tokens and under the 9728 the other paths allow by default.
LONG = " ".join(f"markdown page {i} converts html" for i in range(1200))


@pytest.fixture(scope="module")
def truncated(reranker):
    """The library's answer with documents cut to 4096 and to the default length."""
    return (reranker.score(QUERY, [LONG], max_doc_length=4096)[0],
            reranker.score(QUERY, [LONG])[0])


@pytest.mark.parametrize("extra", [{}, {"max_tokens_per_doc": None}])
def test_v2_defaults_to_4096_tokens_per_document(app_client, truncated, extra):
    at_4096, untouched = truncated
    assert at_4096.num_tokens < untouched.num_tokens
    response = app_client("POST", "/v2/rerank", json={"query": QUERY, "documents": [LONG],
                                                      **extra})
    assert response.status_code == 200
    body = response.json()
    assert body["meta"]["tokens"]["input_tokens"] == at_4096.num_tokens
    assert body["results"][0]["relevance_score"] == pytest.approx(at_4096.score, abs=1e-6)


def test_v1_keeps_the_model_default(app_client, truncated):
    response = app_client("POST", "/v1/rerank", json={"query": QUERY, "documents": [LONG]})
    assert response.json()["usage"]["total_tokens"] == truncated[1].num_tokens
