"""Reading text from images for the built-in offline reranker (OCR), with a bounded cache.

Engines, in order of preference (measured in ``bench/offline_candidates.py``, see
``docs/offline-default.md``):

1. Tesseract 5 (Debian ``tesseract-ocr`` + ``-eng``/``-deu``/``-chi-sim``), run as a
   subprocess with every configured language that is installed. Exact on rendered English
   and German (umlauts included), about 1 s per page. When the first pass finds Chinese, the
   page is read again with ``chi_sim`` alone: the combined model misreads whole Chinese
   lines as Latin garbage (similarity 0.72 vs 0.87 on the check set's pages).
2. RapidOCR (``rapidocr-onnxruntime``, PP-OCRv4 models inside the wheel): the fallback when
   the tesseract binary is missing. English and Chinese; German loses umlauts; 5-10x slower.

Words the engine is not confident about are dropped, so a photo without writing comes back
as empty text (the model then says it cannot rank the image, rather than scoring noise).
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
import subprocess
import threading
import weakref
from dataclasses import dataclass
from typing import Protocol

from cachetools import LRUCache
from PIL import Image

from m0rank.model.offline.lexical import is_cjk, join_cjk_spaces
from m0rank.preprocessing.images import image_cache_key
from m0rank.types import CacheStats, Document

__all__ = ["OcrEngine", "TesseractOcr", "RapidOcr", "CachedOcr", "select_ocr_engine", "read_side",
           "has_readable_text"]

logger = logging.getLogger(__name__)

_MIN_TEXT_CHARS = 4  # fewer letters/digits than this after filtering counts as "no text"


class OcrEngine(Protocol):
    """Anything that turns an RGB image into text (empty when none is found)."""

    name: str

    def read(self, image: Image.Image) -> str:
        """Text of ``image``, lines separated by newlines."""
        ...


def _count_cjk(text: str) -> int:
    return sum(is_cjk(ch) for ch in text)


def has_readable_text(text: str) -> bool:
    """True when OCR output holds at least a few letters, digits or CJK characters."""
    return sum(ch.isalnum() for ch in text) >= _MIN_TEXT_CHARS


@dataclass(frozen=True)
class TesseractOcr:
    """Tesseract through its command line (TSV output, so low-confidence words are dropped).

    Attributes:
        languages: Tesseract language codes joined by ``+`` (``"eng+deu+chi_sim"``).
        cjk_languages: Languages of the second pass for pages where the first found Chinese
            (``""``: no second pass).
        min_confidence: Words below this confidence (0-100) are treated as noise.
        timeout: Seconds allowed per image.
    """

    languages: str
    cjk_languages: str = ""
    min_confidence: float = 50.0
    timeout: float = 60.0
    binary: str = "tesseract"
    name: str = "tesseract"

    def read(self, image: Image.Image) -> str:
        """Run tesseract on ``image``; an engine failure is logged and reads as no text.

        Automatic page segmentation (``--psm 3``) first; if it finds no text, a uniform
        block (``--psm 6``), which catches single-line slides that ``3`` misses. Then the
        ``cjk_languages`` pass when Chinese was seen, or when nothing readable was found
        (the combined model can read a Chinese line as a few Latin letters).
        """
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        png = buffer.getvalue()
        psm = "3"
        text = self._run(png, self.languages, psm)
        if not has_readable_text(text):
            psm = "6"
            text = self._run(png, self.languages, psm)
        saw_chinese = _count_cjk(text) >= _MIN_TEXT_CHARS
        if self.cjk_languages and (saw_chinese or not has_readable_text(text)):
            second = self._run(png, self.cjk_languages, psm)
            if saw_chinese or _count_cjk(second) >= _MIN_TEXT_CHARS:
                text = second
        return text

    def _run(self, png: bytes, languages: str, psm: str) -> str:
        try:
            done = subprocess.run(
                [self.binary, "stdin", "stdout", "-l", languages, "--psm", psm, "tsv"],
                input=png, capture_output=True, timeout=self.timeout, check=True,
                env={"OMP_THREAD_LIMIT": "1", "PATH": "/usr/bin:/bin:/usr/local/bin"})
        except (subprocess.SubprocessError, OSError) as exc:
            logger.warning("tesseract failed on an image (%s); treating it as text-free", exc)
            return ""
        return self._lines(done.stdout.decode("utf-8", errors="replace"))

    def _lines(self, tsv: str) -> str:
        """Confident words of tesseract's TSV, grouped back into lines."""
        lines: dict[tuple[str, str, str], list[str]] = {}
        rows = csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in rows:
            word = (row.get("text") or "").strip()
            if word and float(row.get("conf") or -1) >= self.min_confidence:
                key = (row["block_num"], row["par_num"], row["line_num"])
                lines.setdefault(key, []).append(word)
        return "\n".join(join_cjk_spaces(" ".join(words)) for words in lines.values())

    @staticmethod
    def installed_languages(binary: str = "tesseract") -> set[str]:
        """Language packs tesseract reports (empty when the binary is missing)."""
        if shutil.which(binary) is None:
            return set()
        try:
            out = subprocess.run([binary, "--list-langs"], capture_output=True, timeout=20,
                                 check=True).stdout.decode()
        except (subprocess.SubprocessError, OSError):
            return set()
        return {line.strip() for line in out.splitlines()[1:] if line.strip()}


class RapidOcr:
    """RapidOCR (PP-OCRv4 ONNX models bundled in the wheel); no angle classifier, since it
    flips clean horizontal lines (``offline-assets.md`` §4)."""

    name = "rapidocr"

    def __init__(self, min_score: float = 0.5) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self._engine = RapidOCR()
        self.min_score = min_score

    def read(self, image: Image.Image) -> str:
        """Detected lines with recognition score >= ``min_score``, top to bottom."""
        import numpy as np

        result, _ = self._engine(np.asarray(image.convert("RGB")), use_cls=False)
        lines = [text for _box, text, score in (result or []) if float(score) >= self.min_score]
        return "\n".join(join_cjk_spaces(line) for line in lines)


class CachedOcr:
    """An engine behind a bounded LRU cache keyed by the image's pixels (SHA-256), so a page
    ranked against many queries is read once per model instance. Thread-safe: the engine
    prepares pairs on several threads (the OCR itself runs outside the lock)."""

    def __init__(self, engine: OcrEngine, max_entries: int = 1024) -> None:
        self.engine = engine
        self.name = engine.name
        self._cache: LRUCache[str, str] = LRUCache(maxsize=max_entries)
        # id(image) -> (weak reference, pixel key): a page object scored against many
        # queries is hashed once, not once per pair (hashing a page costs milliseconds).
        self._keys: dict[int, tuple[weakref.ref[Image.Image], str]] = {}
        self._lock = threading.Lock()
        self._reading: dict[str, threading.Event] = {}
        self.hits = 0
        self.misses = 0

    @property
    def max_entries(self) -> int:
        """Most pages whose text is kept."""
        return int(self._cache.maxsize)

    def _pixel_key(self, image: Image.Image) -> str:
        """``image_cache_key`` of ``image``, remembered while the image object lives, so a
        PIL image edited in place after it was first read keeps its earlier text (pass a
        copy to have an edited page read again)."""
        known = self._keys.get(id(image))
        if known is not None and known[0]() is image:
            return known[1]
        key = image_cache_key(image, "ocr")
        ident = id(image)
        # The callback runs when the image is freed, before its id can be reused; dict.pop
        # is atomic, so no lock (a lock here could be re-entered by the garbage collector).
        self._keys[ident] = (weakref.ref(image, lambda _ref: self._keys.pop(ident, None)), key)
        return key

    def stats(self) -> CacheStats:
        """Counters reported as ``cache="ocr"``."""
        with self._lock:
            return CacheStats(hits=self.hits, misses=self.misses, entries=len(self._cache),
                              max_bytes=0)

    def read(self, image: Image.Image) -> str:
        """Cached text of ``image``; a thread asking for an image that another thread is
        reading waits for that result instead of running the OCR twice."""
        key = self._pixel_key(image)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self.hits += 1
                return cached
            in_flight = self._reading.get(key)
            if in_flight is None:
                self._reading[key] = threading.Event()
                self.misses += 1
        if in_flight is not None:
            in_flight.wait()
            return self.read(image)
        try:
            text = self.engine.read(image)
            with self._lock:
                self._cache[key] = text
        finally:
            with self._lock:
                self._reading.pop(key).set()
        return text


def select_ocr_engine(languages: list[str], min_confidence: float) -> OcrEngine | None:
    """Tesseract with the wanted languages that are installed, else RapidOCR, else ``None``."""
    installed = TesseractOcr.installed_languages()
    usable = [lang for lang in languages if lang in installed]
    if usable:
        missing = sorted(set(languages) - set(usable))
        if missing:
            logger.warning("tesseract language packs missing: %s (apt-get install "
                           "tesseract-ocr-<lang>)", ", ".join(missing))
        cjk = "chi_sim" if "chi_sim" in usable and len(usable) > 1 else ""
        return TesseractOcr("+".join(usable), cjk_languages=cjk, min_confidence=min_confidence)
    try:
        engine = RapidOcr()
    except ImportError:
        logger.warning("no OCR engine: install tesseract-ocr or m0rank[offline]; images "
                       "will be reported as unreadable")
        return None
    logger.warning("tesseract not found; using RapidOCR (slower, no German umlauts)")
    return engine


def read_side(document: Document, field: str,
              ocr: CachedOcr | None) -> tuple[str, tuple[str, ...]]:
    """Text of a query or document (its text, then the OCR text of each image) and the
    warning for images without readable text (``field`` names the side in it)."""
    parts = [document.text] if document.text else []
    unreadable = 0
    for image in document.images:
        text = ocr.read(image) if ocr is not None else ""
        if has_readable_text(text):
            parts.append(text)
        else:
            unreadable += 1
    text = "\n".join(parts)
    if not unreadable:
        return text, ()
    return text, (_unreadable_warning(field, unreadable, len(document.images),
                                      bool(text.strip()), ocr is not None),)


def _unreadable_warning(field: str, unreadable: int, images: int, has_text: bool,
                        has_ocr: bool) -> str:
    which = "its image" if images == 1 else f"{unreadable} of its {images} images"
    reason = ("has no readable text (a photo?)" if has_ocr
              else "cannot be read: no OCR engine is installed (apt-get install tesseract-ocr)")
    if has_text:
        return f"{field}: {which} {reason}; m0rank-offline ranked it by its text alone"
    return (f"{field}: {which} {reason}; m0rank-offline ranks images only by the text in "
            f"them, so this pair scored 0.0. Use jina-reranker-m0 (--model) to rank photos")
