"""Index terms for lexical matching in English, German and Chinese (BM25's tokens).

One tokenisation shared by the offline reranker's lexical side (``m0rank-offline``) and the
evaluation harness's BM25 first stage (``m0rank.eval.bm25_run``), so a user evaluating on
Chinese or German data gets the same terms the model matches on.

References: Robertson & Zaragoza (2009) for BM25; Kwok (1997) and the NTCIR CJK runs for
character bigrams; jieba (Sun Junyi, MIT) for Chinese word segmentation; Snowball stemmers
(PyStemmer); Koehn & Knight (2003), "Empirical methods for compound splitting", for splitting
German compounds into parts that occur as words on their own.

Terms:

- Latin-script words: lower-cased, Snowball-stemmed (German or English, see ``language``),
  diacritics folded (``Größe`` -> ``gross``), so text whose OCR dropped the umlauts matches.
  With a ``lexicon``, a long German word also yields its parts (``wasserversorgung`` ->
  ``wasser``, ``versorg``) when both are known words.
- Chinese (CJK ideograph runs): jieba words (``chinese="jieba"``), overlapping character
  bigrams (``chinese="bigrams"``, no dictionary to load), or both (``"jieba+bigrams"``: a
  word the dictionary knows matches as a whole, and a word it splits differently, or a name
  it does not know, still matches by its bigrams; the offline reranker's lexical side uses
  this, chosen by measurement in ``bench/offline_fit_v2.py``).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Container, Iterable
from typing import Any

from m0rank.errors import InvalidInputError

__all__ = ["index_terms", "is_cjk", "fold", "detect_language", "cjk_share", "decompound",
           "LANGUAGES", "CHINESE_MODES"]

LANGUAGES = ("english", "german", "chinese")
CHINESE_MODES = ("jieba", "bigrams", "jieba+bigrams")

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN_RE = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")
# Function and question words of each language. Words common to both ("in", "an", "am",
# "so", "also", "was", "war") count for neither: a short German question still has a German verb or
# question word ("Was ist DECnet?": "ist"), and "Tesla was born in Smiljan." stays English. A
# tie goes to English unless the text has umlauts (see detect_language).
_GERMAN_HINTS = frozenset(
    "der die das und ist nicht ein eine einer mit für auf den dem des sich von zu im werden "
    "wird sind wie auch bei aus nach oder über zur zum vom beim um durch gegen ohne unter "
    "haben hatte waren wurde wurden es er sie ihr ihre sein seine seinen seiner dass als "
    "bis noch nur aber wenn sehr kein keine wann wer wen wem wessen wo woher wohin warum "
    "weshalb wieso welche welcher welches welchem welchen".split())
_ENGLISH_HINTS = frozenset(
    "the a and is are of to for with on that this by from were be as at or what how which who "
    "when where why did does do has have had it its not their his her they there been would "
    "can could should about into than then these those he she i you we".split())
_MIN_PART = 4  # shortest compound part (shorter splits are mostly noise: "ver", "ein")
_LINKS = ("", "s", "es", "n", "en")  # German linking elements (Fugenelemente)

_LOCAL = threading.local()  # PyStemmer objects must not be shared between threads
_JIEBA_LOCK = threading.Lock()
_JIEBA: list[Any] = []  # the one lazily initialised jieba tokenizer of this process


def is_cjk(char: str) -> bool:
    """True for a CJK ideograph (Chinese character)."""
    return ("\u3400" <= char <= "\u4dbf" or "\u4e00" <= char <= "\u9fff"
            or "\uf900" <= char <= "\ufaff")


def cjk_share(texts: Iterable[str]) -> float:
    """Share of CJK ideographs among the letters of ``texts`` (0.0 for no letters)."""
    letters = cjk = 0
    for text in texts:
        for char in text:
            if char.isalpha():
                letters += 1
                cjk += is_cjk(char)
    return cjk / letters if letters else 0.0


def detect_language(texts: Iterable[str]) -> str:
    """``"chinese"``, ``"german"`` or ``"english"``: which tokenisation suits ``texts``.

    Chinese when a fifth of the letters are CJK ideographs; otherwise German when German
    function words outnumber English ones (or tie with umlauts present). A tie-breaker for
    stemming, not a language identifier.
    """
    texts = list(texts)
    if cjk_share(texts) >= 0.2:
        return "chinese"
    words = [w for text in texts for w in _TOKEN_RE.findall(text.lower()) if not is_cjk(w[0])]
    german = sum(word in _GERMAN_HINTS for word in words)
    english = sum(word in _ENGLISH_HINTS for word in words)
    if german > english or (german == english and any(c in "äöüß" for w in words for c in w)):
        return "german"
    return "english"


def fold(token: str) -> str:
    """Strip diacritics and expand ß, so ``größe`` and an OCR's ``grosse`` meet."""
    decomposed = unicodedata.normalize("NFKD", token.replace("ß", "ss"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _stemmer(language: str) -> Any:
    """This thread's Snowball stemmer for ``language`` (``"english"``/``"german"``)."""
    import Stemmer

    cache = _LOCAL.__dict__
    if language not in cache:
        cache[language] = Stemmer.Stemmer(language)
    return cache[language]


def _jieba() -> Any:
    """The process's jieba tokenizer, its dictionary loaded on first use (about 1 s)."""
    with _JIEBA_LOCK:
        if not _JIEBA:
            import logging

            import jieba

            jieba.setLogLevel(logging.WARNING)
            tokenizer = jieba.Tokenizer()
            tokenizer.initialize()
            _JIEBA.append(tokenizer)
    return _JIEBA[0]


def _chinese_terms(run: str, mode: str) -> list[str]:
    """Terms of one run of CJK ideographs."""
    terms: list[str] = []
    if mode != "bigrams":
        terms.extend(_jieba().lcut(run, HMM=True))
    if mode != "jieba":
        terms.extend([run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)])
    return terms


def decompound(term: str, lexicon: Container[str],
               stem: Callable[[str], str] | None = None) -> list[str]:
    """Parts of a (stemmed, folded) German compound whose two halves are both in ``lexicon``,
    or ``[]``. The split with the longest head wins; a linking ``s``/``es``/``n``/``en``
    between the parts is dropped (``arbeitsplatz`` -> ``arbeit``, ``platz``), and the head is
    also tried stemmed (``wasser`` -> ``wass``), since inside a compound it keeps its ending."""
    for cut in range(len(term) - _MIN_PART, _MIN_PART - 1, -1):
        head, tail = term[:cut], term[cut:]
        if tail not in lexicon:
            continue
        for link in _LINKS:
            if head.endswith(link) and len(head) - len(link) >= _MIN_PART:
                bare = head[: len(head) - len(link)] if link else head
                for form in (bare, stem(bare)) if stem else (bare,):
                    if form in lexicon:
                        return [form, tail]
    return []


def index_terms(text: str, language: str | None = None, *, chinese: str = "jieba",
                lexicon: Container[str] | None = None) -> list[str]:
    """Index terms of ``text``: stemmed, folded words and Chinese words or bigrams.

    Args:
        text: Any text; Chinese and Latin script may be mixed.
        language: Stemmer for Latin-script words, ``"english"`` or ``"german"``; ``None`` or
            ``"chinese"`` picks it from the text's function words.
        chinese: ``"jieba"`` (words), ``"bigrams"`` (overlapping character pairs) or
            ``"jieba+bigrams"`` (both).
        lexicon: Known terms; German compounds of two known terms also yield both parts.

    Raises:
        InvalidInputError: ``chinese`` is not one of :data:`CHINESE_MODES`.
    """
    if chinese not in CHINESE_MODES:
        raise InvalidInputError(f"chinese must be one of {', '.join(CHINESE_MODES)}, "
                                f"got {chinese!r}")
    runs = _TOKEN_RE.findall(unicodedata.normalize("NFKC", text).lower())
    if language not in ("english", "german"):
        language = detect_language([" ".join(r for r in runs if not is_cjk(r[0]))])
        language = "german" if language == "german" else "english"
    stemmer = _stemmer(language)
    split = lexicon is not None and language == "german"
    terms: list[str] = []
    for run in runs:
        if is_cjk(run[0]):
            terms.extend(_chinese_terms(run, chinese))
            continue
        term = fold(stemmer.stemWord(run))
        terms.append(term)
        if split and len(term) >= 2 * _MIN_PART:
            terms.extend(decompound(term, lexicon,  # type: ignore[arg-type]
                                    lambda part: fold(stemmer.stemWord(part))))
    return terms
