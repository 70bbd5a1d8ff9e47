"""Retrieval metrics as small pure functions over one ranked list and its judgments.

Conventions (the same as ranx and trec_eval, so numbers can be cross-checked):

- ``ranking`` is a list of document ids, best first; ``qrels`` maps document id to a graded
  relevance; a document is *relevant* when its grade is > 0.
- Ranks are 1-based: the document at list position ``i`` (0-based) has rank ``i + 1``.
- A query without relevant documents scores 0 on every metric.
- :func:`mean_over_queries` averages over the queries of the *qrels*; a judged query the
  run does not answer counts as 0.

Every function has its formula in its docstring. Each variant has its own name (no flags).
Reference: K. Järvelin and J. Kekäläinen, "Cumulated gain-based evaluation of IR techniques",
TOIS 2002 (nDCG); ranx ``metrics/*.py``; trec_eval ``m_ndcg_cut.c``, ``m_map_cut.c``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from m0rank import InvalidInputError

__all__ = [
    "dcg_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "precision_at_k",
    "mrr_at_k",
    "map_at_k",
    "winoground_scores",
    "METRICS",
    "parse_metric",
    "mean_over_queries",
]

Qrels = Mapping[str, float]


def _relevant(qrels: Qrels) -> set[str]:
    return {doc for doc, grade in qrels.items() if grade > 0}


def dcg_at_k(ranking: Sequence[str], qrels: Qrels, k: int) -> float:
    """Discounted cumulative gain with linear gain.

    ``DCG@k = sum_{i=1..k} rel_i / log2(i + 1)`` where ``rel_i`` is the grade of the document
    at rank ``i`` (0 when unjudged or not relevant).
    """
    return sum(
        max(qrels.get(doc, 0.0), 0.0) / math.log2(rank + 1)
        for rank, doc in enumerate(ranking[:k], start=1)
    )


def ndcg_at_k(ranking: Sequence[str], qrels: Qrels, k: int) -> float:
    """Normalised DCG, the headline metric of BEIR, MIRACL, MLDR and CoIR (k=10), ViDoRe (k=5).

    ``nDCG@k = DCG@k / IDCG@k`` where ``IDCG@k`` is the DCG@k of the judged documents sorted
    by grade (the best possible ranking); 0 when there is no relevant document.
    """
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = sum(grade / math.log2(rank + 1) for rank, grade in enumerate(ideal, start=1))
    return dcg_at_k(ranking, qrels, k) / idcg if idcg > 0 else 0.0


def recall_at_k(ranking: Sequence[str], qrels: Qrels, k: int) -> float:
    """Share of the relevant documents found in the top k (MKQA, M-BEIR).

    ``Recall@k = |relevant ∩ top-k| / |relevant|``.
    """
    relevant = _relevant(qrels)
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranking[:k])) / len(relevant)


def precision_at_k(ranking: Sequence[str], qrels: Qrels, k: int) -> float:
    """``P@k = |relevant ∩ top-k| / k`` (k, not the list length, as trec_eval and ranx)."""
    return len(_relevant(qrels).intersection(ranking[:k])) / k


def mrr_at_k(ranking: Sequence[str], qrels: Qrels, k: int) -> float:
    """Reciprocal rank of the first relevant document within the top k.

    ``RR@k = 1 / rank_first`` if a relevant document is at rank ``<= k``, else 0; averaged
    over queries this is MRR@k.
    """
    relevant = _relevant(qrels)
    for rank, doc in enumerate(ranking[:k], start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def map_at_k(ranking: Sequence[str], qrels: Qrels, k: int) -> float:
    """Average precision cut at k; averaged over queries this is MAP@k.

    ``AP@k = (1 / |relevant|) * sum_{i<=k, doc_i relevant} P@i``, dividing by *all* relevant
    documents (not only those retrievable in k), as trec_eval ``map_cut`` and ranx ``map@k``.
    """
    relevant = _relevant(qrels)
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for rank, doc in enumerate(ranking[:k], start=1):
        if doc in relevant:
            hits += 1
            total += hits / rank
    return total / len(relevant)


def winoground_scores(scores: Sequence[Sequence[Sequence[float]]]) -> dict[str, float]:
    """Winoground's text, image and group scores (Thrush et al., CVPR 2022).

    ``scores[e][c][i]`` is the score of caption ``c`` with image ``i`` in example ``e``.
    Per example, with ``s(c, i)``:

    - text correct  = ``s(0,0) > s(1,0)`` and ``s(1,1) > s(0,1)`` (right caption per image);
    - image correct = ``s(0,0) > s(0,1)`` and ``s(1,1) > s(1,0)`` (right image per caption);
    - group correct = text correct and image correct.

    Each score is the share of correct examples; ties count as wrong (strict ``>``).
    """
    if not scores:
        return {"text": 0.0, "image": 0.0, "group": 0.0}
    text = image = group = 0
    for s in scores:
        text_ok = s[0][0] > s[1][0] and s[1][1] > s[0][1]
        image_ok = s[0][0] > s[0][1] and s[1][1] > s[1][0]
        text, image, group = text + text_ok, image + image_ok, group + (text_ok and image_ok)
    n = len(scores)
    return {"text": text / n, "image": image / n, "group": group / n}


MetricFn = Callable[[Sequence[str], Qrels, int], float]

METRICS: dict[str, MetricFn] = {
    "ndcg": ndcg_at_k,
    "recall": recall_at_k,
    "precision": precision_at_k,
    "mrr": mrr_at_k,
    "map": map_at_k,
}


def parse_metric(name: str) -> tuple[MetricFn, int]:
    """``"ndcg@10"`` -> (``ndcg_at_k``, 10).

    Raises:
        InvalidInputError: Unknown metric or a cutoff that is not a positive integer.
    """
    base, _, cutoff = name.lower().partition("@")
    if base not in METRICS or not cutoff.isdigit() or int(cutoff) < 1:
        raise InvalidInputError(
            f"metric must look like 'ndcg@10' with one of {sorted(METRICS)}, got {name!r}"
        )
    return METRICS[base], int(cutoff)


def mean_over_queries(
    run: Mapping[str, Sequence[str]], qrels: Mapping[str, Qrels], metric: str
) -> tuple[float, dict[str, float]]:
    """Mean of ``metric`` over the judged queries, and the per-query values.

    Queries in ``qrels`` with no relevant document are skipped (as ranx and BEIR do);
    a judged query missing from ``run`` scores 0.
    """
    fn, k = parse_metric(metric)
    per_query = {
        qid: fn(run.get(qid, []), judged, k)
        for qid, judged in qrels.items()
        if _relevant(judged)
    }
    mean = sum(per_query.values()) / len(per_query) if per_query else 0.0
    return mean, per_query
