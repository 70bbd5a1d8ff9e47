"""Fit the fusion weights of ``m0rank-offline`` (v2) and write them into its ``config.json``.

Each path gets ``logit = w_dense * dense + w_e5 * e5 + w_lexical * lexical + bias`` from a
logistic regression with balanced classes over the model's own features
(``OfflineRerankerV2.features``; ``e5``, multilingual-e5-small's cosine, only on the
multilingual path), and the BM25 length normalisation ``bm25_b`` of its lexical feature,
chosen from :data:`B_GRID` together with the weight ratios (the model scores BM25 with a
fixed typical document length, not the collection's average, so how much length should count
is fitted):

- ``english`` (both sides English: MiniLM cosine, bf16 where the CPU has it, + BM25): fitted
  on **Cranfield** (BM25 top 100 of ``m0rank.eval.bm25_run``). Cranfield's held-out figure
  is therefore the 2-fold cross-validation reported here (fit on odd-numbered queries,
  score the even ones, and back).
- ``multilingual`` (every other pair: USE v3 cosine + multilingual-e5-small cosine + BM25):
  fitted on **CMRC 2018 trial** (``bench/data/cmrc2018-trial``, BM25 top 100) and the
  project's **check set** (``m0rank.testing.checkset``: 12 topics, each question ranked
  against the passages of every language in one mixed list, en-en pairs left out). Neither
  is in any figure of ``offline_quality.py``. Its CMRC pairs are Chinese-Chinese, which
  take the ``chinese`` weights below since those were added; they stay in this fit so that
  the multilingual weights, and every cross-lingual figure measured with them, are unchanged.
- ``chinese`` (query and document both Chinese: the multilingual path's features, weights of
  their own): ranking (``bm25_b`` and weight ratios) fitted on **DRCD dev**
  (``bench/data/drcd-dev``, Traditional Chinese Wikipedia, 1000 paragraphs) and **CMRC 2018
  trial**, BM25 top 100, each question against Chinese paragraphs only. Before this fit DRCD
  dev was an unseen evaluation collection: the multilingual weights scored 0.962 there
  against BM25's 0.968 (``offline_quality_drcd``), and Chinese-only lists preferred far more
  e5 and lexical weight than mixed-language lists allow. Scale and bias are then set so that
  irrelevant pairs spread as under the multilingual weights (:func:`match_irrelevant`),
  which keeps scores comparable across languages. DRCD *test* is its held-out collection.

- ``language_offsets`` (per query language and document language, added to the logit):
  measured on the **check set** with the weights above, every query language against every
  passage language (en-en included): each language pair's irrelevant pairs are moved to the
  mean logit of English-English irrelevant pairs (:func:`language_offsets`). It is constant
  within a language pair, so no ranking among documents read as one language changes;
  across languages an irrelevant document scores alike whatever its language.

Nothing is fitted on XQuAD, CMRC dev or DRCD test, the evaluation collections.

The Chinese index terms (``chinese_terms``) were chosen on CMRC 2018 trial too: the script
reports the lexical feature alone under each of ``m0rank.terms.CHINESE_MODES`` there
(``chinese_terms_on_cmrc_trial``); ``jieba+bigrams`` was best and ships.

Usage: ``python bench/offline_fit_v2.py [--dry-run]``; writes
``bench/results/offline_fit_v2.json`` and (without ``--dry-run``) the weights into
``src/m0rank/builtin/offline-v2/config.json``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from offline_data import CRANFIELD, DATA_DIR, write_result

from m0rank import Reranker
from m0rank.config import ScoreOptions
from m0rank.eval import bm25_run, load_beir
from m0rank.eval.first_stage import top_k
from m0rank.eval.runner import evaluate_run
from m0rank.model.offline.lexical import LexicalScorer
from m0rank.model.offline_v2.reranker import FUSIONS
from m0rank.terms import CHINESE_MODES, detect_language, index_terms
from m0rank.testing.checkset import LANGUAGES, build_checkset
from m0rank.types import Document

CONFIG = Path(__file__).resolve().parents[1] / "src/m0rank/builtin/offline-v2/config.json"
Pair = tuple[str, str, int]  # query text, document text, label
B_GRID = (0.25, 0.4, 0.55, 0.75)  # BM25 length normalisation, chosen per path with the ratio
RATIO_GRID = tuple(round(r, 2) for r in np.arange(0.0, 3.01, 0.1))  # w_lexical / w_dense
E5_GRID = tuple(round(r, 2) for r in np.arange(0.0, 8.01, 0.5))  # w_e5 / w_dense
Columns = tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]  # dense, lexical, e5, path


def features(reranker: Reranker, pairs: list[Pair], name: str) -> Columns:
    """``(dense, lexical, e5, path)`` of every pair through the model's own preprocess (kept
    in ``$M0RANK_FIT_CACHE/<name>.npz`` between runs when that variable is set)."""
    folder = os.environ.get("M0RANK_FIT_CACHE")
    cached = Path(folder) / f"{name}.npz" if folder else None
    if cached is not None and cached.exists():
        data = np.load(cached)
        if len(data["dense"]) == len(pairs) and "e5" in data:
            return data["dense"], data["lexical"], data["e5"], list(data["paths"])
    out = _features(reranker, pairs)
    if cached is not None:
        np.savez(cached, dense=out[0], lexical=out[1], e5=out[2], paths=np.array(out[3]))
    return out


def _features(reranker: Reranker, pairs: list[Pair]) -> Columns:
    model = reranker.model
    columns: tuple[list[float], list[float], list[float]] = ([], [], [])
    paths: list[str] = []
    for start in range(0, len(pairs), 400):
        chunk = pairs[start:start + 400]
        prepared = reranker.engine.prepare(
            [(Document(text=q), Document(text=d)) for q, d, _ in chunk], ScoreOptions())
        batch = model.features(prepared)
        for column, values in zip(columns, (batch.dense, batch.lexical, batch.e5), strict=True):
            column.extend(values)
        paths.extend(p.payload.path for p in prepared)
    return np.array(columns[0]), np.array(columns[1]), np.array(columns[2]), paths


def lexical_by_b(reranker: Reranker, pairs: list[Pair]) -> dict[float, np.ndarray]:
    """The lexical feature of every pair for each ``bm25_b`` of :data:`B_GRID`, over the
    terms the model itself indexes (documents cut as ``ScoreOptions()`` cuts them)."""
    model = reranker.model
    cut = ScoreOptions().effective_max_doc_length
    terms = [(model.terms_of(q), model.terms_of(d, cut)) for q, d, _ in pairs]
    idf, settings = model.lexical["english"].idf, model.settings
    out = {}
    for b in B_GRID:
        scorer = LexicalScorer(idf=idf, k1=settings.bm25_k1, b=b, avgdl=settings.bm25_avgdl)
        out[b] = np.array([scorer.score(q, d) for q, d in terms])
    return out


def fit(dense: np.ndarray, lexical_by: dict[float, np.ndarray], labels: np.ndarray,
        groups: np.ndarray, e5: np.ndarray | None = None) -> dict[str, object]:
    """As the first generation, with ``bm25_b`` and (given ``e5``) the e5 share chosen too:
    the ``(bm25_b, ratio, e5_ratio)`` (ratios ``w_lexical / w_dense`` and ``w_e5 / w_dense``)
    that gives the best mean nDCG@10 (4 decimals) over the fitting queries (``groups``: a
    query id per pair); then scale and bias by logistic regression with balanced classes on
    ``dense + ratio * lexical + e5_ratio * e5``. With e5 the best nDCG is a plateau (many
    choices tie on the multilingual data), so ties go to the choice whose logistic fit has the
    lowest class-balanced log-loss: among equally good rankings, the best calibrated scores."""
    e5 = np.zeros_like(dense) if e5 is None else e5
    e5_grid = E5_GRID if e5.any() else (0.0,)
    by_choice = {(b, r, e): round(_mean_ndcg(dense + r * lexical + e * e5, labels, groups), 4)
                 for b, lexical in lexical_by.items() for r in RATIO_GRID for e in e5_grid}
    best = max(by_choice.values())
    tied = {choice: _logistic(dense + choice[1] * lexical_by[choice[0]] + choice[2] * e5,
                              labels) for choice, value in by_choice.items() if value == best}
    b, ratio, e5_ratio = min(tied, key=lambda c: (tied[c][2], -c[1], -c[2], c[0]))
    scale, bias, loss = tied[b, ratio, e5_ratio]
    return {"w_dense": round(scale, 3), "w_lexical": round(scale * ratio, 3),
            "bias": round(bias, 3), "bm25_b": b, "w_e5": round(scale * e5_ratio, 3),
            "ratio": ratio, "e5_ratio": e5_ratio, "balanced_log_loss": round(loss, 4),
            "choices_tied_at_best_ndcg": len(tied),
            "fit_ndcg@10_by_b_ratio_e5": {f"b={b} ratio={r} e5={e}": v
                                          for (b, r, e), v in by_choice.items()}}


def _logistic(z: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    """Scale, bias and class-balanced log-loss of a balanced logistic regression on ``z``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    model = LogisticRegression(class_weight="balanced").fit(z.reshape(-1, 1), labels)
    share = labels.mean()
    weights = np.where(labels == 1, 0.5 / share, 0.5 / (1 - share))
    loss = log_loss(labels, model.predict_proba(z.reshape(-1, 1))[:, 1], sample_weight=weights)
    return float(model.coef_[0][0]), float(model.intercept_[0]), float(loss)


def _mean_ndcg(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    """Mean nDCG@10 (binary gains) over the groups that have a relevant pair."""
    values = []
    discounts = 1.0 / np.log2(np.arange(2, 12))
    for rows in _group_rows(groups):
        gains = labels[rows][np.argsort(-scores[rows], kind="stable")][:10]
        ideal = np.sort(labels[rows])[::-1][:10]
        if ideal.sum() > 0:
            values.append(float((gains * discounts[: len(gains)]).sum()
                                / (ideal * discounts[: len(ideal)]).sum()))
    return float(np.mean(values))


_ROWS_CACHE: dict[int, tuple[np.ndarray, list[np.ndarray]]] = {}


def _group_rows(groups: np.ndarray) -> list[np.ndarray]:
    """Row indices of each group in ``np.unique`` order, each in row order (computed once per
    ``groups`` array: the fit's grid asks for them thousands of times)."""
    cached = _ROWS_CACHE.get(id(groups))
    if cached is not None and cached[0] is groups:
        return cached[1]
    order = np.argsort(groups, kind="stable")
    _, starts = np.unique(groups[order], return_index=True)
    rows = np.split(order, starts[1:])
    _ROWS_CACHE[id(groups)] = (groups, rows)
    return rows


def collection_pairs(folder: Path) -> tuple[list[Pair], list[tuple[str, str]], object]:
    """BM25 top 100 of a BEIR folder as labelled text pairs, their ids, and the collection."""
    collection = load_beir(folder, name=folder.name)  # type: ignore[assignment]
    candidates = top_k(bm25_run(collection, 100), 100)
    ids = [(q, d) for q, docs in candidates.items() for d in docs]
    pairs = [(collection.queries[q].text or "", collection.corpus[d].text or "",
              int(collection.qrels.get(q, {}).get(d, 0) > 0)) for q, d in ids]
    return pairs, ids, collection


def checkset_pairs(english_pairs: bool = False) -> tuple[list[Pair], list[str], list[str]]:
    """Every query language against every passage language (en-en left out), a query group
    per pair and its languages (``"de-zh"``: German question, Chinese passage). A group is one
    question against the passages of *all* languages at once, so the fit ranks mixed lists: a
    cross-lingual answer must beat same-language distractors, which is what makes scores
    comparable across languages. (Grouped per passage language instead, the nDCG plateau let
    the log-loss tie-break push e5's weight to the end of its grid, and same-language
    distractors then outscored cross-lingual answers.) ``english_pairs`` keeps en-en pairs."""
    sets = {lang: build_checkset(lang) for lang in LANGUAGES}
    pairs: list[Pair] = []
    groups: list[str] = []
    languages: list[str] = []
    for a in LANGUAGES:
        for b in LANGUAGES:
            if a == b == "en" and not english_pairs:
                continue
            for topic, question in sets[a].queries.items():
                pairs.extend((question, text, int(doc.startswith(f"{topic}-")))
                             for doc, text in sets[b].docs.items())
                groups.extend([f"check/{a}/{topic}"] * len(sets[b].docs))
                languages.extend([f"{a}-{b}"] * len(sets[b].docs))
    return pairs, groups, languages


def english_path(reranker: Reranker) -> dict[str, object]:
    """Fit on Cranfield; 2-fold cross-validated nDCG@10 (``bm25_b``, ratio and weights all
    chosen inside each fold) and the all-query fit."""
    pairs, ids, collection = collection_pairs(CRANFIELD)
    dense, _, _, _ = features(reranker, pairs, "cranfield")
    lexical_by = lexical_by_b(reranker, pairs)
    labels = np.array([label for _, _, label in pairs])
    groups = np.array([q for q, _ in ids])
    odd = np.array([int(q) % 2 == 1 for q, _ in ids])
    cv_run: dict[str, dict[str, float]] = {}
    folds = {}
    for name, train in (("fit_on_odd", odd), ("fit_on_even", ~odd)):
        w = fit(dense[train], {b: x[train] for b, x in lexical_by.items()}, labels[train],
                groups[train])
        folds[name] = _shipped(w) | {"ratio": w["ratio"]}
        held = ~train
        logits = _logits(w, dense, lexical_by, np.zeros_like(dense))[held]
        for (q, d), value in zip(np.array(ids, dtype=object)[held], logits, strict=True):
            cv_run.setdefault(q, {})[d] = float(value)
    weights = fit(dense, lexical_by, labels, groups)
    full = {q: {} for q, _ in ids}
    for (q, d), value in zip(ids, _logits(weights, dense, lexical_by, np.zeros_like(dense)),
                             strict=True):
        full[q][d] = float(value)
    metric = ["ndcg@10"]
    return {"weights": _shipped(weights), "fit": weights, "folds": folds, "pairs": len(pairs),
            "cranfield_ndcg@10_2fold_cv": round(evaluate_run(cv_run, collection.qrels,
                                                             metric)[0]["ndcg@10"], 4),
            "cranfield_ndcg@10_in_sample": round(evaluate_run(full, collection.qrels,
                                                              metric)[0]["ndcg@10"], 4)}


def _logits(weights: dict[str, object], dense: np.ndarray,
            lexical_by: dict[float, np.ndarray], e5: np.ndarray) -> np.ndarray:
    lexical = lexical_by[weights["bm25_b"]]  # type: ignore[index]
    return (weights["w_dense"] * dense + weights["w_lexical"] * lexical  # type: ignore[operator]
            + weights["w_e5"] * e5 + weights["bias"])


def multilingual_path(reranker: Reranker) -> dict[str, object]:
    """Fit on CMRC 2018 trial and the check set (multilingual-path pairs only)."""
    cmrc, ids, _ = collection_pairs(DATA_DIR / "cmrc2018-trial")
    check, check_groups, _ = checkset_pairs()
    pairs = cmrc + check
    groups = np.array([f"cmrc/{q}" for q, _ in ids] + check_groups)
    dense, _, e5, paths = features(reranker, pairs, "multilingual")
    keep = np.array([p == "multilingual" for p in paths])
    labels = np.array([label for _, _, label in pairs])
    lexical_by = {b: x[keep] for b, x in lexical_by_b(reranker, pairs).items()}
    weights = fit(dense[keep], lexical_by, labels[keep], groups[keep], e5[keep])
    cmrc_groups = np.array([q for q, _ in ids])
    return {"weights": _shipped(weights), "fit": weights,
            "pairs": int(keep.sum()), "positives": int(labels[keep].sum()),
            "chinese_terms_on_cmrc_trial": chinese_terms_on_trial(reranker, cmrc, cmrc_groups)}


def chinese_path(reranker: Reranker, multilingual: dict[str, object]) -> dict[str, object]:
    """Fit on DRCD dev and CMRC 2018 trial, Chinese-Chinese pairs only: ``bm25_b`` and the
    weight ratios as every path's (:func:`fit`, best mean nDCG@10), then scale and bias by
    :func:`match_irrelevant` to the ``multilingual`` weights instead of the logistic fit."""
    pairs: list[Pair] = []
    groups: list[str] = []
    for name in ("drcd-dev", "cmrc2018-trial"):
        found, ids, _ = collection_pairs(DATA_DIR / name)
        pairs.extend(found)
        groups.extend(f"{name}/{q}" for q, _ in ids)
    dense, _, e5, _ = features(reranker, pairs, "chinese")
    keep = np.array([reranker.model.fusion_of(q, d) == "chinese" for q, d, _ in pairs])
    labels = np.array([label for _, _, label in pairs])[keep]
    dense, e5 = dense[keep], e5[keep]
    lexical_by = {b: x[keep] for b, x in lexical_by_b(reranker, pairs).items()}
    ranked = fit(dense, lexical_by, labels, np.array(groups)[keep], e5)
    irrelevant = labels == 0
    score = (dense + ranked["ratio"] * lexical_by[ranked["bm25_b"]]  # type: ignore[index]
             + ranked["e5_ratio"] * e5)  # type: ignore[operator]
    target = _logits(multilingual, dense, lexical_by, e5)
    scale, bias = match_irrelevant(score[irrelevant], target[irrelevant])
    weights = {"w_dense": round(scale, 3), "bias": round(bias, 3), "bm25_b": ranked["bm25_b"],
               "w_lexical": round(scale * ranked["ratio"], 3),  # type: ignore[operator]
               "w_e5": round(scale * ranked["e5_ratio"], 3)}  # type: ignore[operator]
    logistic = _shipped(ranked)
    return {"weights": weights, "fit": ranked, "logistic_weights_not_shipped": logistic,
            "pairs": int(keep.sum()), "positives": int(labels.sum()),
            "irrelevant_logit_mean_std": {
                "multilingual_weights": _moments(target[irrelevant]),
                "shipped": _moments(scale * score[irrelevant] + bias),
                "logistic": _moments(_logits(logistic, dense, lexical_by, e5)[irrelevant])}}


def match_irrelevant(score: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """``(scale, bias)`` that give the irrelevant pairs' ``score`` the mean and standard
    deviation of their ``target`` logits.

    Why not the logistic fit: on Chinese-only lists it spread the irrelevant Chinese pairs'
    logits 1.5 times wider than the multilingual weights do (standard deviation 2.53 against
    1.72 on the fitting pairs). The language offset only moves their mean, and their upper
    tail then outscored the relevant English paragraph of a Chinese question (on XQuAD it
    beat every Chinese distractor for 0.30 of the questions, against 0.75 with the
    multilingual weights; that run is not kept). Matched this way, irrelevant Chinese pairs
    spread as they did under the multilingual weights, the language offset still centres
    them, and the ranking among Chinese documents is the fitted one (a positive scale and a
    bias change none)."""
    scale = float(target.std() / score.std())
    return scale, float(target.mean() - scale * score.mean())


def _moments(values: np.ndarray) -> dict[str, float]:
    return {"mean": round(float(values.mean()), 3), "std": round(float(values.std()), 3)}


def chinese_terms_on_trial(reranker: Reranker, pairs: list[Pair],
                           groups: np.ndarray) -> dict[str, float]:
    """Mean nDCG@10 on CMRC 2018 trial of the lexical feature alone (``bm25_b`` 0.75) under
    each Chinese term mode: the measurement that chose ``chinese_terms``."""
    model = reranker.model
    scorer = model.lexical["multilingual"]
    labels = np.array([label for _, _, label in pairs])
    out = {}
    for mode in CHINESE_MODES:
        terms: dict[str, list[str]] = {}
        for text in {t for q, d, _ in pairs for t in (q, d)}:
            terms[text] = index_terms(text, chinese=mode, lexicon=model.lexicon)
        scores = np.array([scorer.score(terms[q], terms[d]) for q, d, _ in pairs])
        out[mode] = round(_mean_ndcg(scores, labels, groups), 4)
    return out


def language_offsets(reranker: Reranker, weights: dict[str, dict[str, object]]
                     ) -> dict[str, object]:
    """The model's ``language_offsets`` under the fitted ``weights`` (fusion -> shipped
    weights): on the check set (every query language against every passage language, en-en
    included), the mean logit of the *irrelevant* pairs of each (query language, document
    language), and the offset that moves it to the English-English mean. Languages are the
    model's own (:func:`m0rank.terms.detect_language`). Within a language pair the offset is
    constant, so no ranking among documents read as one language changes; across languages
    an irrelevant document then scores alike whatever its language."""
    pairs, _, _ = checkset_pairs(english_pairs=True)
    dense, _, e5, _ = features(reranker, pairs, "checkset-all")
    fusions = [reranker.model.fusion_of(q, d) for q, d, _ in pairs]
    lexical_by = lexical_by_b(reranker, pairs)
    logits = np.empty(len(pairs))
    for fusion, w in weights.items():
        rows = np.array([f == fusion for f in fusions])
        logits[rows] = _logits(w, dense, lexical_by, e5)[rows]
    cells = [(detect_language([q]), detect_language([d])) for q, d, _ in pairs]
    irrelevant = np.array([label == 0 for _, _, label in pairs])
    means = {cell: float(logits[irrelevant & np.array([c == cell for c in cells])].mean())
             for cell in sorted(set(cells))}
    reference = means["english", "english"]
    table: dict[str, dict[str, float]] = {}
    for (query_language, document_language), mean in means.items():
        table.setdefault(query_language, {})[document_language] = round(reference - mean, 3)
    return {"offsets": table,
            "irrelevant_mean_logit": {f"{q}->{d}": round(m, 3) for (q, d), m in means.items()},
            "pairs": len(pairs)}


def _shipped(weights: dict[str, object]) -> dict[str, object]:
    return {k: weights[k] for k in ("w_dense", "w_lexical", "bias", "bm25_b", "w_e5")}


def main() -> None:
    """Fit the three sets of weights, report, and write the shipped config."""
    reranker = Reranker.from_pretrained("m0rank-offline")
    report = {"multilingual": multilingual_path(reranker)}
    report["chinese"] = chinese_path(reranker, report["multilingual"]["weights"])
    print(json.dumps(report, indent=2), flush=True)
    report["english"] = english_path(reranker)
    report["language_offsets"] = language_offsets(
        reranker, {name: report[name]["weights"] for name in FUSIONS})
    print(json.dumps(report, indent=2))
    write_result("offline_fit_v2", report)
    if "--dry-run" not in sys.argv:
        config = json.loads(CONFIG.read_text())
        config["english"] = report["english"]["weights"]
        config["multilingual"] = report["multilingual"]["weights"]
        config["chinese"] = report["chinese"]["weights"]
        config["language_offsets"] = report["language_offsets"]["offsets"]
        config.pop("bm25_b", None)  # per path now
        config["fitted_on"] = ("english: Cranfield (all queries; held out only by 2-fold "
                               "cross-validation); multilingual: CMRC 2018 trial + the m0rank "
                               "check set; chinese: DRCD dev + CMRC 2018 trial; "
                               "language_offsets: the check set's irrelevant pairs; "
                               "see bench/offline_fit_v2.py")
        CONFIG.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
