"""The lexical half of the built-in offline reranker: tokenisation and a per-pair BM25.

Reference: Robertson & Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond"
(2009), for the term weight; Kwok (1997) and the NTCIR CJK runs for overlapping character
bigrams as Chinese index terms.

Why per pair: the engine promises that a pair scores the same alone or in a batch, so the
score may not depend on the other documents of a call. The collection statistics BM25 needs
(IDF, average document length) therefore come from a *built-in* table made once from general
word frequencies (``wordfreq``: English, German, Chinese; see ``bench/offline_build_idf.py``)
and a fixed typical document length, not from the documents being ranked.

Tokens:

- Latin/Cyrillic/... words: lower-cased, Snowball-stemmed (German when the text reads as
  German, English otherwise), then diacritics folded (``Größe`` -> ``gross``), so OCR that
  drops umlauts still matches.
- Chinese (CJK ideograph runs): overlapping character bigrams; a lone character is a token.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import threading
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LexicalScorer", "IdfTable", "tokenize", "detect_latin_language", "join_cjk_spaces",
           "is_cjk", "fold", "idf_from_frequency"]

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")
_CJK_SPACE_RE = re.compile(rf"(?<=[{_CJK}])\s+(?=[{_CJK}])")
# A few very frequent function words decide which Snowball stemmer reads a text.
_GERMAN_HINTS = frozenset(
    "der die das und ist nicht ein eine einer mit für auf den dem des sich von zu im werden "
    "wird sind wie auch bei aus nach oder über".split())
_ENGLISH_HINTS = frozenset(
    "the and is are of to in for with on that this by from was were be as at an or what how "
    "which".split())


def join_cjk_spaces(text: str) -> str:
    """Remove whitespace between two CJK characters (OCR engines space Chinese characters)."""
    return _CJK_SPACE_RE.sub("", text)


def detect_latin_language(words: list[str]) -> str:
    """``"german"`` or ``"english"``: which stemmer suits ``words`` (lower-cased).

    German wins when it has more function-word hits, or when umlauts/ß appear and English
    has none; this is a tie-breaker for stemming, not a language identifier.
    """
    german = sum(word in _GERMAN_HINTS for word in words)
    english = sum(word in _ENGLISH_HINTS for word in words)
    if german > english:
        return "german"
    if german == english and any(ch in "äöüß" for word in words for ch in word):
        return "german"
    return "english"


_STEMMERS = threading.local()  # PyStemmer objects must not be shared between threads


def _stemmer(language: str):  # noqa: ANN202 - Stemmer.Stemmer, imported lazily
    """This thread's Snowball stemmer for ``language``."""
    import Stemmer

    cache = _STEMMERS.__dict__
    if language not in cache:
        cache[language] = Stemmer.Stemmer(language)
    return cache[language]


def fold(token: str) -> str:
    """Strip diacritics and expand ß, so ``größe`` and an OCR's ``grosse`` meet."""
    decomposed = unicodedata.normalize("NFKD", token.replace("ß", "ss"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokenize(text: str, language: str | None = None) -> list[str]:
    """Index terms of ``text``: stemmed, folded words and CJK character bigrams.

    Args:
        text: Any text; CJK and Latin may be mixed.
        language: ``"english"`` or ``"german"`` stemming; ``None`` detects it from the text.
    """
    runs = _TOKEN_RE.findall(unicodedata.normalize("NFKC", text).lower())
    words = [run for run in runs if not is_cjk(run[0])]
    stemmer = _stemmer(language or detect_latin_language(words))
    tokens: list[str] = []
    for run in runs:
        if is_cjk(run[0]):
            tokens.extend(_bigrams(run))
        else:
            tokens.append(fold(stemmer.stemWord(run)))
    return tokens


def is_cjk(char: str) -> bool:
    """True for a CJK ideograph (Chinese character)."""
    return ("\u3400" <= char <= "\u4dbf" or "\u4e00" <= char <= "\u9fff"
            or "\uf900" <= char <= "\ufaff")


def _bigrams(run: str) -> list[str]:
    if len(run) == 1:
        return [run]
    return [run[i:i + 2] for i in range(len(run) - 1)]


@dataclass(frozen=True)
class IdfTable:
    """Inverse document frequencies from general text, keyed by index term.

    Attributes:
        idf: Term -> IDF for terms seen in the source word lists.
        unseen_idf: IDF of a word term missing from the table (as rare as the rarest kept).
        source: Where the table came from, for the docs and the logs.
    """

    idf: dict[str, float]
    unseen_idf: float
    source: str = ""

    @classmethod
    def load(cls, path: Path) -> IdfTable:
        """Read a table written by ``bench/offline_build_idf.py`` (gzip JSON)."""
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
        return cls(idf=data["idf"], unseen_idf=float(data["unseen_idf"]),
                   source=str(data.get("source", "")))

    def __call__(self, term: str) -> float:
        """IDF of ``term``. An unseen CJK bigram is as common as its commoner character
        (most unseen bigrams straddle a word boundary, so they are weak evidence)."""
        value = self.idf.get(term)
        if value is not None:
            return value
        if len(term) == 2 and is_cjk(term[0]):
            first, second = (self.idf.get(char, self.unseen_idf) for char in term)
            return min(first, second)
        return self.unseen_idf


@dataclass(frozen=True, kw_only=True)
class LexicalScorer:
    """BM25 of one (query, document) pair, normalised to [0, 1] by the query's best case.

    Args:
        idf: The built-in IDF table.
        k1: Term-frequency saturation (BM25's usual 1.2).
        b: Length normalisation (BM25's usual 0.75).
        avgdl: Typical document length in terms, standing in for a collection average.
    """

    idf: IdfTable
    k1: float = 1.2
    b: float = 0.75
    avgdl: float = 150.0

    def score(self, query_terms: list[str], doc_terms: list[str]) -> float:
        """``BM25(q, d) / sum_t idf(t) * (k1 + 1)``: 1.0 only when every query term is
        saturated in the document; 0.0 when none occurs. Dividing by the query's best case
        makes values comparable across queries, so they can be fused with other evidence."""
        if not query_terms or not doc_terms:
            return 0.0
        tf = Counter(doc_terms)
        norm = self.k1 * (1 - self.b + self.b * len(doc_terms) / self.avgdl)
        total = best = 0.0
        for term in query_terms:
            weight = self.idf(term)
            freq = tf.get(term, 0)
            total += weight * freq * (self.k1 + 1) / (freq + norm)
            best += weight * (self.k1 + 1)
        return total / best if best > 0 else 0.0


def idf_from_frequency(freq: float, doc_length: float = 250.0, docs: float = 1e6) -> float:
    """BM25's IDF for a word with corpus frequency ``freq`` (share of all tokens).

    A document of ``doc_length`` tokens contains the word with probability
    ``p = 1 - exp(-freq * doc_length)``; in a virtual collection of ``docs`` documents that is
    ``n = p * docs`` documents, and ``idf = ln(1 + (docs - n + 0.5) / (n + 0.5))``.
    """
    n = (1.0 - math.exp(-freq * doc_length)) * docs
    return math.log(1.0 + (docs - n + 0.5) / (n + 0.5))
