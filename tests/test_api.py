"""Public API behaviour on the tiny m0 checkpoint: ranking, inputs, errors, compute_score."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from m0rank import Document, Reranker
from m0rank.config import EngineConfig
from m0rank.errors import ImageError, InputTooLargeError, InvalidInputError

TEXT_DOCS = ["ReaderLM-v2 converts HTML to Markdown.", "数据提取么？为什么不用正则啊",
             "During the California Gold Rush, merchants sold supplies.", "Die Straße ist groß."]


def _image(color: tuple[int, int, int], size: tuple[int, int] = (120, 90)) -> Image.Image:
    return Image.new("RGB", size, color)


def test_rank_sorts_by_score_and_keeps_indices(reranker: Reranker) -> None:
    results = reranker.rank("slm markdown", TEXT_DOCS)
    scores = [r.score for r in reranker.score("slm markdown", TEXT_DOCS)]
    assert [r.index for r in results] == sorted(range(4), key=lambda i: -scores[i])
    assert [r.score for r in results] == sorted(scores, reverse=True)
    assert all(0.0 <= r.score <= 1.0 for r in results)
    assert all(r.document is None for r in results)


def test_ties_are_broken_by_input_index(reranker: Reranker) -> None:
    results = reranker.rank("q", ["same text", "other", "same text"])
    tied = [r.index for r in results if r.index in (0, 2)]
    assert tied == [0, 2]


def test_top_n_and_return_documents(reranker: Reranker) -> None:
    results = reranker.rank("slm markdown", TEXT_DOCS, top_n=2, return_documents=True)
    assert len(results) == 2
    assert results[0].document == Document(text=TEXT_DOCS[results[0].index])
    assert len(reranker.rank("q", TEXT_DOCS, top_n=10)) == 4


def test_every_input_shape_scores_the_same(reranker: Reranker) -> None:
    image = _image((200, 10, 10))
    shapes = [
        ["text doc", image],
        [{"text": "text doc"}, {"image": image}],
        [Document(text="text doc"), Document(images=(image,))],
        [{"content": [{"type": "text", "text": "text doc"}]}, {"image": [image]}],
    ]
    scores = [[s.score for s in reranker.score("query", docs)] for docs in shapes]
    for other in scores[1:]:
        np.testing.assert_allclose(other, scores[0], atol=1e-6)


def test_one_call_mixes_text_image_and_mixed_documents(reranker: Reranker) -> None:
    docs = ["plain", {"image": _image((1, 2, 3))}, {"text": "caption", "image": _image((9, 9, 9))}]
    results = reranker.score(_image((50, 60, 70)), docs)
    assert len(results) == 3
    # Image tokens are counted: a 120x90 image is 4x3 merged patches = 12 tokens.
    assert results[1].num_tokens > results[0].num_tokens


def test_pair_scores_do_not_depend_on_batching(m0_checkpoint) -> None:
    docs = [f"document number {i} " * (1 + 7 * i) for i in range(6)] + [_image((i * 30, 0, 0)) for i in range(3)]
    alone = Reranker.from_pretrained(m0_checkpoint, max_batch_size=1)
    packed = Reranker.from_pretrained(m0_checkpoint, max_batch_size=32, max_batch_tokens=100_000)
    tight = Reranker.from_pretrained(m0_checkpoint, max_batch_size=3, max_batch_tokens=300)
    reference = [s.score for s in alone.score("query text", docs)]
    for other in (packed, tight):
        np.testing.assert_allclose([s.score for s in other.score("query text", docs)], reference,
                                   atol=1e-5)
    # ... and a pair scores the same as the first, middle or last document of a call.
    single = alone.score("query text", [docs[4]])[0].score
    assert single == pytest.approx(reference[4], abs=1e-5)


def test_long_text_document_is_truncated_like_the_reference(reranker: Reranker) -> None:
    long_doc = "word " * 500
    truncated = reranker.score("q", [long_doc], max_length=120, max_doc_length=50)[0]
    tokenizer = reranker.model.encoder.tokenizer
    head = tokenizer.decode(tokenizer(long_doc, add_special_tokens=False)["input_ids"][:50])
    exact = reranker.score("q", [head], max_length=120, max_doc_length=50)[0]
    assert truncated.num_tokens == exact.num_tokens <= 120
    assert truncated.score == pytest.approx(exact.score, abs=1e-6)


def test_prompt_is_cut_to_max_length(reranker: Reranker) -> None:
    result = reranker.score("query " * 40, ["doc " * 30], max_length=40, max_doc_length=20,)[0]
    assert result.num_tokens == 40


def test_image_tokens_are_never_truncated(reranker: Reranker) -> None:
    big = _image((10, 10, 10), (560, 560))  # 20 x 20 merged patches = 400 image tokens
    with pytest.raises(InputTooLargeError, match=re.escape(
            "documents[0]: the prompt needs 413 tokens including 400 image tokens, but max_length "
            "is 300; image tokens are never truncated, so raise max_length or lower max_pixels")):
        reranker.score("q", [big], max_length=300, max_doc_length=100)


def test_image_token_budget_follows_min_and_max_pixels(reranker: Reranker) -> None:
    encoder = reranker.model.encoder
    _, tiny = encoder.encode_images([_image((0, 0, 0), (20, 20))])
    _, huge = encoder.encode_images([_image((0, 0, 0), (4000, 3000))])
    assert encoder.image_token_count(tiny[0]) == 4  # scaled up to 56x56
    assert encoder.image_token_count(huge[0]) <= 768


@pytest.mark.parametrize(("query", "documents", "error", "message"), [
    ("", ["d"], InvalidInputError, "query must not be empty or only whitespace"),
    ("   ", ["d"], InvalidInputError, "query must not be empty or only whitespace"),
    (None, ["d"], InvalidInputError, "query must be a string, a PIL image, a dict with 'text'/'image' keys or a Document, got None (NoneType)"),
    ("q", [], InvalidInputError, "documents must not be empty"),
    ("q", "just a string", InvalidInputError, "documents must be a list of documents, got 'just a string' (str)"),
    ("q", ["ok", 3], InvalidInputError, "documents[1] must be a string, a PIL image, a dict with 'text'/'image' keys or a Document, got 3 (int)"),
    ("q", ["ok", {"txt": "x"}], InvalidInputError, "documents[1] must have a 'text' or an 'image' key, got keys ['txt']"),
    ("q", [{"text": 5}], InvalidInputError, "documents[0].text must be 5 a string"),
    ("q", [{"image": []}], InvalidInputError, "documents[0].image must not be an empty list"),
    ("q", ["ok", {"image": "%%%"}], ImageError, "documents[1].image is neither an existing file, an http(s) URL, nor valid base64: '%%%' (str)"),
    ({"image": "%%%"}, ["ok"], ImageError, "query.image is neither an existing file"),
    ("q", [{"text": "a", "image": ["%%%", "%%%"]}], ImageError, "documents[0].image[0] is neither"),
])
def test_bad_input_raises_precise_errors(reranker: Reranker, query, documents, error, message) -> None:
    if message == "documents[0].text must be 5 a string":
        message = "documents[0].text must be a string, got 5 (int)"
    with pytest.raises(error, match=re.escape(message)):
        reranker.rank(query, documents)


@pytest.mark.parametrize("top_n", [0, -1, 1.5, True, "3"])
def test_bad_top_n(reranker: Reranker, top_n: object) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(
            f"top_n must be a positive integer or None, got {top_n!r}")):
        reranker.rank("q", ["d"], top_n=top_n)


def test_bad_lengths(reranker: Reranker) -> None:
    with pytest.raises(InvalidInputError, match=re.escape("max_length must be a positive number, got 0")):
        reranker.rank("q", ["d"], max_length=0)
    with pytest.raises(InvalidInputError, match=re.escape(
            "max_doc_length (900) + max_query_length (512) must not exceed max_length (1024)")):
        reranker.rank("q", ["d"], max_length=1024, max_doc_length=900)


def test_compute_score_matches_reference_conventions(reranker: Reranker) -> None:
    pairs = [["slm markdown", doc] for doc in TEXT_DOCS]
    scores = reranker.compute_score(pairs, max_length=1024)
    assert isinstance(scores, list) and len(scores) == 4
    expected = [s.score for s in reranker.score("slm markdown", TEXT_DOCS, max_length=1024)]
    np.testing.assert_allclose(scores, expected, atol=1e-6)
    single = reranker.compute_score(["slm markdown", TEXT_DOCS[0]])
    assert isinstance(single, float) and single == pytest.approx(expected[0], abs=1e-6)
    logits = reranker.compute_score(pairs, normalize_scores=False, batch_size=2)
    np.testing.assert_allclose(1 / (1 + np.exp(-(np.array(logits) - 2.65))), expected, atol=1e-6)


def test_compute_score_with_image_sides(reranker: Reranker) -> None:
    image = _image((100, 0, 0))
    as_image_docs = reranker.compute_score([["q", image]], doc_type="image")
    assert as_image_docs == pytest.approx(reranker.score("q", [image])[0].score, abs=1e-6)
    as_image_query = reranker.compute_score([[image, "text"]], query_type="image")
    assert as_image_query == pytest.approx(reranker.score(image, ["text"])[0].score, abs=1e-6)


@pytest.mark.parametrize(("pairs", "kwargs", "message"), [
    ("q", {}, "pairs must be a list of [query, document], got 'q' (str)"),
    ([], {}, "pairs must not be empty"),
    ([["q", "d"], ["q"]], {}, "pairs[1] must be a [query, document] pair, got ['q'] (list)"),
    ([["q", "d"]], {"doc_type": "video"}, "doc_type must be 'text' or 'image', got 'video'"),
    ([["q", 7]], {}, "pairs[0][1] must be a string when its type is 'text', got 7 (int)"),
])
def test_compute_score_bad_input(reranker: Reranker, pairs, kwargs, message) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        reranker.compute_score(pairs, **kwargs)


def test_engine_config_validation() -> None:
    with pytest.raises(InvalidInputError, match=re.escape("max_batch_size must be a positive number, got 0")):
        EngineConfig(max_batch_size=0)
