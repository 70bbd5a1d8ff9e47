"""The BERT cross-encoder family against transformers' own forward, and its MiniLM start."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from m0rank import Reranker
from m0rank.errors import InvalidInputError
from m0rank.model.bert_cross_encoder import BertCrossEncoderReranker, init_from_encoder
from m0rank.testing.bert_checkpoints import minilm_dir, write_bert_cross_encoder

QUERY = "how do giant pandas live"
DOCS = ["the giant panda is a bear species endemic to china",
        "solar panel sales grew forty percent in the last quarter", "rye bread recipe"]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bert_cross_encoder(tmp_path_factory.mktemp("bert-ce"), seed=1)


def straight_line(checkpoint: Path, query: str, docs: list[str]) -> list[float]:
    """The ms-marco card's recipe: tokenizer(pairs), logits, sigmoid (sentence-transformers)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    features = tokenizer([query] * len(docs), docs, padding=True, truncation=True,
                         return_tensors="pt")
    with torch.no_grad():
        return torch.sigmoid(model(**features).logits[:, 0]).tolist()


def test_registry_serves_the_crossencoder_layout(bert_dir: Path) -> None:
    reranker = Reranker.from_pretrained(bert_dir, device="cpu")
    assert isinstance(reranker.model, BertCrossEncoderReranker)
    ours = [r.score for r in reranker.score(QUERY, DOCS)]
    np.testing.assert_allclose(ours, straight_line(bert_dir, QUERY, DOCS), atol=1e-6)
    assert max(ours) - min(ours) > 1e-3


def test_save_pretrained_round_trip(bert_dir: Path, tmp_path: Path) -> None:
    reranker = Reranker.from_pretrained(bert_dir, device="cpu")
    reranker.save_pretrained(tmp_path / "copy")
    again = Reranker.from_pretrained(tmp_path / "copy", device="cpu")
    assert [r.score for r in again.score(QUERY, DOCS)] == [r.score for r in
                                                          reranker.score(QUERY, DOCS)]


def test_images_are_refused(bert_dir: Path) -> None:
    from PIL import Image

    reranker = Reranker.from_pretrained(bert_dir, device="cpu")
    with pytest.raises(InvalidInputError, match=r"documents\[0\]: .* cannot read images"):
        reranker.score(QUERY, [{"image": Image.new("RGB", (32, 32))}])


def test_init_from_minilm_encoder_loads_and_keeps_the_encoder(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = init_from_encoder(minilm_dir(), tmp_path / "minilm-ce", seed=0)
    reranker = Reranker.from_pretrained(out, device="cpu")
    scores = [r.score for r in reranker.score(QUERY, DOCS)]
    assert all(0.0 < s < 1.0 for s in scores)
    encoder = load_file(str(minilm_dir() / "model.safetensors"))
    module = reranker.model.trainable_module()
    torch.testing.assert_close(module.bert.encoder.layer[5].output.dense.weight,
                               encoder["encoder.layer.5.output.dense.weight"])
