"""HTTP: PDFs (per-page results with "page"), chunking, dedup and diversity, 413 limits, and
POST /v1/explain, on the weight-free dummy model and the tiny jina-m0."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from server_helpers import make_app

from m0rank.testing.checkset import render_passage
from m0rank.testing.pdfs import text_pdf

QUERY = "wind turbine blade fatigue"
PAGES = [["Annual report of the engineering department."],
         ["Budget tables and staffing for the coming year."],
         ["Wind turbine blade fatigue was measured under cyclic loads."],
         ["Appendix: list of abbreviations."]]
PDF_B64 = base64.b64encode(text_pdf(PAGES)).decode()
LONG = " ".join(["Flour and sugar make cakes."] * 60 + ["Wind turbine blade fatigue."])


def _png_b64(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def dummy_client(dummy_reranker: Any):  # noqa: ANN201
    with TestClient(make_app(dummy_reranker), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="module")
def m0_client(reranker: Any):  # noqa: ANN201
    with TestClient(make_app(reranker), raise_server_exceptions=False) as client:
        yield client


def test_pdf_pages_ranked_with_page_and_top_n_counting_pages(dummy_client: TestClient) -> None:
    response = dummy_client.post("/v1/rerank", json={
        "query": QUERY, "top_n": 3,
        "documents": ["cooking", {"pdf": f"data:application/pdf;base64,{PDF_B64}"}]})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert (results[0]["index"], results[0]["page"]) == (1, 3)
    assert len(results) == 3
    assert all("page" not in r for r in results if r["index"] == 0)
    echo = results[0]["document"]
    assert echo["page"] == 3 and echo["pdf"] == "<pdf>"
    assert echo["thumbnail"].startswith("data:image/jpeg;base64,")


def test_pages_option_and_per_document_pages(dummy_client: TestClient) -> None:
    body: dict[str, Any] = {"query": QUERY, "documents": [{"pdf": PDF_B64}], "pages": "1-2"}
    pages = {r["page"] for r in dummy_client.post("/v1/rerank", json=body).json()["results"]}
    assert pages == {1, 2}
    body["documents"] = [{"pdf": PDF_B64, "pages": [4]}]
    pages = {r["page"] for r in dummy_client.post("/v1/rerank", json=body).json()["results"]}
    assert pages == {4}


def test_cohere_v2_indices_point_at_documents(dummy_client: TestClient) -> None:
    response = dummy_client.post("/v2/rerank", json={
        "query": QUERY, "documents": [{"pdf": PDF_B64}, "wind turbine"]})
    assert response.status_code == 200, response.text
    assert {r["index"] for r in response.json()["results"]} == {0, 1}


def test_bad_pdfs_are_400(dummy_client: TestClient) -> None:
    not_pdf = dummy_client.post("/v1/rerank", json={
        "query": QUERY, "documents": [{"pdf": base64.b64encode(b"hello world!").decode()}]})
    assert not_pdf.status_code == 400 and "is not a PDF" in not_pdf.text
    missing = dummy_client.post("/v1/rerank", json={
        "query": QUERY, "documents": [{"pdf": PDF_B64, "pages": [9]}]})
    assert missing.status_code == 400 and "page 9 does not exist" in missing.text


def test_pdf_page_and_size_limits_are_413(dummy_reranker: Any) -> None:
    from m0rank.config import PdfLimits

    limits = PdfLimits(max_pages=2, max_bytes=4000)
    with TestClient(make_app(dummy_reranker, pdf_limits=limits),
                    raise_server_exceptions=False) as client:
        pages = client.post("/v1/rerank", json={"query": QUERY, "documents": [{"pdf": PDF_B64}]})
        big = text_pdf([[f"line {i} " * 8 for i in range(40)]] * 3)
        size = client.post("/v1/rerank", json={
            "query": QUERY, "documents": [{"pdf": base64.b64encode(big).decode()}]})
    assert pages.status_code == 413 and "4 pages to read; the limit is 2" in pages.text
    assert size.status_code == 413 and "over the PDF size limit" in size.text


def test_chunking_dedup_and_diversity_over_http(dummy_client: TestClient) -> None:
    response = dummy_client.post("/v1/rerank", json={
        "query": QUERY, "documents": [LONG, LONG, "cakes"], "chunk_size": 32,
        "chunk_overlap": 8, "dedup": True, "diversity": 0.7})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    start, end = results[0]["chunk"]
    assert "Wind turbine" in LONG[start:end]
    assert results[1]["duplicate_of"] == results[0]["index"]
    usage = response.json()["usage"]["total_tokens"]
    plain = dummy_client.post("/v1/rerank", json={"query": QUERY,
                                                  "documents": [LONG, LONG, "cakes"]})
    assert usage > plain.json()["usage"]["total_tokens"]  # every window is counted
    bad = dummy_client.post("/v1/rerank", json={"query": QUERY, "documents": ["a"],
                                                "diversity": 2})
    assert bad.status_code == 400 and "diversity must be" in bad.text


def test_jina_m0_pdf_over_http_matches_the_library(m0_client: TestClient, reranker: Any) -> None:
    response = m0_client.post("/v1/rerank", json={"query": QUERY,
                                                  "documents": [{"pdf": PDF_B64}]})
    assert response.status_code == 200, response.text
    served = [(r["page"], r["relevance_score"]) for r in response.json()["results"]]
    library = [(r.page, r.score) for r in reranker.rank(QUERY, [{"pdf": text_pdf(PAGES)}])]
    assert [p for p, _ in served] == [p for p, _ in library]
    assert [s for _, s in served] == pytest.approx([s for _, s in library], abs=1e-5)


def test_explain_occlusion_and_attention(m0_client: TestClient) -> None:
    page = _png_b64(render_passage("Wind turbine blades fail by fatigue."))
    occlusion = m0_client.post("/v1/explain", json={"query": QUERY,
                                                    "document": {"image": page}, "block": 4})
    assert occlusion.status_code == 200, occlusion.text
    body = occlusion.json()
    assert body["method"] == "occlusion" and body["overlay"].startswith("data:image/png")
    assert body["score"] == pytest.approx(body["method_score"])
    attention = m0_client.post("/v1/explain", json={
        "query": QUERY, "document": {"image": page}, "method": "attention", "layers": [-1],
        "overlay": False})
    assert attention.status_code == 200, attention.text
    body = attention.json()
    assert "overlay" not in body and body["details"]["layers"] == [1]
    assert body["method_score"] == pytest.approx(body["score"], abs=1e-4)


def test_explain_text_pdf_and_errors(dummy_client: TestClient) -> None:
    text = dummy_client.post("/v1/explain", json={"query": QUERY,
                                                  "document": "the wind turbine", "block": 1})
    assert text.status_code == 200 and text.json()["spans"][1]["text"] == "wind"
    page = dummy_client.post("/v1/explain", json={"query": QUERY,
                                                  "document": {"pdf": PDF_B64, "pages": [3]}})
    assert page.status_code == 200 and page.json()["spans"][0]["text"] == "Wind"
    unsupported = dummy_client.post("/v1/explain", json={"query": QUERY, "document": "text",
                                                         "method": "attention"})
    assert unsupported.status_code in (400, 422) and "needs jina" in unsupported.text
    unknown = dummy_client.post("/v1/explain", json={"query": QUERY, "document": "t",
                                                     "method": "lime"})
    assert unknown.status_code == 400 and "method must be one of" in unknown.text


def test_pdf_urls_go_through_the_guarded_fetch(dummy_reranker: Any, server: Any) -> None:
    """A PDF URL is fetched like an image: allowed hosts only, application/pdf accepted."""
    from image_helpers import Route

    server.routes["/report.pdf"] = Route(text_pdf(PAGES),
                                         headers={"Content-Type": "application/pdf"})
    body = {"query": QUERY, "documents": [{"pdf": server.url("/report.pdf")}], "top_n": 1}
    with TestClient(make_app(dummy_reranker), raise_server_exceptions=False) as client:
        refused = client.post("/v1/rerank", json=body)
    assert refused.status_code == 400 and "refusing to fetch" in refused.text
    assert server.hits == {}
    with TestClient(make_app(dummy_reranker, image_allow_hosts=("127.0.0.1",)),
                    raise_server_exceptions=False) as client:
        fetched = client.post("/v1/rerank", json=body)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["results"][0]["page"] == 3
    assert fetched.json()["results"][0]["document"]["pdf"] == server.url("/report.pdf")


def test_offline_model_over_http_ranks_page_three_first() -> None:
    from m0rank import Reranker

    offline = Reranker.from_pretrained("m0rank-offline")
    with TestClient(make_app(offline), raise_server_exceptions=False) as client:
        response = client.post("/v1/rerank", json={
            "query": QUERY, "documents": ["cooking pasta", {"pdf": PDF_B64}], "top_n": 2})
    assert response.status_code == 200, response.text
    best = response.json()["results"][0]
    assert (best["index"], best["page"]) == (1, 3)


def test_operators_set_pdf_limits_from_the_environment(dummy_reranker) -> None:
    from m0rank.server.settings import ServerSettings
    from m0rank.testing.pdfs import text_pdf

    settings = ServerSettings.from_env({"M0RANK_PDF_LIMITS__MAX_PAGES": "2"})
    assert settings.pdf_limits.max_pages == 2
    import base64

    pdf = base64.b64encode(text_pdf([["one"], ["two"], ["three"]])).decode()

    async def post(client):
        return await client.post("/v1/rerank", json={"query": "two",
                                                     "documents": [{"pdf": pdf}]})

    from server_helpers import call, make_app

    response = call(make_app(dummy_reranker, pdf_limits=settings.pdf_limits), post)
    assert response.status_code == 413
    assert "documents[0]" in response.json()["detail"]


def test_cohere_v2_results_name_the_pdf_page(dummy_reranker) -> None:
    import base64

    from server_helpers import call, make_app

    from m0rank.testing.pdfs import text_pdf

    pdf = base64.b64encode(text_pdf([["bread"], ["tower height"], ["cats"]])).decode()

    async def post(client):
        return await client.post("/v2/rerank", json={"model": "m", "query": "tower height",
                                                     "documents": [{"pdf": pdf}]})

    body = call(make_app(dummy_reranker), post).json()
    assert [r["page"] for r in body["results"]][0] == 2
    assert {r["index"] for r in body["results"]} == {0}


def test_return_documents_of_a_chunked_text_carries_its_best_passage(
        dummy_client: TestClient) -> None:
    response = dummy_client.post("/v1/rerank", json={
        "query": QUERY, "documents": [LONG, "cakes"], "chunk_size": 32, "chunk_overlap": 8,
        "return_documents": True})
    best = response.json()["results"][0]
    start, end = best["chunk"]
    assert best["document"]["text"] == LONG
    assert best["document"]["passage"] == LONG[start:end]
    assert response.json()["results"][1]["document"]["passage"] == "cakes"  # one window: all
