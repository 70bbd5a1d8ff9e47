"""Evaluation harness: local BEIR / image / Winoground collections, BM25 or run-file first
stage, reranking through the public :class:`m0rank.Reranker` API, metrics, cached scores and
reports laid out like the jina-reranker-m0 announcement's tables.

Importing this package does not import torch; models are loaded by the caller.
"""

from __future__ import annotations

from m0rank.eval.cache import ScoreCache, model_fingerprint
from m0rank.eval.datasets import (
    Collection,
    Item,
    WinogroundExample,
    is_winoground,
    load_beir,
    load_winoground,
)
from m0rank.eval.first_stage import all_documents_run, bm25_run, read_trec_run, write_trec_run
from m0rank.eval.metrics import (
    map_at_k,
    mean_over_queries,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
    winoground_scores,
)
from m0rank.eval.report import save_report
from m0rank.eval.runner import (
    DEFAULT_METRICS,
    BeirDataset,
    CacheSpec,
    DatasetResult,
    EvalOptions,
    EvalReport,
    SkippedCell,
    WinogroundDataset,
    evaluate_run,
    first_stage_result,
    load_dataset,
    model_result,
    run_evaluation,
    winoground_result,
)

__all__ = [
    "Collection", "Item", "WinogroundExample", "load_beir", "load_winoground", "is_winoground",
    "bm25_run", "all_documents_run", "read_trec_run", "write_trec_run",
    "ndcg_at_k", "recall_at_k", "mrr_at_k", "map_at_k", "winoground_scores",
    "mean_over_queries", "ScoreCache", "model_fingerprint", "DatasetResult", "DEFAULT_METRICS",
    "evaluate_run", "first_stage_result", "model_result", "winoground_result",
    "EvalOptions", "CacheSpec", "BeirDataset", "WinogroundDataset", "SkippedCell", "EvalReport",
    "load_dataset", "run_evaluation", "save_report",
]
