"""m0rank-offline v2 through the library: cross-lingual pairs, pages, calibration, caches."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from v2_helpers import (
    BERLIN_DE,
    EIFFEL_QUERY_DE,
    EIFFEL_ZH,
    GREAT_WALL_ANSWER,
    GREAT_WALL_DISTRACTORS,
    GREAT_WALL_QUESTION,
    TOPICS,
    passages,
    question,
    synthetic_photo,
)

from m0rank import Reranker
from m0rank.config import ScoreOptions
from m0rank.model.offline_v2 import OfflineRerankerV2
from m0rank.testing.checkset import render_passage
from m0rank.types import Document

DIRECTIONS = [("en", "zh"), ("zh", "en"), ("en", "de"), ("de", "en"), ("de", "zh"), ("zh", "de")]


def test_default_is_v2_and_v1_stays_loadable_by_name(offline_v2) -> None:
    assert isinstance(offline_v2.model, OfflineRerankerV2)
    assert offline_v2.model_name == "m0rank-offline"
    from m0rank.api import BUILTIN_MODELS, DEFAULT_MODEL

    assert DEFAULT_MODEL == "m0rank-offline"
    assert BUILTIN_MODELS["m0rank-offline-v1"].name == "offline-default"


@pytest.mark.parametrize(("query_lang", "doc_lang"), DIRECTIONS)
def test_cross_lingual_text_ranks_the_translation_first(offline_v2, query_lang: str,
                                                        doc_lang: str) -> None:
    results = offline_v2.rank(question(query_lang), passages(doc_lang))
    assert results[0].index == 0, [(r.index, r.score) for r in results]


@pytest.mark.parametrize("language", ["en", "de", "zh"])
def test_same_language_text_ranks_the_answer_first(offline_v2, language: str) -> None:
    assert offline_v2.rank(question(language), passages(language))[0].index == 0


@pytest.mark.parametrize(("query_lang", "doc_lang"), [("en", "zh"), ("de", "en")])
def test_cross_lingual_page_images_rank_the_translation_first(offline_v2, query_lang: str,
                                                              doc_lang: str) -> None:
    pages = [{"image": render_passage(text)} for text in passages(doc_lang, TOPICS[:3])]
    results = offline_v2.rank(question(query_lang), pages)
    assert results[0].index == 0
    assert not any(r.warnings for r in results)


def test_readme_example_relevant_chinese_beats_irrelevant_german(offline_v2) -> None:
    relevant, irrelevant = offline_v2.score(EIFFEL_QUERY_DE, [EIFFEL_ZH, BERLIN_DE])
    assert relevant.score > irrelevant.score + 0.1
    assert 0.0 <= irrelevant.score < relevant.score <= 1.0


def test_relevant_cross_lingual_outscores_irrelevant_same_language(offline_v2) -> None:
    """Scores mean the same across languages: calibrated per path, not per call."""
    for query_lang, doc_lang in DIRECTIONS:
        query = question(query_lang)
        relevant = offline_v2.score(query, [passages(doc_lang)[0]])[0].score
        irrelevant = max(s.score for s in offline_v2.score(query, passages(query_lang)[1:]))
        assert relevant > irrelevant, (query_lang, doc_lang, relevant, irrelevant)


@pytest.mark.parametrize(("query_lang", "doc_lang"), DIRECTIONS)
def test_held_out_cross_lingual_answer_outscores_every_same_language_distractor(
        offline_v2, query_lang: str, doc_lang: str) -> None:
    """On texts outside every fit: without the language offsets a Chinese question's
    irrelevant Chinese passages (0.43) outscored its English and German answers (0.14, 0.09)."""
    query = GREAT_WALL_QUESTION[query_lang]
    answer = offline_v2.score(query, [GREAT_WALL_ANSWER[doc_lang]])[0].score
    distractors = offline_v2.score(query, GREAT_WALL_DISTRACTORS[query_lang])
    assert answer > max(s.score for s in distractors), (answer, [s.score for s in distractors])


def test_language_offsets_shift_only_their_language_pair(offline_v2) -> None:
    model = offline_v2.model
    shifted = OfflineRerankerV2(
        dataclasses.replace(model.settings, language_offsets=((("german", "chinese"), 2.0),)),
        model.encoders, model.e5, model.lexical["english"].idf, None)
    pairs = offline_v2.engine.prepare(
        [(Document(text=EIFFEL_QUERY_DE), Document(text=EIFFEL_ZH)),
         (Document(text=EIFFEL_QUERY_DE), Document(text=BERLIN_DE)),
         (Document(text=EIFFEL_ZH), Document(text=EIFFEL_QUERY_DE))], ScoreOptions())
    assert [p.payload.languages for p in pairs] == [("german", "chinese"), ("german", "german"),
                                                    ("chinese", "german")]
    unshifted = OfflineRerankerV2(
        dataclasses.replace(model.settings, language_offsets=()),
        model.encoders, model.e5, model.lexical["english"].idf, None)
    np.testing.assert_allclose(shifted.forward(pairs) - unshifted.forward(pairs),
                               [2.0, 0.0, 0.0], atol=1e-9)


def test_shipped_language_offsets_raise_cross_lingual_pairs(offline_v2) -> None:
    """Encoders rate same-language pairs higher whatever their relevance; the fitted offsets
    lift cross-lingual pairs (English-English is the 0). The Chinese-Chinese offset only
    re-centres the ``chinese`` weights' own bias, so its sign carries no meaning."""
    offset = offline_v2.model.settings.language_offset
    assert offset("english", "english") == 0.0
    assert offset("chinese", "english") > 0.0 and offset("german", "english") > 0.0
    assert offset("english", "chinese") > 0.0 and offset("english", "german") > 0.0


def test_irrelevant_chinese_and_english_passages_score_alike_for_a_chinese_question(
        offline_v2) -> None:
    """What the offsets are for, on the check set's passages (where they were measured):
    for a Chinese question, the irrelevant Chinese passages and the irrelevant English ones
    get mean logits within one logit of each other (without offsets: 2.5 apart)."""
    from m0rank.testing.checkset import build_checkset

    zh, en = build_checkset("zh"), build_checkset("en")
    topic = TOPICS[0]
    for language_set in (zh, en):
        assert any(doc.startswith(f"{topic}-") for doc in language_set.docs)
    means = []
    for docs in (zh.docs, en.docs):
        irrelevant = [text for doc, text in docs.items() if not doc.startswith(f"{topic}-")]
        means.append(np.mean([r.logit for r in offline_v2.score(zh.queries[topic], irrelevant)]))
    assert abs(means[0] - means[1]) < 1.0, means


def test_english_pairs_take_the_minilm_path(offline_v2) -> None:
    model = offline_v2.model
    assert model.path_of("plant watering needs", "Water your plants weekly.") == "english"
    assert model.path_of("plant watering needs", "Gießen Sie die Pflanzen, wenn die Erde "
                                                 "trocken ist.") == "multilingual"
    assert model.path_of("植物浇水", "Water your plants weekly.") == "multilingual"


def test_chinese_pairs_take_weights_of_their_own(offline_v2) -> None:
    """Chinese-Chinese pairs: the multilingual encoders, the ``chinese`` weights; a pair with
    one Chinese side keeps the multilingual weights (fitted on mixed-language lists)."""
    model = offline_v2.model
    zh_question, zh_passage = question("zh"), passages("zh")[0]
    assert model.settings.chinese is not None
    assert model.path_of(zh_question, zh_passage) == "multilingual"
    assert model.fusion_of(zh_question, zh_passage) == "chinese"
    assert model.fusion_of(EIFFEL_QUERY_DE, EIFFEL_ZH) == "multilingual"
    assert model.fusion_of("植物浇水", "Water your plants weekly.") == "multilingual"
    assert model.fusion_of("plant watering needs", "Water your plants weekly.") == "english"


def test_chinese_weights_change_only_chinese_pairs(offline_v2) -> None:
    model = offline_v2.model
    without = OfflineRerankerV2(dataclasses.replace(model.settings, chinese=None),
                                model.encoders, model.e5, model.lexical["english"].idf, None)
    zh_question = question("zh")
    pairs = offline_v2.engine.prepare(
        [(Document(text=zh_question), Document(text=passages("zh")[0])),
         (Document(text=zh_question), Document(text=passages("en")[0])),
         (Document(text=EIFFEL_QUERY_DE), Document(text=EIFFEL_ZH)),
         (Document(text=question("en")), Document(text=passages("en")[0]))], ScoreOptions())
    # (the second model has its own embedding cache, so vectors may differ in the 7th digit)
    changed = ~np.isclose(model.forward(pairs), without.forward(pairs), rtol=0, atol=1e-4)
    assert changed.tolist() == [True, False, False, False]


def test_plant_watering_german_page_beats_installation_guide(offline_v2) -> None:
    docs = ["Installation guide: download the installer, run setup and restart the computer.",
            "Zimmerpflanzen brauchen im Sommer mehr Wasser; gießen Sie sie, wenn die Erde "
            "trocken ist."]
    assert offline_v2.rank("plant watering needs", docs)[0].index == 1


def test_pair_scores_the_same_alone_and_in_a_batch(offline_v2) -> None:
    docs = passages("zh") + passages("en")
    together = [s.score for s in offline_v2.score(question("de"), docs)]
    alone = [offline_v2.score(question("de"), [doc])[0].score for doc in docs]
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)


def test_english_vectors_do_not_depend_on_batch_mates(offline_v2) -> None:
    """A text's vector must not depend on the other texts of its batch (dynamic int8 scales
    activations per batch, so int8 runs texts one at a time; fp32 and bf16 mask padding)."""
    encoder = offline_v2.model.encoders["english"]
    short, long = passages("en")[:2]
    alone = encoder.encode([short])
    batched = encoder.encode([short, long * 4])[:1]
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_document_embeddings_are_cached_across_queries(offline_v2) -> None:
    docs = [f"{text} ({i})" for i, text in enumerate(passages("de"))]  # fresh texts
    offline_v2.score(question("en"), docs)
    before = offline_v2.model.cache_stats()["embedding"]
    offline_v2.score(question("zh") + "（缓存）", docs)  # a query no other test used
    after = offline_v2.model.cache_stats()["embedding"]
    assert after.misses - before.misses == 2  # only the new query: by USE and by e5
    assert after.hits - before.hits >= 2 * len(docs)  # each document's USE and e5 vectors


def test_e5_feature_is_computed_on_the_multilingual_path_only(offline_v2) -> None:
    model = offline_v2.model
    prepared = offline_v2.engine.prepare(
        [(Document(text=EIFFEL_QUERY_DE), Document(text=EIFFEL_ZH)),
         (Document(text=EIFFEL_QUERY_DE), Document(text=BERLIN_DE)),
         (Document(text="wing pressure distribution"),
          Document(text="The pressure distribution on a slender wing was measured."))],
        ScoreOptions())
    features = model.features(prepared)
    assert [p.payload.path for p in prepared] == ["multilingual", "multilingual", "english"]
    assert features.e5[0] > features.e5[1] > 0.0  # the Chinese answer is e5's nearer one
    assert features.e5[2] == 0.0
    assert model.settings.multilingual.w_e5 > 0.0 and model.settings.english.w_e5 == 0.0


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_reduced_precision_minilm_stays_close_to_fp32(precision: str) -> None:
    from m0rank.model.offline_v2.encoders import FusedMiniLm

    texts = passages("en", ("ev", "bees", "coffee", "rent"))
    reduced, fp32 = FusedMiniLm(precision=precision), FusedMiniLm(precision="fp32")
    cosines = (reduced.encode(texts) * fp32.encode(texts)).sum(1)
    assert cosines.min() > (0.99 if precision == "bf16" else 0.9)


def test_fp32_minilm_gives_the_first_generations_vectors() -> None:
    """The fused layers are built on the meta device and handed the checkpoint's tensors
    (``encoders.load_bert``); v1's encoder, checked against transformers' BertModel, is the
    reference. A weight left unassigned, transposed or swapped among q/k/v fails here."""
    from m0rank.model.offline.encoder import MiniLmEncoder, bundled_minilm_dir
    from m0rank.model.offline_v2.encoders import FusedMiniLm

    texts = passages("en", ("ev", "bees", "coffee"))
    fused, v1 = FusedMiniLm(precision="fp32"), MiniLmEncoder(bundled_minilm_dir())
    assert {p.device.type for p in fused.module.parameters()} == {"cpu"}
    reference = np.asarray(v1.encode([v1.word_pieces(text)[0] for text in texts]))
    np.testing.assert_allclose(fused.encode(texts), reference, atol=1e-4)


def test_onnxruntime_minilm_gives_the_fp32_vectors_alone_and_in_batches() -> None:
    """The ONNX graph is written node by node (``onnx_bert``): a weight transposed or a q/k/v
    slice swapped fails here, and so does padding that leaks into a short text's vector."""
    from m0rank.model.offline_v2.encoders import FusedMiniLm

    texts = ["wing", *passages("en", ("ev", "bees", "coffee")), " ".join(passages("en")) * 3]
    onnx_route, fp32 = FusedMiniLm(precision="fp32-onnxruntime"), FusedMiniLm(precision="fp32")
    batched = onnx_route.encode(texts)
    np.testing.assert_allclose(batched, fp32.encode(texts), atol=1e-5)
    for row, text in enumerate(texts):
        np.testing.assert_allclose(onnx_route.encode([text])[0], batched[row], atol=1e-6)


def test_onnx_graph_passes_the_onnx_checker() -> None:
    """The model is not checked at load (that serialises its 90 MB once more)."""
    import onnx

    from m0rank.model.offline_v2 import onnx_bert

    graph = onnx_bert._bert_graph(  # noqa: SLF001 - the bytes a session is built from
        {"hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1},
        _tiny_bert_weights(hidden=8, inner=16, vocab=10, positions=12))
    onnx.checker.check_model(onnx.load_from_string(graph))


def _tiny_bert_weights(hidden: int, inner: int, vocab: int,
                       positions: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    shapes = {"word.weight": (vocab, hidden), "position.weight": (positions, hidden),
              "token_type.weight": (2, hidden), "norm.weight": (hidden,), "norm.bias": (hidden,)}
    for name, n_out, n_in in (("qkv", 3 * hidden, hidden), ("out", hidden, hidden),
                              ("up", inner, hidden), ("down", hidden, inner)):
        shapes[f"layers.0.{name}.weight"], shapes[f"layers.0.{name}.bias"] = (n_out, n_in), (n_out,)
    for name in ("norm1", "norm2"):
        shapes[f"layers.0.{name}.weight"] = shapes[f"layers.0.{name}.bias"] = (hidden,)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}


@pytest.mark.parametrize(("bf16", "onnx_installed", "expected"),
                         [(True, True, "bf16"), (False, True, "fp32-onnxruntime"),
                          (False, False, "fp32")])
def test_auto_precision_picks_by_cpu_and_installed_packages(
        monkeypatch: pytest.MonkeyPatch, bf16: bool, onnx_installed: bool, expected: str) -> None:
    from m0rank.model.offline_v2 import encoders

    monkeypatch.setattr(encoders, "bf16_is_fast", lambda: bf16)
    monkeypatch.setattr(encoders, "onnxruntime_available", lambda: onnx_installed)
    assert encoders.FusedMiniLm(precision="auto").precision == expected


def test_a_folder_set_to_onnxruntime_ranks_english_as_the_default(offline_v2, tmp_path) -> None:
    """What a CPU without native bf16 loads (``minilm_precision: auto`` picks the ONNX route
    there), through the public API from a copy of the built-in folder."""
    import json
    import shutil

    from m0rank.api import BUILTIN_MODELS

    folder = tmp_path / "offline-v2"
    shutil.copytree(BUILTIN_MODELS["m0rank-offline"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {"minilm_precision":
                                                              "fp32-onnxruntime"}))
    onnx_route = Reranker.from_pretrained(str(folder))
    query, docs = question("en", "ev"), passages("en")
    ours = [r.score for r in onnx_route.score(query, docs)]
    default = [r.score for r in offline_v2.score(query, docs)]
    assert np.argmax(ours) == np.argmax(default) == 0
    np.testing.assert_allclose(ours, default, atol=0.02)


def test_bf16_vectors_are_identical_alone_and_with_longer_batch_mates() -> None:
    """bf16 rounding depends on the kernel, and oneDNN picks other kernels for very short
    sequences: the encoder pads to 64 positions so a short query gets one vector everywhere."""
    from m0rank.model.offline_v2.encoders import FusedMiniLm

    encoder = FusedMiniLm(precision="bf16")
    texts = ["a", "wing", "pressure distribution on a slender wing",
             *passages("en", ("ev", "bees")), " ".join(passages("en")) * 3]
    batched = encoder.encode(texts)
    for row, text in enumerate(texts):
        np.testing.assert_array_equal(encoder.encode([text])[0], batched[row])


def test_unknown_minilm_precision_is_a_load_error() -> None:
    from m0rank.errors import ModelLoadError
    from m0rank.model.offline_v2.encoders import FusedMiniLm

    with pytest.raises(ModelLoadError, match="minilm_precision.*'fp16'"):
        FusedMiniLm(precision="fp16")


@pytest.mark.parametrize("query", ["electric car", "Wie hoch ist der Eiffelturm?",
                                   "埃菲尔铁塔有多高？"])
def test_photo_still_scores_zero_with_a_warning(offline_v2, query: str) -> None:
    """Also for German and Chinese questions, whose language offsets are not 0: an
    unreadable pair must not get one."""
    results = offline_v2.score(query, [{"image": synthetic_photo()}, query])
    assert results[0].score == 0.0 and results[0].warnings
    assert results[1].score > 0.0


def test_v1_by_name_is_the_first_generation() -> None:
    from m0rank.model.offline import OfflineReranker

    v1 = Reranker.from_pretrained("m0rank-offline-v1")
    assert isinstance(v1.model, OfflineReranker)
    assert v1.model_name == "m0rank-offline-v1"


def test_chinese_lexical_side_matches_words_and_bigrams(offline_v2) -> None:
    """A name the dictionary keeps whole (埃菲尔铁塔) still matches by its bigrams when the
    document writes only part of it, and a whole word scores above its bigrams alone."""
    model = offline_v2.model
    assert model.settings.chinese_terms == "jieba+bigrams"
    terms = model.terms_of("埃菲尔铁塔有多高")
    assert "埃菲尔铁塔" in terms and "铁塔" in terms
    partial = model.lexical_score("埃菲尔铁塔有多高", "这座铁塔高三百米。")
    assert 0.0 < partial < model.lexical_score("埃菲尔铁塔有多高", "埃菲尔铁塔高三百米。")


def test_each_path_scores_bm25_with_its_own_length_normalisation(offline_v2) -> None:
    model = offline_v2.model
    for path in ("english", "multilingual"):
        assert model.lexical[path].b == model.settings.path(path).bm25_b
    long_doc = "The tower is tall. " + "Paris has many old streets and cafes. " * 40
    short_doc = "The tower is tall."
    # b > 0: the same match in a long document counts less
    assert model.lexical_score("tall tower", long_doc) < model.lexical_score("tall tower",
                                                                             short_doc)


@pytest.mark.parametrize(("table", "message"), [
    ({"french": {"english": 1.0}}, "unknown language 'french'"),
    ({"german": {"english": "high"}}, r"language_offsets\['german'\]\['english'\] must be a "
                                      "finite number, got 'high'"),
    ({"german": {"english": float("inf")}}, "must be a finite number, got inf"),
    ({"german": 1.0}, r"language_offsets\['german'\] must be an object, got float"),
    ([1.0], "language_offsets must be an object, got list")])
def test_bad_language_offsets_in_config_are_load_errors(table: object, message: str) -> None:
    from m0rank.errors import ModelLoadError
    from m0rank.model.offline_v2 import OfflineV2Settings

    with pytest.raises(ModelLoadError, match=message):
        OfflineV2Settings.from_config({"language_offsets": table})


def test_incomplete_chinese_weights_in_config_are_a_load_error() -> None:
    from m0rank.errors import ModelLoadError
    from m0rank.model.offline_v2 import OfflineV2Settings

    with pytest.raises(ModelLoadError, match="w_lexical"):
        OfflineV2Settings.from_config({"chinese": {"w_dense": 1.0, "bias": 0.0}})


def test_chinese_null_in_config_means_the_multilingual_weights() -> None:
    from m0rank.model.offline_v2 import OfflineV2Settings

    settings = OfflineV2Settings.from_config({"chinese": None})
    assert settings.chinese is None and settings.path("chinese") == settings.multilingual


def test_onnxruntime_precision_without_the_packages_is_a_dependency_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from m0rank.errors import MissingDependencyError
    from m0rank.model.offline_v2 import encoders

    monkeypatch.setattr(encoders, "onnxruntime_available", lambda: False)
    with pytest.raises(MissingDependencyError, match="fp32-onnxruntime.*m0rank\\[offline\\]"):
        encoders.FusedMiniLm(precision="fp32-onnxruntime")


def test_onnx_session_takes_torchs_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server replica sets torch's threads to its share of the cores before loading."""
    import torch

    from m0rank.model.offline_v2.encoders import FusedMiniLm

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    session = FusedMiniLm(precision="fp32-onnxruntime").module.session
    assert session.get_session_options().intra_op_num_threads == 1


def test_bad_chinese_terms_in_config_is_a_load_error() -> None:
    from m0rank.errors import ModelLoadError
    from m0rank.model.offline_v2 import OfflineV2Settings

    with pytest.raises(ModelLoadError, match="chinese_terms must be one of .*got 'words'"):
        OfflineV2Settings.from_config({"chinese_terms": "words"})
