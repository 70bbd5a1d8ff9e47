"""The offline model's parts: tokeniser, per-pair BM25, IDF table, OCR choice, encoder parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from m0rank.model.offline import ocr as offline_ocr
from m0rank.model.offline.lexical import IdfTable, LexicalScorer, detect_latin_language, tokenize
from m0rank.model.offline.ocr import CachedOcr, has_readable_text, select_ocr_engine
from m0rank.model.offline.reranker import OfflineReranker, OfflineSettings
from m0rank.testing.checkset import render_passage

BUILTIN = Path(__file__).resolve().parents[3] / "src/m0rank/builtin/offline-default"


@pytest.fixture(scope="module")
def idf() -> IdfTable:
    return IdfTable.load(BUILTIN / "idf.json.gz")


def test_german_words_are_stemmed_and_folded() -> None:
    assert tokenize("Die Größe der Straßen") == ["die", "gross", "der", "strass"]
    assert tokenize("Grosse Strassen", "german") == ["gross", "strass"]


def test_english_words_are_stemmed() -> None:
    assert tokenize("The flows were constructed") == ["the", "flow", "were", "construct"]


def test_chinese_becomes_character_bigrams_and_ocr_spaces_are_joined() -> None:
    assert tokenize("北京天气") == ["北京", "京天", "天气"]
    assert tokenize("雨") == ["雨"]
    assert tokenize("mixed 北京 text") == ["mix", "北京", "text"]


def test_language_detection_for_stemming() -> None:
    assert detect_latin_language(["der", "zug", "ist", "spät"]) == "german"
    assert detect_latin_language(["the", "train", "is", "late"]) == "english"
    assert detect_latin_language(["größe"]) == "german"


def test_idf_table_orders_words_by_rarity(idf: IdfTable) -> None:
    assert idf("the") < idf("train") < idf("aeroelast")
    assert idf("der") < idf("verspatung")
    assert idf("的") < idf("天气")
    assert idf("zzqxv") == idf.unseen_idf
    # an unseen bigram that straddles a function character is as weak as that character
    assert idf("的天") == pytest.approx(min(idf("的"), idf("天")))


def test_lexical_score_is_normalised_per_pair(idf: IdfTable) -> None:
    scorer = LexicalScorer(idf=idf)
    query = tokenize("sourdough bread")
    assert scorer.score(query, tokenize("nothing in common here")) == 0.0
    partial = scorer.score(query, tokenize("bread from the bakery"))
    full = scorer.score(query, tokenize("sourdough bread from the bakery"))
    assert 0.0 < partial < full < 1.0
    assert scorer.score(query, []) == 0.0


def test_ocr_text_threshold() -> None:
    assert not has_readable_text(" | ~ _ ")
    assert not has_readable_text("ab")
    assert has_readable_text("Bahn")
    assert has_readable_text("北京天气")


def test_ocr_falls_back_to_rapidocr_without_tesseract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offline_ocr.shutil, "which", lambda name: None)
    engine = select_ocr_engine(["eng", "deu"], 50.0)
    assert engine is not None and engine.name == "rapidocr"
    assert "Bahnhof" in engine.read(render_passage("Bahnhof"))


def test_no_ocr_engine_reports_images_as_unreadable(offline) -> None:
    model = offline.model
    bare = OfflineReranker(model.settings, model.encoder, model.lexical, ocr=None)
    from m0rank import Reranker

    scores = Reranker(bare).score("Bahnhof", [{"image": render_passage("Bahnhof")}])
    assert scores[0].score == 0.0
    assert "no OCR engine is installed" in scores[0].warnings[0]


def test_ocr_cache_is_bounded() -> None:
    class Counting:
        name = "counting"
        calls = 0

        def read(self, image: object) -> str:
            Counting.calls += 1
            return "text"

    cache = CachedOcr(Counting(), max_entries=2)
    pages = [render_passage(word) for word in ("one", "two", "three")]
    for page in [*pages, pages[2], pages[0]]:
        cache.read(page)
    assert (cache.hits, cache.misses, Counting.calls) == (1, 4, 4)


def test_a_page_object_is_hashed_once_and_forgotten_when_freed(monkeypatch) -> None:
    """A page scored against many queries must not be re-hashed per pair; an equal copy
    still shares the cached text; a freed page leaves no memo entry behind."""
    import gc

    from m0rank.model.offline import ocr

    class Reading:
        name = "reading"

        def read(self, image: object) -> str:
            return "text"

    hashed = []
    real_key = ocr.image_cache_key
    monkeypatch.setattr(ocr, "image_cache_key", lambda image, s: hashed.append(1) or
                        real_key(image, s))
    cache = CachedOcr(Reading())
    page = render_passage("one")
    for _ in range(5):
        cache.read(page)
    cache.read(page.copy())
    assert len(hashed) == 2 and (cache.hits, cache.misses) == (5, 1)
    del page
    gc.collect()
    assert len(cache._keys) == 0  # noqa: SLF001 - the memo must not outlive its images


def test_settings_from_config_read_known_keys() -> None:
    settings = OfflineSettings.from_config({"w_dense": 2.0, "ocr_languages": ["eng"],
                                            "architectures": ["M0RankOfflineReranker"]})
    assert settings.w_dense == 2.0 and settings.ocr_languages == ("eng",)


def test_encoder_matches_transformers_bert(offline) -> None:
    import torch
    from transformers import BertModel

    from m0rank.model.offline.encoder import bundled_minilm_dir

    encoder = offline.model.encoder
    texts = ["A man is eating food.", "Größe 北京 " * 120]
    ids = [encoder.word_pieces(t)[0] for t in texts]
    ours = encoder.encode(ids)
    reference = BertModel.from_pretrained(bundled_minilm_dir(), add_pooling_layer=False).eval()
    longest = max(map(len, ids))
    input_ids = torch.zeros((2, longest), dtype=torch.long)
    mask = torch.zeros((2, longest), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    with torch.no_grad():
        hidden = reference(input_ids=input_ids, attention_mask=mask).last_hidden_state
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    expected = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    assert len(ids[1]) == 256
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert float(ours[0] @ encoder.encode([encoder.word_pieces(
        "A man is eating a piece of bread.")[0]])[0]) == pytest.approx(0.7553, abs=1e-3)


def test_ocr_cache_reads_an_image_once_across_threads() -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    class Slow:
        name = "slow"
        calls = 0
        lock = threading.Lock()

        def read(self, image: object) -> str:
            with Slow.lock:
                Slow.calls += 1
            time.sleep(0.2)
            return "text"

    cache = CachedOcr(Slow())
    page = render_passage("same page")
    with ThreadPoolExecutor(4) as pool:
        texts = list(pool.map(lambda _: cache.read(page.copy()), range(4)))
    assert texts == ["text"] * 4
    assert (Slow.calls, cache.misses, cache.hits) == (1, 1, 3)


def test_tesseract_reads_single_line_chinese_slides() -> None:
    # automatic segmentation (psm 3) finds nothing on this slide, and the combined model
    # reads the second one as Latin letters: the fallbacks must recover both
    from m0rank.testing.checkset import build_checkset, render_slide

    engine = select_ocr_engine(["eng", "deu", "chi_sim"], 50.0)
    queries = build_checkset("zh").queries
    for topic in ("cold", "coffee"):
        text = engine.read(render_slide(queries[topic])).replace(" ", "")
        assert sum(ch in text for ch in queries[topic]) >= 0.7 * len(queries[topic])
