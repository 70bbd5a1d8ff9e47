"""Evaluation during training, through the public ``m0rank.eval`` harness.

The collection's BM25 run is computed once; each evaluation reranks its top ``k`` with the
model being trained (wrapped as an :class:`m0rank.Reranker`, dropout off).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m0rank.eval import DEFAULT_METRICS, Collection, bm25_run, load_beir, model_result
from m0rank.eval.first_stage import Run
from m0rank.eval.runner import first_stage_result

__all__ = ["EvalSet", "load_eval_set", "evaluate"]


@dataclass(frozen=True)
class EvalSet:
    """A collection and its BM25 first stage.

    Attributes:
        collection: Queries, corpus, qrels.
        first_stage: BM25 run (top ``k``).
        bm25: BM25's own metrics.
        k: Candidates reranked per query.
    """

    collection: Collection
    first_stage: Run
    bm25: dict[str, float]
    k: int


def load_eval_set(folder: str | Path, k: int) -> EvalSet:
    """Read a BEIR folder (``qrels/test.tsv``) and run BM25 once."""
    collection = load_beir(folder)
    run = bm25_run(collection, k=k)
    bm25 = first_stage_result("BM25", collection, run, DEFAULT_METRICS).metrics
    return EvalSet(collection, run, bm25, k)


def evaluate(reranker: Any, eval_set: EvalSet, module: Any, label: str) -> dict[str, float]:
    """Metrics of ``reranker`` on ``eval_set``; ``module`` is put in eval mode meanwhile."""
    was_training = module.training
    module.eval()
    try:
        result = model_result(label, reranker, eval_set.collection, eval_set.first_stage,
                              k=eval_set.k, metrics=DEFAULT_METRICS)
    finally:
        module.train(was_training)
    return dict(result.metrics)
