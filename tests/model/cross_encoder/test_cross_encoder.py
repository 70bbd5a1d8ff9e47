"""Cross-encoder family (bge-reranker-v2-m3, jina-reranker-v2) on tiny checkpoints in their
released layouts, against independent straight-line computations."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from m0rank import InvalidInputError, Reranker
from m0rank.testing.cross_encoder_checkpoints import (
    TINY_XLMR,
    write_bge_checkpoint,
    write_jina_v2_checkpoint,
)

QUERY = "what is panda"
DOCS = ["the giant panda is a bear species endemic to china", "hi",
        "solar panel sales grew forty percent in the last quarter",
        "上海明天有大雨", "le musée du Louvre est fermé le mardi " * 3]


@pytest.fixture(scope="module")
def bge_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bge_checkpoint(tmp_path_factory.mktemp("bge"), seed=1)


@pytest.fixture(scope="module")
def jina_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jina_v2_checkpoint(tmp_path_factory.mktemp("jina-v2"), seed=2)


def test_bge_layout_matches_transformers_straight_line(bge_dir: Path) -> None:
    from transformers import AutoTokenizer, XLMRobertaForSequenceClassification

    ours = [s.score for s in Reranker.from_pretrained(bge_dir, device="cpu").score(QUERY, DOCS)]
    # The model card's recipe, with transformers' own loader.
    tokenizer = AutoTokenizer.from_pretrained(bge_dir)
    model = XLMRobertaForSequenceClassification.from_pretrained(bge_dir).eval()
    inputs = tokenizer([[QUERY, d] for d in DOCS], padding=True, truncation=True,
                       max_length=512, return_tensors="pt")
    with torch.no_grad():
        expected = torch.sigmoid(model(**inputs).logits.view(-1).float()).tolist()
    assert ours == pytest.approx(expected, abs=1e-5)
    assert max(ours) - min(ours) > 1e-3  # not a constant function


def _layer_norm(x: torch.Tensor, state: dict, prefix: str) -> torch.Tensor:
    return torch.nn.functional.layer_norm(x, x.shape[-1:], state[prefix + ".weight"],
                                          state[prefix + ".bias"], eps=1e-5)


def _linear(x: torch.Tensor, state: dict, prefix: str) -> torch.Tensor:
    return x @ state[prefix + ".weight"].T + state[prefix + ".bias"]


def jina_straight_line(checkpoint: Path, ids: list[int]) -> float:
    """One unpadded pair through the flash implementation's modules, written out by hand:
    embeddings + emb_ln, post-norm blocks with a packed (three h d) Wqkv, RoBERTa head."""
    state = load_file(str(checkpoint / "model.safetensors"))
    heads, length = TINY_XLMR["num_attention_heads"], len(ids)
    ids_t = torch.tensor(ids)
    positions = torch.arange(length) + 2  # padding_idx (1) + 1 + cumsum of a full mask - 1
    x = (state["roberta.embeddings.word_embeddings.weight"][ids_t]
         + state["roberta.embeddings.position_embeddings.weight"][positions]
         + state["roberta.embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, state, "roberta.emb_ln")
    for i in range(TINY_XLMR["num_hidden_layers"]):
        p = f"roberta.encoder.layers.{i}."
        qkv = _linear(x, state, p + "mixer.Wqkv").view(length, 3, heads, -1)
        q, k, v = qkv.unbind(dim=1)  # (T, H, D) each
        att = torch.softmax(torch.einsum("thd,shd->hts", q, k / math.sqrt(q.shape[-1])), -1)
        context = torch.einsum("hts,shd->thd", att, v).reshape(length, -1)
        x = _layer_norm(x + _linear(context, state, p + "mixer.out_proj"), state, p + "norm1")
        hidden = torch.nn.functional.gelu(_linear(x, state, p + "mlp.fc1"))
        x = _layer_norm(x + _linear(hidden, state, p + "mlp.fc2"), state, p + "norm2")
    pooled = torch.tanh(_linear(x[0], state, "classifier.dense"))
    return float(torch.sigmoid(_linear(pooled, state, "classifier.out_proj"))[0])


def test_jina_layout_matches_straight_line_remote_code(jina_dir: Path) -> None:
    from transformers import AutoTokenizer

    config = json.loads((jina_dir / "config.json").read_text())
    assert "model_type" not in config and "auto_map" in config  # the remote-code layout
    reranker = Reranker.from_pretrained(jina_dir, device="cpu")
    ours = [s.score for s in reranker.score(QUERY, DOCS)]  # one padded batch
    tokenizer = AutoTokenizer.from_pretrained(jina_dir)
    expected = [jina_straight_line(jina_dir, tokenizer(QUERY, d, truncation=True,
                                                       max_length=1024)["input_ids"])
                for d in DOCS]
    assert ours == pytest.approx(expected, abs=1e-5)
    assert max(ours) - min(ours) > 1e-3


def test_truncation_limits(bge_dir: Path, jina_dir: Path) -> None:
    long_doc = "panda bear " * 600
    bge = Reranker.from_pretrained(bge_dir, device="cpu")
    jina = Reranker.from_pretrained(jina_dir, device="cpu")
    assert bge.score(QUERY, [long_doc], max_length=100, max_query_length=50)[0].num_tokens == 100
    # Default: the card's 512 / 1024, capped by the tiny position table (130 - pad 1 - 1).
    assert bge.score(QUERY, [long_doc])[0].num_tokens == 128
    assert jina.score(QUERY, [long_doc])[0].num_tokens == 128


def test_images_are_refused(bge_dir: Path) -> None:
    from PIL import Image

    reranker = Reranker.from_pretrained(bge_dir, device="cpu")
    with pytest.raises(InvalidInputError, match=re.escape(
            f"documents[1]: {bge_dir.name} is a text cross-encoder and cannot read images")):
        reranker.score(QUERY, ["text", Image.new("RGB", (64, 64))])


def test_comparison_table_from_the_cli(bge_dir: Path, jina_dir: Path, tmp_path: Path, cranfield_dir: Path,
                                       no_network: None) -> None:
    from m0rank.cli.main import main
    from m0rank.testing.image_collection import write_page_collection

    pages = write_page_collection(tmp_path / "pages")
    assert main(["eval", "--data", str(cranfield_dir), "--data", str(pages), "--max-queries", "3",
                 "--top-k", "4", "--model", str(bge_dir), "--model", str(jina_dir),
                 "--device", "cpu", "--no-cache", "--no-progress", "--out", str(tmp_path)]) == 0
    markdown = (tmp_path / "eval.md").read_text()
    for row in ("BM25", bge_dir.name, jina_dir.name):
        assert f"| {row} |" in markdown
    # Text cross-encoders cannot read the page images: those cells stay empty, with a reason.
    document = json.loads((tmp_path / "eval.json").read_text())
    assert {(s["model"], s["dataset"]) for s in document["skipped"]} == {
        (bge_dir.name, "pages"), (jina_dir.name, "pages")}
    assert "cannot read images" in document["skipped"][0]["reason"]
    assert f"– {bge_dir.name} on pages: not run (documents[0]: " in markdown
