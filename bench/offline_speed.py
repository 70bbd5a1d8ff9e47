"""Speed of the built-in offline model on this machine: cold start, text and page-image pairs/s.

- cold start: a fresh ``python`` process that imports m0rank and runs
  ``Reranker.from_pretrained()`` (median of 3), and the same until the first ranking is done;
- text: one query against 100 distinct ~256-word-piece documents (cold caches), pairs/s and
  seconds for the whole ranking;
- page images: one query against 8 distinct rendered pages (800 px wide, ~250 words, OCR with
  cold cache), pairs/s; and again with a second query (OCR cache warm).

Usage: ``python bench/offline_speed.py``; writes ``bench/results/offline_speed.json``. The
machine is shared, so numbers are indicative (the load average is recorded).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

from offline_data import load_cranfield, write_result

from m0rank import Reranker
from m0rank.testing.checkset import render_passage

_COLD = """
import time; started = time.perf_counter()
from m0rank import Reranker
reranker = Reranker.from_pretrained()
loaded = time.perf_counter()
reranker.rank("electric car battery", ["An electric car battery in winter.", "Bread."])
print(loaded - started, time.perf_counter() - started)
"""


def cold_start(runs: int = 3) -> dict[str, float]:
    """Median seconds to load, and to load plus rank two documents, in a new process."""
    loads, firsts = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _COLD], capture_output=True, text=True,
                             check=True).stdout.split()
        loads.append(float(out[0]))
        firsts.append(float(out[1]))
    return {"load_s": round(statistics.median(loads), 2),
            "load_and_first_rank_s": round(statistics.median(firsts), 2)}


def long_documents(reranker: Reranker, count: int, pieces: int = 256) -> list[str]:
    """``count`` distinct Cranfield-based documents of about ``pieces`` word pieces."""
    corpus, _, _ = load_cranfield()
    texts = list(corpus.values())
    encoder = reranker.model.encoder
    docs = []
    for i in range(count):
        text, j = "", i
        while len(encoder.word_pieces(text)[0]) < pieces:
            text += " " + texts[j % len(texts)]
            j += 97
        spans = encoder.word_pieces(text)[1]
        docs.append(text[: spans[pieces - 3][1]].strip())
    return docs


def timed_rank(reranker: Reranker, query: str, docs: list[object]) -> float:
    """Seconds for one ``rank`` call."""
    started = time.perf_counter()
    reranker.rank(query, docs)
    return time.perf_counter() - started


def main() -> None:
    """Measure and write the JSON report."""
    report: dict[str, object] = {"load_average_1min": round(os.getloadavg()[0], 2),
                                 "cold_start": cold_start()}
    reranker = Reranker.from_pretrained()
    docs = long_documents(reranker, 100)
    seconds = timed_rank(reranker, "pressure distribution on a slender wing", docs)
    report["text_256_tokens"] = {"pairs": len(docs), "seconds": round(seconds, 2),
                                 "pairs_per_s": round(len(docs) / seconds, 1)}
    pages = [{"image": render_passage(text)} for text in long_documents(reranker, 8, 200)]
    cold = timed_rank(reranker, "pressure distribution on a slender wing", pages)
    warm = timed_rank(reranker, "heat transfer in hypersonic flow", pages)
    report["page_images"] = {
        "pairs": len(pages), "page_size": list(pages[0]["image"].size),
        "ocr_engine": reranker.model.ocr.name if reranker.model.ocr else None,
        "cold_ocr_pairs_per_s": round(len(pages) / cold, 2),
        "warm_ocr_cache_pairs_per_s": round(len(pages) / warm, 1)}
    report["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    print(write_result("offline_speed", report).read_text())


if __name__ == "__main__":
    main()
