"""The built-in offline model through the public API: loading, ranking, photos, bad input."""

from __future__ import annotations

import re
import socket

import pytest
from offline_helpers import question, synthetic_photo, topic_docs

from m0rank import Reranker
from m0rank.errors import ImageError, InvalidInputError
from m0rank.testing.checkset import render_passage, render_slide

TOPICS = ("ev", "sourdough", "bees")  # the query is about "ev": document 0 must win


def test_default_loads_without_any_network(monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: attempts.append(a) or [])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reranker = Reranker.from_pretrained()
    results = reranker.rank("electric car winter range", topic_docs("en", TOPICS))
    assert reranker.model_name == "m0rank-offline"
    assert results[0].index == 0
    assert attempts == []


@pytest.mark.parametrize("language", ["en", "de", "zh"])
def test_text_query_text_documents(offline, language: str) -> None:
    results = offline.rank(question(language, "ev"), topic_docs(language, TOPICS))
    assert [r.index for r in results][0] == 0
    assert results[0].score > 0.5 > results[-1].score
    assert all(0.0 <= r.score <= 1.0 and r.warnings == () for r in results)


@pytest.mark.parametrize("language", ["en", "de", "zh"])
def test_text_query_page_images(offline, language: str) -> None:
    pages = [{"image": render_passage(text)} for text in topic_docs(language, TOPICS[:2])]
    results = offline.rank(question(language, "ev"), pages)
    assert results[0].index == 0
    assert results[0].score > results[1].score
    assert results[0].warnings == ()


@pytest.mark.parametrize("language", ["en", "de", "zh"])
def test_image_query_text_documents(offline, language: str) -> None:
    slide = render_slide(question(language, "bees"))
    results = offline.rank({"image": slide}, topic_docs(language, TOPICS))
    assert results[0].index == 2


def test_mixed_document_uses_text_and_image(offline) -> None:
    text = topic_docs("en", ("ev",))[0]
    mixed = {"text": "Winter driving notes.", "image": render_passage(text)}
    results = offline.rank(question("en", "ev"), ["Winter driving notes.", mixed])
    assert results[0].index == 1


def test_photo_scores_zero_with_a_warning(offline, photo) -> None:
    results = offline.rank(question("en", "ev"), [topic_docs("en", ("ev",))[0], photo])
    assert results[-1].index == 1
    assert results[-1].score == 0.0
    assert len(results[-1].warnings) == 1
    assert results[-1].warnings[0].startswith("documents[1]: its image has no readable text")
    assert "scored 0.0" in results[-1].warnings[0]
    assert results[0].warnings == ()


def test_synthetic_photo_is_also_unreadable(offline) -> None:
    scores = offline.score("car battery", [{"image": synthetic_photo()}])
    assert scores[0].score == 0.0 and scores[0].logit == -100.0
    assert "no readable text" in scores[0].warnings[0]


def test_photo_query_warns_on_every_pair(offline, photo) -> None:
    scores = offline.score({"image": photo}, ["a red flower", "a blue car"])
    assert [s.score for s in scores] == [0.0, 0.0]
    assert all(s.warnings[0].startswith("query: its image has no readable text") for s in scores)


def test_mixed_document_with_a_photo_is_ranked_by_its_text(offline, photo) -> None:
    scores = offline.score("electric car battery", [{"text": "electric car battery",
                                                     "image": photo}])
    assert scores[0].score > 0.5
    assert scores[0].warnings[0].endswith("ranked it by its text alone")


def test_pair_scores_the_same_alone_and_in_a_batch(offline) -> None:
    docs = topic_docs("en", ("ev", "sourdough", "bees", "coffee", "rent"))
    together = offline.score(question("en", "coffee"), docs)
    for i, doc in enumerate(docs):
        alone = offline.score(question("en", "coffee"), [doc])[0]
        assert alone.score == pytest.approx(together[i].score, abs=1e-6)


def test_scores_are_monotone_in_relevance(offline) -> None:
    query = "sourdough bread baking at home"
    docs = ["How to bake sourdough bread at home: flour, water, salt and a starter.",
            "Bread is a staple food made from flour.",
            "The central bank raised interest rates."]
    scores = [s.score for s in offline.score(query, docs)]
    assert scores[0] > scores[1] > scores[2]


def test_max_doc_length_cuts_the_document(offline) -> None:
    doc = "unrelated filler words " * 40 + "sourdough bread"
    full = offline.score("sourdough bread", [doc])[0]
    cut = offline.score("sourdough bread", [doc], max_doc_length=20)[0]
    assert cut.num_tokens < full.num_tokens
    assert cut.score < full.score


BAD_INPUTS = [
    ([], InvalidInputError, "documents must not be empty"),
    (["ok", "   "], InvalidInputError, "documents[1] must not be empty or only whitespace"),
    (["ok", {"txt": "x"}], InvalidInputError,
     "documents[1] must have a 'text' or an 'image' key, got keys ['txt']"),
    (["ok", 42], InvalidInputError, "documents[1] must be a string, a PIL image, a dict"),
    ([{"image": "data:image/png;base64,not-base64!!"}], ImageError, "documents[0].image"),
]


@pytest.mark.parametrize(("documents", "error", "message"), BAD_INPUTS)
def test_bad_input_is_refused_like_the_m0_path(offline, reranker, documents, error,
                                               message) -> None:
    with pytest.raises(error, match=re.escape(message)) as offline_error:
        offline.rank("query", documents)
    with pytest.raises(error) as m0_error:
        reranker.rank("query", documents)
    assert str(offline_error.value) == str(m0_error.value)


def test_empty_query_is_refused(offline) -> None:
    with pytest.raises(InvalidInputError, match=re.escape("query must not be empty")):
        offline.rank("  ", ["doc"])


def test_caches_count_hits(offline) -> None:
    page = render_passage("Chlorophyll absorbs light for photosynthesis.")
    before = offline.model.cache_stats()["ocr"]
    offline.score("photosynthesis", [{"image": page}, {"image": page.copy()}])
    after = offline.model.cache_stats()["ocr"]
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 1
