"""Reranker.rank / score with PDFs, chunking, dedup and diversity, on every kind of model:
the weight-free dummy, the built-in offline model and a tiny random jina-reranker-m0."""

from __future__ import annotations

import pytest

from m0rank import Reranker
from m0rank.errors import InputTooLargeError, InvalidInputError
from m0rank.preprocessing.pdf import render_pdf
from m0rank.testing.checkset import render_passage
from m0rank.testing.pdfs import image_pdf, text_pdf

QUERY = "wind turbine blade fatigue"
PAGES = [["Annual report of the engineering department."],
         ["Budget tables and staffing for the coming year."],
         ["Wind turbine blade fatigue was measured under cyclic loads."],
         ["Appendix: list of abbreviations."]]
FILLER = " ".join(f"The kitchen recipe {i} uses flour, sugar and butter." for i in range(80))
ANSWER = "Wind turbine blade fatigue grows with the number of load cycles."
LONG = f"{FILLER} {ANSWER} {FILLER}"


@pytest.fixture(scope="module")
def dummy() -> Reranker:
    return Reranker.from_pretrained("m0rank-dummy")


@pytest.fixture(scope="module")
def offline() -> Reranker:
    return Reranker.from_pretrained("m0rank-offline")


def test_pdf_pages_are_ranked_each_with_its_page_number(dummy: Reranker) -> None:
    results = dummy.rank(QUERY, ["cooking", {"pdf": text_pdf(PAGES)}], top_n=3)
    assert [(r.index, r.page) for r in results][0] == (1, 3)
    assert len(results) == 3  # top_n counts pages
    assert all(r.page is None for r in results if r.index == 0)


def test_pages_option_limits_the_pages_read(dummy: Reranker) -> None:
    data = text_pdf(PAGES)
    assert {r.page for r in dummy.rank(QUERY, [{"pdf": data}], pages="1-2")} == {1, 2}
    assert {r.page for r in dummy.rank(QUERY, [{"pdf": data, "pages": [4]}], pages="1-2")} == {4}


def test_pdf_limits_give_input_too_large(dummy: Reranker) -> None:
    from m0rank.config import PdfLimits

    small = Reranker(dummy.model, pdf_limits=PdfLimits(max_pages=2))
    with pytest.raises(InputTooLargeError, match=r"documents\[0\]\.pdf has 4 pages to read"):
        small.rank(QUERY, [{"pdf": text_pdf(PAGES)}])


def test_offline_model_ranks_page_three_first_text_layer_and_scanned(offline: Reranker) -> None:
    born_digital = offline.rank(QUERY, [{"pdf": text_pdf(PAGES)}])
    assert (born_digital[0].index, born_digital[0].page) == (0, 3)
    scanned = image_pdf([render_passage(" ".join(lines)) for lines in PAGES])
    results = offline.rank(QUERY, ["cooking pasta", {"pdf": scanned}], return_documents=True)
    assert (results[0].index, results[0].page) == (1, 3)
    assert results[0].document.to_dict() == {"pdf": "<pdf>"}


def test_jina_m0_scores_a_pdf_page_as_its_rendered_image(reranker: Reranker) -> None:
    data = text_pdf(PAGES)
    pages = render_pdf(data, "doc")
    by_page = {s.page: s.score for s in reranker.score(QUERY, [{"pdf": data}])}
    direct = reranker.score(QUERY, [{"image": p.image} for p in pages])
    assert by_page == pytest.approx({p.number: s.score for p, s in zip(pages, direct, strict=True)}, abs=1e-6)
    ranked = reranker.rank(QUERY, [{"pdf": data}])
    assert [r.page for r in ranked] == sorted(by_page, key=lambda n: (-by_page[n], n))


@pytest.mark.parametrize("family", ["offline", "reranker"])
def test_chunked_score_equals_its_best_window_scored_alone(family: str,
                                                           request: pytest.FixtureRequest) -> None:
    model: Reranker = request.getfixturevalue(family)
    [result] = model.rank(QUERY, [LONG], chunk_size=64, chunk_overlap=16, return_documents="chunk")
    start, end = result.chunk
    [alone] = model.score(QUERY, [LONG[start:end]])
    assert result.score == pytest.approx(alone.score, abs=1e-6)
    assert result.document.text == LONG[start:end]
    windows = model.score(QUERY, [LONG], chunk_size=64, chunk_overlap=16)
    assert windows[0].chunk == (start, end)


def test_offline_chunking_finds_the_buried_answer_truncation_does_not(offline: Reranker) -> None:
    truncated = offline.score(QUERY, [LONG])[0]
    [chunked] = offline.rank(QUERY, [LONG], chunk_size=64, chunk_overlap=16)
    assert ANSWER in LONG[chunked.chunk[0]:chunked.chunk[1]]
    assert chunked.score > truncated.score + 0.3


def test_usage_counts_every_window(dummy: Reranker) -> None:
    plain = dummy.score(QUERY, [LONG])[0].num_tokens
    chunked = dummy.score(QUERY, [LONG], chunk_size=64)[0].num_tokens
    assert chunked > plain  # windows each pay the template and the query


def test_dedup_and_diversity(dummy: Reranker) -> None:
    docs = [ANSWER, ANSWER + " ", "turbine blade notes", "wind turbine"]
    results = dummy.rank(QUERY, docs, dedup=True)
    assert {r.index: r.duplicate_of for r in results}[1] == 0
    diverse = dummy.rank(QUERY, docs, diversity=0.3)
    assert [r.index for r in diverse][:2] != [0, 1]


def test_bad_options_name_the_field(dummy: Reranker) -> None:
    with pytest.raises(InvalidInputError, match="chunk_overlap needs chunk_size"):
        dummy.rank(QUERY, ["a"], chunk_overlap=4)
    with pytest.raises(InvalidInputError, match="return_documents must be"):
        dummy.rank(QUERY, ["a"], return_documents="yes")
