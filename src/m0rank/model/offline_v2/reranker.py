"""The built-in offline reranker, second generation (``m0rank-offline``): multilingual, on CPU.

References: Universal Sentence Encoder Multilingual v3 (Yang et al. 2020) and all-MiniLM-L6-v2
(Reimers & Gurevych 2019), both in ``encoders``; multilingual-e5-small (Wang et al. 2024) in
``e5_small``; BM25 (Robertson & Zaragoza 2009) over the
index terms of :mod:`m0rank.terms`; Tesseract/RapidOCR as in the first generation
(``m0rank.model.offline.ocr``). Measurements and choices: ``docs/offline-default.md``.

How a pair is scored:

1. Text of each side: its text plus the OCR text of its images (cached per image).
2. The pair's *path* is chosen by language: when query and document both read as English,
   the ``english`` path uses MiniLM, which is the best measured encoder on English-only
   collections; every other pair (German, Chinese, mixed, cross-lingual) takes the
   ``multilingual`` path with USE multilingual v3, whose languages share one vector space.
3. ``dense``: cosine of the path encoder's embeddings (cached per text, so a document ranked
   for many queries and a query scored against many documents are embedded once). On the
   multilingual path it is the mean of the whole document's cosine and its best sentence's.
4. ``e5`` (multilingual path only): cosine of multilingual-e5-small's ``"query: "`` and
   ``"passage: "`` vectors, the passage cut to its first ``e5_max_tokens`` pieces. A second
   multilingual space with different errors than USE's; it is what lifts German<->Chinese.
5. ``lexical``: per-pair BM25 with the built-in IDF table over CJK/German-aware terms (Chinese
   jieba words plus character bigrams, Snowball stems, German compounds split), divided by
   the query's best case, in [0, 1]; numbers and names also match across languages. Its
   length normalisation ``bm25_b`` is the path's, fitted with the weights.
6. ``logit = w_dense * dense + w_e5 * e5 + w_lexical * lexical + bias + offset`` with the
   path's weights (``w_e5`` is 0 on the english path, where e5 is not computed), and
   ``score = sigmoid(logit)``. A pair whose query and document both read as Chinese takes
   the multilingual path's features but weights of its own (``chinese``): fitted on
   Chinese-Chinese lists only, where e5 and the lexical side count more than in the
   multilingual weights, which are fitted on mixed-language lists (there a heavy e5 or
   lexical share lets same-language distractors outscore cross-lingual answers). The english
   and multilingual weights are logistic regressions with balanced classes, so both read as
   "probability of relevance under a 50/50 prior"; the chinese weights take their ratios
   from the fit but their scale and bias from the multilingual weights (irrelevant Chinese
   pairs get the mean and spread they have there), so their scores stay comparable with
   other languages'. The fitting data is named in ``config.json`` and the docs.
7. ``offset``: the *language offset* of the pair's (query language, document language), so
   that scores mean the same across languages. Encoders give same-language pairs higher
   cosines than cross-lingual ones whatever their relevance (Chinese-Chinese most of all), so
   without it an irrelevant Chinese paragraph often outscored a relevant English one for a
   Chinese question. Each offset moves its language pair's *irrelevant* pairs to the same
   mean logit as English-English irrelevant pairs (measured on the check set by
   ``bench/offline_fit_v2.py``; English-English is 0). It is constant within a language
   pair, so it changes no ranking among documents read as one language (a document whose
   language is misread gets the other language's offset).

A side with images but no readable text and no text of its own scores exactly 0.0 with a
warning, as in the first generation.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
from cachetools import LRUCache

from m0rank.config import ScoreOptions
from m0rank.errors import ModelLoadError
from m0rank.model.base import LoadOptions, PreparedPair, RerankerArchitecture
from m0rank.model.offline.lexical import IdfTable, LexicalScorer
from m0rank.model.offline.ocr import CachedOcr, read_side
from m0rank.model.offline.reranker import load_idf, load_ocr
from m0rank.model.offline_v2.e5_small import E5Small
from m0rank.model.offline_v2.encoders import FusedMiniLm, UseEncoder
from m0rank.terms import CHINESE_MODES, detect_language, index_terms
from m0rank.types import CacheStats, Document

__all__ = ["OfflineRerankerV2", "OfflineV2Settings", "PathWeights", "Features", "NO_TEXT_LOGIT",
           "LANGUAGES", "sentences"]

logger = logging.getLogger(__name__)

NO_TEXT_LOGIT = -100.0  # logit of a pair that cannot be judged: score exactly 0.0
ENGLISH, MULTILINGUAL = "english", "multilingual"  # encoder paths
CHINESE = "chinese"  # fusion weights of Chinese-Chinese pairs (multilingual encoders)
LANGUAGES = ("english", "german", "chinese")  # as m0rank.terms.detect_language names them
E5_QUERY, E5_PASSAGE = "e5-query", "e5-passage"  # embedding cache kinds besides the paths
MAX_SENTENCES = 24  # sentences of a document compared with the query (the rest ignored)
_SENTENCE_END = re.compile(r"(?<=[.!?;\u3002\uff01\uff1f\uff1b])\s*")


FUSIONS = (ENGLISH, MULTILINGUAL, CHINESE)


def _path_and_fusion(query_language: str, document_language: str) -> tuple[str, str]:
    """Encoders and weights of a pair by its sides' languages (:data:`FUSIONS`)."""
    if query_language == document_language == "english":
        return ENGLISH, ENGLISH
    if query_language == document_language == "chinese":
        return MULTILINGUAL, CHINESE
    return MULTILINGUAL, MULTILINGUAL


def sentences(text: str) -> list[str]:
    """The first :data:`MAX_SENTENCES` sentences of ``text`` (Latin and CJK end marks)."""
    parts = [part for part in _SENTENCE_END.split(text) if part.strip()]
    return parts[:MAX_SENTENCES] or [text]


@dataclass(frozen=True)
class PathWeights:
    """Fusion of one path: ``logit = dense * w_dense + e5 * w_e5 + lexical * w_lexical + bias``
    (``w_e5`` only on the multilingual path), and the
    BM25 length normalisation ``bm25_b`` of its lexical feature. ``b`` is per path because it
    is fitted with the weights: with a fixed typical length instead of the collection's
    average, how much length should count differs between English abstracts and Chinese
    paragraphs of bigrams."""

    w_dense: float
    w_lexical: float
    bias: float
    bm25_b: float = 0.75
    w_e5: float = 0.0

    def logits(self, features: Features) -> np.ndarray:
        """Fused logits of arrays of features."""
        return (self.w_dense * features.dense + self.w_e5 * features.e5
                + self.w_lexical * features.lexical + self.bias)


class Features(NamedTuple):
    """A micro-batch's features, one float per pair each (``e5`` is 0.0 off the
    multilingual path)."""

    dense: np.ndarray
    lexical: np.ndarray
    e5: np.ndarray

    def rows(self, selected: np.ndarray) -> Features:
        """The features of the ``selected`` pairs (a boolean mask)."""
        return Features(self.dense[selected], self.lexical[selected], self.e5[selected])


@dataclass(frozen=True, kw_only=True)
class OfflineV2Settings:
    """The model's knobs, read from ``config.json``. Defaults are the shipped values, except
    the fitted ``english``/``multilingual``/``chinese`` weights: those live only in the shipped
    ``config.json`` (written by ``bench/offline_fit_v2.py``), and the defaults here are
    rounded placeholders for configs that omit them."""

    english: PathWeights = PathWeights(7.0, 6.0, -4.7)
    multilingual: PathWeights = PathWeights(9.0, 5.0, -5.0)
    # Chinese-Chinese pairs; None: the multilingual ones. The shipped zh->zh language offset
    # was measured under the chinese weights (under the multilingual ones it was -2.086), so
    # a config that drops them should re-measure it (bench/offline_fit_v2.py)
    chinese: PathWeights | None = None
    minilm_max_tokens: int = 256
    e5_max_tokens: int = 64  # the passage's lead: as good as all of it, a quarter the cost
    e5_precision: str = "auto"  # bf16 where the CPU has it natively, else fp32
    minilm_precision: str = "auto"  # bf16 where the CPU has it natively, else fp32 in ONNX Runtime
    use_threads: int = 2  # BLAS threads of USE (2: 1.4 s against 2.0 s per 100 zh docs)
    sentence_weight: float = 0.5  # multilingual path: share of the best sentence's cosine
    encoder_batch_size: int = 32
    embedding_cache_entries: int = 32768  # USE vectors are 2 KB: at most 64 MB
    bm25_k1: float = 1.2
    bm25_avgdl: float = 150.0  # each path's bm25_b is in its PathWeights
    idf_table: str = "idf.json.gz"
    chinese_terms: str = "jieba+bigrams"
    decompound: bool = True
    ocr_languages: tuple[str, ...] = ("eng", "deu", "chi_sim")
    ocr_min_confidence: float = 50.0
    ocr_cache_entries: int = 1024
    # ((query language, document language), offset) with languages as
    # m0rank.terms.detect_language names them; pairs not listed get 0.0
    language_offsets: tuple[tuple[tuple[str, str], float], ...] = ()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OfflineV2Settings:
        """The known keys of ``config.json``; ``english``/``multilingual``/``chinese`` are
        ``{"w_dense", "w_lexical", "bias", "bm25_b", "w_e5"}`` objects."""
        known = {k: config[k] for k in cls.__dataclass_fields__ if k in config}
        try:
            if CHINESE in known and known[CHINESE] is None:
                del known[CHINESE]  # "chinese": null -> the multilingual weights
            for path in FUSIONS:
                if path in known:
                    known[path] = PathWeights(**known[path])
            if "ocr_languages" in known:
                known["ocr_languages"] = tuple(known["ocr_languages"])
            if "language_offsets" in known:
                known["language_offsets"] = _read_offsets(known["language_offsets"])
            settings = cls(**known)
        except TypeError as exc:
            raise ModelLoadError(f"offline v2 config.json: {exc}") from None
        if settings.chinese_terms not in CHINESE_MODES:
            raise ModelLoadError(f"offline v2 config.json: chinese_terms must be one of "
                                 f"{', '.join(CHINESE_MODES)}, got {settings.chinese_terms!r}")
        return settings

    def path(self, name: str) -> PathWeights:
        """The fusion weights ``name`` (one of :data:`FUSIONS`); ``chinese`` falls back to
        the multilingual weights when the config has none."""
        return {ENGLISH: self.english, MULTILINGUAL: self.multilingual,
                CHINESE: self.chinese or self.multilingual}[name]

    def language_offset(self, query_language: str, document_language: str) -> float:
        """The logit offset of a (query, document) language pair; 0.0 when not listed."""
        return self._offsets.get((query_language, document_language), 0.0)

    @cached_property
    def _offsets(self) -> dict[tuple[str, str], float]:
        """``language_offsets`` as a dict, built once (a lookup per scored pair)."""
        return dict(self.language_offsets)


def _read_offsets(table: Any) -> tuple[tuple[tuple[str, str], float], ...]:
    """``{"german": {"chinese": 0.31, ...}, ...}`` (query language -> document language ->
    offset) as settings items, rejecting unknown languages and non-finite offsets."""
    def rows_of(value: Any, name: str) -> list[tuple[Any, Any]]:
        if not isinstance(value, dict):
            raise ModelLoadError(f"offline v2 config.json: {name} must be an object, got "
                                 f"{type(value).__name__}")
        return list(value.items())

    items = []
    for query_language, row in rows_of(table, "language_offsets"):
        for document_language, offset in rows_of(row, f"language_offsets[{query_language!r}]"):
            for language in (query_language, document_language):
                if language not in LANGUAGES:
                    raise ModelLoadError(f"offline v2 config.json: language_offsets: unknown "
                                         f"language {language!r} (known: "
                                         f"{', '.join(LANGUAGES)})")
            if isinstance(offset, bool) or not isinstance(offset, (int, float)) \
                    or not math.isfinite(offset):
                raise ModelLoadError(f"offline v2 config.json: language_offsets"
                                     f"[{query_language!r}][{document_language!r}] must be a "
                                     f"finite number, got {offset!r}")
            items.append(((query_language, document_language), float(offset)))
    return tuple(items)


@dataclass(frozen=True)
class _Pair:
    """Payload of one prepared pair."""

    query: str
    document: str
    path: str  # encoders: ENGLISH or MULTILINGUAL
    fusion: str  # weights: the path, or CHINESE for Chinese-Chinese pairs
    lexical: float
    readable: bool
    languages: tuple[str, str]  # query's and document's, for the language offset


@dataclass(frozen=True)
class _Side:
    """A query or document after analysis (cached per text)."""

    text: str
    language: str
    terms: list[str]


class OfflineRerankerV2(RerankerArchitecture):
    """The built-in multilingual CPU reranker (see the module docstring)."""

    architecture_names: ClassVar[tuple[str, ...]] = ("M0RankOfflineRerankerV2",)
    parallel_preprocess: ClassVar[bool] = True  # locked caches, per-thread stemmers
    reads_text_layer: ClassVar[bool] = True  # reads text: a PDF page's text layer, no OCR

    def __init__(self, settings: OfflineV2Settings, encoders: dict[str, Any], e5: Any,
                 idf: IdfTable, ocr: CachedOcr | None,
                 model_name: str = "m0rank-offline") -> None:
        self.settings = settings
        self.encoders = encoders  # path -> encoder with .name and .encode(texts)
        self.e5 = e5  # .encode_queries(texts) and .encode_passages(texts)
        self._encode = {ENGLISH: encoders[ENGLISH].encode,
                        MULTILINGUAL: encoders[MULTILINGUAL].encode,
                        E5_QUERY: e5.encode_queries, E5_PASSAGE: e5.encode_passages}
        self.lexical = {fusion: LexicalScorer(idf=idf, k1=settings.bm25_k1,
                                              b=settings.path(fusion).bm25_b,
                                              avgdl=settings.bm25_avgdl)
                        for fusion in FUSIONS}
        self.lexicon = frozenset(idf.idf) if settings.decompound else None
        self.ocr = ocr
        self.model_name = model_name
        self._embeddings: LRUCache[tuple[str, str], np.ndarray] = LRUCache(
            maxsize=settings.embedding_cache_entries)
        self._sides: LRUCache[tuple[str, int | None], _Side] = LRUCache(
            maxsize=settings.embedding_cache_entries)
        self._hits = self._misses = 0
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path, config: dict[str, Any], options: LoadOptions) -> OfflineRerankerV2:
        """The three encoders from their wheels, the IDF table from ``path``, an OCR engine."""
        settings = OfflineV2Settings.from_config(config)
        # e5 loads in a second thread: its SentencePiece model and weight unpacking run in
        # C++ and numpy without the GIL, overlapping the other encoders (0.3-0.9 s of a 2-core
        # cold start)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="m0rank-load-e5") as pool:
            e5 = pool.submit(E5Small, settings.e5_max_tokens, settings.e5_precision)
            encoders = {ENGLISH: FusedMiniLm(settings.minilm_max_tokens,
                                             settings.minilm_precision),
                        MULTILINGUAL: UseEncoder(settings.use_threads)}
            ocr = load_ocr(settings.ocr_languages, settings.ocr_min_confidence,
                           settings.ocr_cache_entries)
            idf = load_idf(path, settings.idf_table)
            return cls(settings, encoders, e5.result(), idf, ocr,
                       options.model_name or "m0rank-offline")

    def preprocess(self, query: Document, document: Document, options: ScoreOptions,
                   field: str) -> PreparedPair:
        """OCR, truncation, language path and the lexical score of one pair (CPU)."""
        query_text, query_warnings = read_side(query, "query", self.ocr)
        doc_text, doc_warnings = read_side(document, field, self.ocr)
        q = self._analyse(query_text, None)
        d = self._analyse(doc_text, options.effective_max_doc_length)
        readable = bool(q.text.strip()) and bool(d.text.strip())
        path, fusion = _path_and_fusion(q.language, d.language)
        lexical = self.lexical[fusion].score(q.terms, d.terms) if readable else 0.0
        tokens = (len(q.text) + len(d.text)) // 4 + 1  # rough, for batch planning only
        return PreparedPair(num_tokens=tokens,
                            payload=_Pair(q.text, d.text, path, fusion, lexical, readable,
                                          (q.language, d.language)),
                            warnings=(*query_warnings, *doc_warnings))

    def forward(self, batch: Sequence[PreparedPair]) -> np.ndarray:
        """Fused logits of a micro-batch (float64, one per pair)."""
        features = self.features(batch)
        logits = np.empty(len(batch))
        for fusion in FUSIONS:
            rows = np.array([p.payload.fusion == fusion for p in batch])
            logits[rows] = self.settings.path(fusion).logits(features.rows(rows))
        logits += [self.settings.language_offset(*p.payload.languages) for p in batch]
        readable = np.array([p.payload.readable for p in batch])
        return np.where(readable, logits, NO_TEXT_LOGIT)

    def features(self, batch: Sequence[PreparedPair]) -> Features:
        """Per pair: the path encoder's cosine, normalised BM25 and (multilingual path)
        multilingual-e5-small's cosine."""
        payloads = [p.payload for p in batch]
        vectors: dict[tuple[str, str], np.ndarray] = {}
        multilingual = [p for p in payloads if p.path == MULTILINGUAL and p.readable]
        wanted = {
            ENGLISH: [t for p in payloads if p.path == ENGLISH and p.readable
                      for t in (p.query, p.document)],
            MULTILINGUAL: [t for p in multilingual
                           for t in (p.query, p.document, *sentences(p.document))],
            E5_QUERY: [p.query for p in multilingual],
            E5_PASSAGE: [p.document for p in multilingual]}
        for kind, texts in wanted.items():
            if texts:
                vectors.update(self._embed(kind, texts))
        dense = np.array([self._cosine(p, vectors) if p.readable else 0.0 for p in payloads])
        e5 = np.array([float(vectors[E5_QUERY, p.query] @ vectors[E5_PASSAGE, p.document])
                       if p.path == MULTILINGUAL and p.readable else 0.0 for p in payloads])
        return Features(dense, np.array([p.lexical for p in payloads]), e5)

    def _cosine(self, pair: _Pair, vectors: dict[tuple[str, str], np.ndarray]) -> float:
        """The pair's dense feature. On the multilingual path it is the mean of the
        whole-document cosine and the best sentence's cosine: USE embeds a long passage
        as an average, and a question usually matches one of its sentences."""
        query = vectors[pair.path, pair.query]
        whole = float(query @ vectors[pair.path, pair.document])
        if pair.path == ENGLISH:
            return whole
        best = max(float(query @ vectors[pair.path, s]) for s in sentences(pair.document))
        return (1.0 - self.settings.sentence_weight) * whole + self.settings.sentence_weight * best

    def postprocess(self, logits: Any) -> list[float]:
        """``sigmoid(logit)``; exactly 0.0 for pairs that could not be judged."""
        return [0.0 if value <= NO_TEXT_LOGIT else 1.0 / (1.0 + math.exp(-value))
                for value in np.asarray(logits, dtype=np.float64).tolist()]

    def warmup(self) -> None:
        """One English and one multilingual pair, so lazy initialisation is paid at load."""
        pairs = [self.preprocess(Document(text=q), Document(text=d), ScoreOptions(), "warmup")
                 for q, d in (("warm up", "warm up"), ("Aufwärmen", "预热"))]
        self.forward(pairs)

    def cache_stats(self) -> dict[str, CacheStats]:
        """Counters of the embedding cache and, with an OCR engine, the OCR cache."""
        with self._lock:
            stats = {"embedding": CacheStats(hits=self._hits, misses=self._misses,
                                             entries=len(self._embeddings))}
        if self.ocr is not None:
            stats["ocr"] = self.ocr.stats()
        return stats

    def path_of(self, query: str, document: str) -> str:
        """``"english"`` when both sides read as English, else ``"multilingual"``."""
        return self._path_and_fusion_of(query, document)[0]

    def fusion_of(self, query: str, document: str) -> str:
        """The pair's fusion weights: its path's, or ``"chinese"`` when both sides read as
        Chinese."""
        return self._path_and_fusion_of(query, document)[1]

    def _path_and_fusion_of(self, query: str, document: str) -> tuple[str, str]:
        return _path_and_fusion(self._analyse(query, None).language,
                                self._analyse(document, None).language)

    def _analyse(self, text: str, max_tokens: int | None) -> _Side:
        """A side cut to ``max_tokens`` word pieces, its language and index terms; cached
        per text, so a document ranked for many queries is analysed once."""
        key = (text, max_tokens)
        with self._lock:
            side = self._sides.get(key)
        if side is not None:
            return side
        if max_tokens is not None:
            text = self.encoders[ENGLISH].cut(text, max_tokens)
        terms = index_terms(text, chinese=self.settings.chinese_terms, lexicon=self.lexicon)
        side = _Side(text, detect_language([text]), terms)
        with self._lock:
            self._sides[key] = side
        return side

    def lexical_score(self, query: str, document: str) -> float:
        """Normalised BM25 of the pair over :func:`m0rank.terms.index_terms` terms, with the
        ``bm25_b`` of the pair's fusion weights."""
        return self.lexical[self.fusion_of(query, document)].score(
            self.terms_of(query), self.terms_of(document))

    def terms_of(self, text: str, max_tokens: int | None = None) -> list[str]:
        """Index terms of ``text`` cut to ``max_tokens`` word pieces, as the lexical feature
        sees them (``bench/offline_fit_v2.py`` scores BM25 variants with them)."""
        return self._analyse(text, max_tokens).terms

    def _embed(self, kind: str, texts: list[str]) -> dict[tuple[str, str], np.ndarray]:
        """Unit vectors of ``texts`` by the encoder of ``kind`` (a path, or e5's query or
        passage side), through the LRU cache."""
        keys = list(dict.fromkeys((kind, text) for text in texts))
        with self._lock:
            found = {key: self._embeddings[key] for key in keys if key in self._embeddings}
            self._hits += len(found)
        missing = sorted((key for key in keys if key not in found), key=lambda k: len(k[1]))
        size = self.settings.encoder_batch_size
        for start in range(0, len(missing), size):
            chunk = missing[start:start + size]
            vectors = self._encode[kind]([text for _, text in chunk])
            found.update(zip(chunk, vectors, strict=True))
        with self._lock:
            self._misses += len(missing)
            for key in missing:
                self._embeddings[key] = found[key]
        return found
