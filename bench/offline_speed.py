"""Speed of the built-in offline model on this machine: cold start, text and page-image pairs/s.

- cold start: a fresh ``python`` process that imports m0rank and runs
  ``Reranker.from_pretrained()`` (median of 3), and the same until the first ranking is done;
- text: one query against 100 distinct ~256-word-piece documents (cold caches), pairs/s and
  seconds for the whole ranking;
- page images: one query against 8 distinct rendered pages (800 px wide, ~250 words, OCR with
  cold cache), pairs/s; and again with a second query (OCR cache warm).

Usage: ``python bench/offline_speed.py``; writes ``bench/results/offline_speed.json``. The
machine is shared (other jobs run beside it), so wall-clock numbers depend on its load, which
is recorded; the CPU seconds are also recorded, and ``pairs_per_s_idle_2_cores_estimate``
divides them by two cores (capped at 4x the measured rate).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time

from offline_data import load_cranfield, write_result

from m0rank import Reranker
from m0rank.testing.checkset import render_passage

_COLD = """
import time; started = time.perf_counter(); cpu = time.process_time()
from m0rank import Reranker
reranker = Reranker.from_pretrained()
loaded, loaded_cpu = time.perf_counter(), time.process_time()
reranker.rank("electric car battery", ["An electric car battery in winter.", "Bread."])
print(loaded - started, time.perf_counter() - started, loaded_cpu - cpu)
"""


def cold_start(runs: int = 3) -> dict[str, float]:
    """Median seconds to load, and to load plus rank two documents, in a new process (imports
    included), and the CPU seconds of the load."""
    rows = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _COLD], capture_output=True, text=True,
                             check=True).stdout.split()
        rows.append([float(x) for x in out])
    load, first, cpu = (statistics.median(column) for column in zip(*rows, strict=True))
    return {"load_s": round(load, 2), "load_and_first_rank_s": round(first, 2),
            "load_cpu_s": round(cpu, 2)}


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


def timed_rank(reranker: Reranker, query: str, docs: list[object]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process's threads plus child processes such as
    tesseract) of one ``rank`` call."""
    started, cpu = time.perf_counter(), _cpu_seconds()
    reranker.rank(query, docs)
    return time.perf_counter() - started, _cpu_seconds() - cpu


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def rates(pairs: int, wall: float, cpu: float) -> dict[str, float]:
    """Measured pairs/s, and the rate an idle 2-core machine would give (CPU time / 2)."""
    return {"pairs": pairs, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "pairs_per_s": round(pairs / wall, 2),
            "pairs_per_s_idle_2_cores_estimate": round(pairs / max(cpu / 2, wall / 4), 2)}


def main() -> None:
    """Measure and write the JSON report."""
    report: dict[str, object] = {"load_average_1min": round(os.getloadavg()[0], 2),
                                 "cold_start": cold_start()}
    reranker = Reranker.from_pretrained()
    docs = long_documents(reranker, 100)
    report["text_256_tokens"] = rates(
        len(docs), *timed_rank(reranker, "pressure distribution on a slender wing", docs))
    pages = [{"image": render_passage(text)} for text in long_documents(reranker, 8, 200)]
    report["page_images"] = {
        "page_size": list(pages[0]["image"].size),
        "ocr_engine": reranker.model.ocr.name if reranker.model.ocr else None,
        "cold_ocr_cache": rates(len(pages), *timed_rank(
            reranker, "pressure distribution on a slender wing", pages)),
        "warm_ocr_cache": rates(len(pages), *timed_rank(
            reranker, "heat transfer in hypersonic flow", pages))}
    report["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    print(write_result("offline_speed", report).read_text())


if __name__ == "__main__":
    main()
