"""Quality of the shipped default model through the public API (``Reranker.from_pretrained()``).

- Cranfield: bm25s top 100 per query (English stop words, no stemming) reranked with
  ``Reranker.score``; nDCG@10 over the 225 queries (bar: 0.42).
- Check set (``m0rank.testing.checkset``): nDCG@10 per language (en, de, zh) and modality
  (text, page images, image query, mixed), next to the expected nDCG@10 of a random ranking.
  Every pair also records whether it carried a warning.

Usage: ``python bench/offline_quality.py [--skip-cranfield]``; writes
``bench/results/offline_quality.json``.
"""

from __future__ import annotations

import sys
import time

from offline_data import bm25_first_stage, load_cranfield, ndcg10, write_result

from m0rank import Reranker
from m0rank.testing.checkset import (
    LANGUAGES,
    MODALITIES,
    build_checkset,
    checkset_run_inputs,
    random_ndcg_at_10,
)


def rerank_run(reranker: Reranker, queries: dict[str, object], docs: dict[str, object],
               candidates: dict[str, list[str]]) -> tuple[dict[str, dict[str, float]], int]:
    """Scores of each query's candidates, and how many pairs carried a warning."""
    run: dict[str, dict[str, float]] = {}
    warned = 0
    for qid, dids in candidates.items():
        scores = reranker.score(queries[qid], [docs[d] for d in dids])
        run[qid] = {d: s.score for d, s in zip(dids, scores, strict=True)}
        warned += sum(bool(s.warnings) for s in scores)
    return run, warned


def cranfield(reranker: Reranker) -> dict[str, object]:
    """BM25 top 100 reranked by the default model."""
    corpus, queries, qrels = load_cranfield()
    first = bm25_first_stage(corpus, queries)
    started = time.perf_counter()
    run, _ = rerank_run(reranker, dict(queries), dict(corpus),
                        {q: list(ranked) for q, ranked in first.items()})
    return {"bm25s_first_stage": round(ndcg10(qrels, first), 4),
            "m0rank_offline_reranked": round(ndcg10(qrels, run), 4),
            "seconds": round(time.perf_counter() - started, 1)}


def checkset(reranker: Reranker) -> dict[str, object]:
    """nDCG@10 per language and modality."""
    report: dict[str, object] = {}
    for language in LANGUAGES:
        cs = build_checkset(language)
        candidates = {q: list(cs.docs) for q in cs.queries}
        for modality in MODALITIES:
            queries, docs = checkset_run_inputs(cs, modality)
            run, warned = rerank_run(reranker, queries, docs, candidates)
            report[f"{language} / {modality}"] = {"ndcg@10": round(ndcg10(cs.qrels, run), 4),
                                                  "pairs_with_warnings": warned}
            print(language, modality, report[f"{language} / {modality}"], flush=True)
    report["random ranking (24 docs, 2 relevant)"] = round(random_ndcg_at_10(24, 2), 4)
    return report


def main() -> None:
    """Run and write the JSON report."""
    reranker = Reranker.from_pretrained()
    report: dict[str, object] = {"model": reranker.model_name, "checkset": checkset(reranker)}
    if "--skip-cranfield" not in sys.argv:
        report["cranfield"] = cranfield(reranker)
    print(write_result("offline_quality", report).read_text())


if __name__ == "__main__":
    main()
