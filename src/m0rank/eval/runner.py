"""Score a collection: first stage, rerank the top k through the public API, compute metrics.

The model is anything with ``Reranker.score(query, documents, max_length=...)`` returning
objects with a ``.score`` (an :class:`m0rank.Reranker`); this module never reaches into the
engine or the model families. Every (query, document) score goes through the
:class:`~m0rank.eval.cache.ScoreCache` when one is given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from m0rank import PairScore
from m0rank.eval.cache import ScoreCache
from m0rank.eval.datasets import Collection, WinogroundExample
from m0rank.eval.first_stage import Run, ranked_ids, top_k
from m0rank.eval.metrics import mean_over_queries, winoground_scores

__all__ = ["Scorer", "DatasetResult", "evaluate_run", "rerank_collection", "first_stage_result",
           "model_result", "winoground_result", "DEFAULT_METRICS", "WINOGROUND_METRICS"]

logger = logging.getLogger(__name__)

DEFAULT_METRICS = ("ndcg@10", "recall@10", "mrr@10", "map@100")
WINOGROUND_METRICS = ("text", "image", "group")


class Scorer(Protocol):
    """What the harness needs from a model: :meth:`m0rank.Reranker.score`."""

    def score(self, query: Any, documents: Sequence[Any], *,
              max_length: int | None = None) -> list[PairScore]: ...


@dataclass(frozen=True)
class DatasetResult:
    """One model on one dataset.

    Attributes:
        model: Row label (``"BM25"`` or the model name).
        dataset: Column label.
        metrics: Metric name -> mean value in [0, 1].
        per_query: Metric name -> query id -> value (for box plots and significance tests).
        pairs_scored: Pairs the model scored in this run.
        pairs_cached: Pairs read from the score cache instead.
        seconds: Wall time of this evaluation.
    """

    model: str
    dataset: str
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    pairs_scored: int = 0
    pairs_cached: int = 0
    seconds: float = 0.0


def evaluate_run(run: Run, qrels: dict[str, dict[str, int]],
                 metrics: Iterable[str]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Means and per-query values of ``metrics`` for a scored run."""
    ranked = {qid: ranked_ids(scores) for qid, scores in run.items()}
    means, per_query = {}, {}
    for metric in metrics:
        means[metric], per_query[metric] = mean_over_queries(ranked, qrels, metric)
    return means, per_query


def first_stage_result(label: str, collection: Collection, run: Run,
                       metrics: Sequence[str] = DEFAULT_METRICS) -> DatasetResult:
    """The first stage's own ranking as a row of the table."""
    means, per_query = evaluate_run(run, collection.qrels, metrics)
    return DatasetResult(model=label, dataset=collection.name, metrics=means, per_query=per_query)


def rerank_collection(scorer: Scorer, collection: Collection, candidates: dict[str, list[str]],
                      cache: ScoreCache | None = None, *, max_length: int | None = None,
                      show_progress: bool = False) -> tuple[Run, int, int]:
    """Score every query's candidates; returns the reranked run, pairs scored, pairs cached."""
    run: Run = {}
    scored = cached_count = 0
    for qid in _progress(list(candidates), show_progress, collection.name):
        doc_ids = candidates[qid]
        cached = cache.get(qid, doc_ids) if cache else {}
        missing = [d for d in doc_ids if d not in cached]
        fresh = _score(scorer, collection, qid, missing, max_length) if missing else {}
        if cache and fresh:
            cache.put(qid, fresh)
        run[qid] = {**cached, **fresh}
        scored, cached_count = scored + len(fresh), cached_count + len(cached)
    return run, scored, cached_count


def model_result(label: str, scorer: Scorer, collection: Collection, first_stage: Run, *,
                 k: int = 100, metrics: Sequence[str] = DEFAULT_METRICS,
                 cache: ScoreCache | None = None, max_length: int | None = None,
                 show_progress: bool = False) -> DatasetResult:
    """Rerank the top ``k`` of ``first_stage`` with ``scorer`` and evaluate."""
    start = time.perf_counter()
    candidates = top_k(first_stage, k)
    run, scored, cached = rerank_collection(scorer, collection, candidates, cache,
                                            max_length=max_length, show_progress=show_progress)
    means, per_query = evaluate_run(run, collection.qrels, metrics)
    return DatasetResult(model=label, dataset=collection.name, metrics=means,
                         per_query=per_query, pairs_scored=scored, pairs_cached=cached,
                         seconds=time.perf_counter() - start)


def winoground_result(label: str, scorer: Scorer, name: str,
                      examples: Sequence[WinogroundExample], cache: ScoreCache | None = None,
                      *, show_progress: bool = False) -> DatasetResult:
    """Text, image and group scores: each caption is a query, both images its documents."""
    start = time.perf_counter()
    matrices: list[list[list[float]]] = []
    per_example: dict[str, dict[str, float]] = {metric: {} for metric in WINOGROUND_METRICS}
    scored = cached_count = 0
    for example in _progress(list(examples), show_progress, name):
        rows = []
        for c, caption in enumerate(example.captions):
            qid, doc_ids = f"{example.id}/caption_{c}", ["image_0", "image_1"]
            cached = cache.get(qid, doc_ids) if cache else {}
            if len(cached) < 2:
                results = scorer.score(caption, [{"image": path} for path in example.images])
                cached = {d: r.score for d, r in zip(doc_ids, results, strict=True)}
                scored += 2
                if cache:
                    cache.put(qid, cached)
            else:
                cached_count += 2
            rows.append([cached["image_0"], cached["image_1"]])
        matrices.append(rows)
        for metric, value in winoground_scores([rows]).items():
            per_example[metric][example.id] = value
    return DatasetResult(model=label, dataset=name, metrics=winoground_scores(matrices),
                         per_query=per_example, pairs_scored=scored, pairs_cached=cached_count,
                         seconds=time.perf_counter() - start)


def _score(scorer: Scorer, collection: Collection, qid: str, doc_ids: list[str],
           max_length: int | None) -> dict[str, float]:
    """Model scores of ``doc_ids``; empty documents score 0 without reaching the model."""
    scores = {d: 0.0 for d in doc_ids if collection.corpus[d].is_empty}
    judged = [d for d in doc_ids if d not in scores]
    if judged and not collection.queries[qid].is_empty:
        query = collection.queries[qid].to_input()
        documents = [collection.corpus[d].to_input() for d in judged]
        results = scorer.score(query, documents, max_length=max_length)
        scores.update({d: float(r.score) for d, r in zip(judged, results, strict=True)})
    return {d: scores.get(d, 0.0) for d in doc_ids}


def _progress(items: list[Any], show: bool, name: str) -> Iterable[Any]:
    if not show:
        return items
    from tqdm.auto import tqdm

    bar: Iterable[Any] = tqdm(items, desc=name, unit="query")
    return bar
