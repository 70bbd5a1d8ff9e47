"""The weight-free dummy family: loads by built-in name, scores by word overlap, bills images."""

from __future__ import annotations

import pytest
from PIL import Image

from m0rank import Reranker
from m0rank.errors import InvalidInputError


@pytest.fixture(scope="module")
def dummy() -> Reranker:
    return Reranker.from_pretrained("m0rank-dummy", device="cpu")


def test_loads_by_builtin_name_without_weights(dummy: Reranker) -> None:
    assert dummy.model_name == "m0rank-dummy"
    assert type(dummy.model).__name__ == "DummyReranker"


def test_ranks_by_shared_words(dummy: Reranker) -> None:
    results = dummy.rank("red apple pie", ["a blue car", "apple pie recipe", "red apple pie"])
    assert [r.index for r in results] == [2, 1, 0]
    assert 0.0 < results[-1].score < 0.5 < results[0].score < 1.0


def test_images_are_accepted_and_billed_by_patches(dummy: Reranker) -> None:
    page = Image.new("RGB", (280, 280), "white")
    (text_only,) = dummy.score("apple", ["apple"])
    (with_image,) = dummy.score("apple", [{"text": "apple", "image": page}])
    assert with_image.num_tokens - text_only.num_tokens == 100
    assert text_only.num_tokens == 12 + 2  # template + one word on each side  # (280 * 280) / (28 * 28)
    assert with_image.score == text_only.score


def test_empty_query_is_refused(dummy: Reranker) -> None:
    with pytest.raises(InvalidInputError, match="query"):
        dummy.rank("   ", ["doc"])


def test_cannot_be_saved_or_trained(dummy: Reranker, tmp_path) -> None:  # noqa: ANN001
    from m0rank.errors import UnsupportedOperationError

    with pytest.raises(UnsupportedOperationError, match="cannot be saved"):
        dummy.save_pretrained(tmp_path / "out")
    with pytest.raises(UnsupportedOperationError, match="cannot be fine-tuned"):
        dummy.model.trainable_module()
