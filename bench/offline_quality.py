"""Quality of ``m0rank-offline-v1`` and ``m0rank-offline`` (v2) side by side, through the API.

1. Same-language collections (``offline_data``): Cranfield (en), CISI (en), XQuAD en/de/zh,
   CMRC 2018 dev (zh), DRCD test (Traditional Chinese; DRCD dev, the ``chinese`` weights'
   fitting collection, is reported as in-sample). First stage ``m0rank.eval.bm25_run``
   (tokens by the collection's script), its top 100 reranked by each model with
   ``m0rank.eval.model_result``; nDCG@10.
2. Cross-lingual check (XQuAD, CC BY-SA 4.0): a question in language A against all 240
   paragraphs in language B (its translation and 239 distractors); top-1 accuracy for every
   ordered pair of en/de/zh (v2: all 240 questions; v1, which is about 10x slower per pair
   here, the first ``--v1-queries`` of the issue's four directions, with v2 on the same
   subset beside it). The grid also gives the calibration checks: the share of questions
   whose relevant paragraph in B outscores every irrelevant paragraph in A (and pair by
   pair), the reverse (own-language paragraph above every irrelevant one in B), and mixed
   bilingual lists (all of A and B at once).
3. The same check with the paragraphs rendered as page images (Noto fonts, read by OCR) for
   the first ``--pages`` paragraphs of each language (default all 240; with fewer, there are
   fewer distractors: say so when quoting). v1 answers the first ``--v1-queries`` here too.

Nothing here is fitted: v2's weights come from ``bench/offline_fit_v2.py`` (Cranfield for the
English path, so its Cranfield row is in-sample; the held-out figure is that script's 2-fold
cross-validation) and v1's from Cranfield (its docs give the cross-validated figure).

Usage: ``python bench/offline_quality.py [--queries N] [--pages N] [--parts text,collections,pages]
[--collections a,b] [--out NAME]``; writes ``bench/results/offline_quality.json`` (or
``NAME.json``). Parts can run as separate processes into separate files.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from offline_data import DEPTH, collection, write_result

from m0rank import Reranker
from m0rank.eval import bm25_run
from m0rank.eval.runner import first_stage_result, model_result
from m0rank.testing.checkset import render_passage

COLLECTIONS = ("cranfield", "cisi", "xquad-en", "xquad-de", "xquad-zh", "cmrc2018-dev",
               "drcd-test", "drcd-dev")
LANGS = ("en", "de", "zh")
ISSUE_PAIRS = (("en", "zh"), ("zh", "en"), ("en", "de"), ("de", "en"))
METRICS = ("ndcg@10",)


def same_language(models: dict[str, Reranker], name: str) -> dict[str, object]:
    """BM25 and each model's reranking of its top 100, nDCG@10."""
    coll = collection(name)
    first = bm25_run(coll, DEPTH)
    baseline = first_stage_result("BM25", coll, first, METRICS)
    row: dict[str, object] = {"BM25": round(baseline.metrics["ndcg@10"], 4)}
    for label, model in models.items():
        result = model_result(label, model, coll, first, k=DEPTH, metrics=METRICS)
        row[label] = round(result.metrics["ndcg@10"], 4)
        row[f"{label}_seconds"] = round(result.seconds, 1)
        row[f"{label}_vs_BM25"] = paired_comparison(result.per_query["ndcg@10"],
                                                    baseline.per_query["ndcg@10"])
    print(name, row, flush=True)
    return row


def paired_comparison(ours: dict[str, float], theirs: dict[str, float]) -> dict[str, object]:
    """Per query: how often ``ours`` beats, ties and loses to ``theirs``, and the two-sided
    p-value of a paired permutation test (Fisher's randomization test, as IR papers use) on
    the mean difference: whether a gap is more than which queries happened to be drawn."""
    from scipy.stats import permutation_test

    queries = sorted(ours)
    diff = np.array([ours[q] - theirs[q] for q in queries])
    test = permutation_test((diff,), np.mean, permutation_type="samples", n_resamples=9999,
                            alternative="two-sided", random_state=0)
    return {"wins": int((diff > 1e-12).sum()), "ties": int((np.abs(diff) <= 1e-12).sum()),
            "losses": int((diff < -1e-12).sum()), "p_value": round(float(test.pvalue), 4)}


def score_matrix(model: Reranker, queries: list[object], docs: list[object]) -> np.ndarray:
    """Scores of every query against every document (rows: queries)."""
    return np.array([[s.score for s in model.score(q, docs)] for q in queries])


def cross_lingual(models: dict[str, Reranker], n: int, pages: bool,
                  v1_queries: int) -> dict[str, object]:
    """Top-1 accuracy for every ordered language pair, and the calibration check. v1 (slow
    per pair) answers only the first ``v1_queries`` questions of the issue's four directions,
    still against all ``n`` candidates; v2's figures on the same subset are given beside."""
    colls = {lang: collection(f"xquad-{lang}") for lang in LANGS}
    queries = {lang: [colls[lang].queries[f"q{i}"].text for i in range(n)] for lang in LANGS}
    docs: dict[str, list[object]] = {
        lang: [colls[lang].corpus[f"p{i}"].text for i in range(n)] for lang in LANGS}
    if pages:
        docs = {lang: [{"image": render_passage(str(t))} for t in texts]
                for lang, texts in docs.items()}
    report: dict[str, object] = {"candidates_per_query": n}
    v1, v2 = models
    started = time.perf_counter()
    grid = {(a, b): score_matrix(models[v2], queries[a], docs[b]) for a in LANGS for b in LANGS}
    report[v2] = {"queries": n, "top1": _top1(grid, n), "calibration": calibration(grid, n),
                  "calibration_pairwise": calibration_pairwise(grid, n),
                  "calibration_reverse": calibration_reverse(grid, n),
                  "mixed_lists": mixed_lists(grid, n),
                  "seconds": round(time.perf_counter() - started, 1)}
    print("cross-lingual", "pages" if pages else "text", v2, report[v2], flush=True)
    m = min(v1_queries, n)
    if m == 0:
        return report
    started = time.perf_counter()
    subset = {(a, b): score_matrix(models[v1], queries[a][:m], docs[b]) for a, b in ISSUE_PAIRS}
    report[v1] = {"queries": m, "top1": _top1(subset, n),
                  "seconds": round(time.perf_counter() - started, 1)}
    report[f"{v2} on {v1}'s queries"] = {
        "queries": m, "top1": _top1({k: grid[k][:m] for k in ISSUE_PAIRS}, n)}
    print("cross-lingual", "pages" if pages else "text", v1, report[v1], flush=True)
    return report


def _top1(grid: dict[tuple[str, str], np.ndarray], n: int) -> dict[str, float]:
    """Share of rows whose own paragraph (column = row index) scores highest."""
    return {f"{a}->{b}": round(float((m.argmax(1) == np.arange(len(m))).mean()), 3)
            for (a, b), m in grid.items()}


def calibration(grid: dict[tuple[str, str], np.ndarray], n: int) -> dict[str, float]:
    """Per A->B (A != B): share of queries whose relevant paragraph in B scores above every
    irrelevant paragraph in A (scores comparable across languages)."""
    return {f"{a}->{b}": _above_every(np.diag(matrix), grid[a, a], n)
            for (a, b), matrix in grid.items() if a != b}


def calibration_reverse(grid: dict[tuple[str, str], np.ndarray], n: int) -> dict[str, float]:
    """The other side of :func:`calibration`, per A->B: share of queries whose relevant
    paragraph in A (their own language) scores above every irrelevant paragraph in B, so
    calibration cannot be bought by raising every cross-lingual score."""
    return {f"{a}->{b}": _above_every(np.diag(grid[a, a]), matrix, n)
            for (a, b), matrix in grid.items() if a != b}


def _above_every(relevant: np.ndarray, distractors: np.ndarray, n: int) -> float:
    """Share of rows whose ``relevant`` score beats every off-diagonal score of the row in
    ``distractors`` (the diagonal is the row's own relevant paragraph)."""
    best = np.where(~np.eye(n, dtype=bool), distractors, -np.inf).max(1)
    return round(float((relevant > best).mean()), 3)


def mixed_lists(grid: dict[tuple[str, str], np.ndarray], n: int) -> dict[str, object]:
    """A question in A against all paragraphs in A and in B at once (2n candidates, two of
    them relevant: its paragraph and that paragraph's translation), as in a bilingual
    collection: the share of questions whose top result is relevant, and whose top two are
    both relevant."""
    top1, both = {}, {}
    for (a, b), matrix in grid.items():
        if a == b:
            continue
        ranked = np.argsort(-np.concatenate([grid[a, a], matrix], 1), axis=1, kind="stable")
        relevant = [{i, n + i} for i in range(n)]
        top1[f"{a}+{b}"] = round(float(np.mean([r[0] in rel for r, rel in
                                                zip(ranked, relevant, strict=True)])), 3)
        both[f"{a}+{b}"] = round(float(np.mean([set(r[:2]) == rel for r, rel in
                                                zip(ranked, relevant, strict=True)])), 3)
    return {"top1_relevant": top1, "top2_both_relevant": both}


def calibration_pairwise(grid: dict[tuple[str, str], np.ndarray], n: int) -> dict[str, float]:
    """Per A->B (A != B): over every query and every irrelevant paragraph in A, the share of
    pairs where the query's relevant paragraph in B scores higher (the issue's "a relevant
    cross-lingual document must outscore an irrelevant same-language one", pair by pair)."""
    out = {}
    off_diagonal = ~np.eye(n, dtype=bool)
    for (a, b), matrix in grid.items():
        if a == b:
            continue
        wins = np.diag(matrix)[:, None] > grid[a, a]
        out[f"{a}->{b}"] = round(float(wins[off_diagonal].mean()), 4)
    return out


def main() -> None:
    """Run everything, writing the JSON report after each part."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=240, help="XQuAD paragraphs (max 240)")
    parser.add_argument("--v1-queries", type=int, default=60,
                        help="questions v1 answers in the cross-lingual check")
    parser.add_argument("--pages", type=int, default=240, help="paragraphs rendered as pages")
    parser.add_argument("--parts", default="text,collections,pages",
                        help="comma-separated: text, collections, pages")
    parser.add_argument("--collections", default=",".join(COLLECTIONS))
    parser.add_argument("--out", default="offline_quality", help="bench/results/<out>.json")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    models = {"m0rank-offline-v1": Reranker.from_pretrained("m0rank-offline-v1"),
              "m0rank-offline": Reranker.from_pretrained("m0rank-offline")}
    report: dict[str, object] = {"first_stage": "m0rank.eval.bm25_run top 100 (Lucene k1 0.9 "
                                                 "b 0.4, tokenizer auto)"}
    if "text" in parts:
        report["cross_lingual_text"] = cross_lingual(models, args.queries, False,
                                                     args.v1_queries)
        write_result(args.out, report)
    if "collections" in parts:
        rows: dict[str, object] = {}
        report["ndcg@10"] = rows
        for name in args.collections.split(","):
            rows[name] = same_language(models, name)
            write_result(args.out, report)
    if "pages" in parts:
        v1, v2 = models.values()
        v1.model.ocr = v2.model.ocr  # one OCR cache: each page is read once for both models
        report["cross_lingual_pages"] = cross_lingual(models, args.pages, True, args.v1_queries)
    print(write_result(args.out, report).read_text())


if __name__ == "__main__":
    main()
