"""Hard negatives for a BEIR-layout collection: BM25's or a reranker's top non-relevant hits.

Hard negatives (documents a first stage ranks high that are not relevant) are what a reranker
must learn to push down; jina-reranker-v2's and bge-reranker's recipes mine up to 25 per query.
Reusable on its own: ``write_train_jsonl(mine_negatives(load_beir(folder)), "train.jsonl")``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from m0rank.errors import InvalidInputError
from m0rank.eval import Collection, all_documents_run, bm25_run
from m0rank.preprocessing.inputs import to_document
from m0rank.train.data import TrainExample

__all__ = ["mine_negatives", "MINING_METHODS"]

logger = logging.getLogger(__name__)

MINING_METHODS = ("bm25", "model")


def mine_negatives(collection: Collection, *, method: str = "bm25",
                   query_ids: Iterable[str] | None = None, num_negatives: int = 25,
                   depth: int = 100, reranker: Any = None) -> list[TrainExample]:
    """One :class:`TrainExample` per judged query with its hardest negatives.

    Args:
        collection: Corpus, queries and qrels (``m0rank.eval.load_beir``).
        method: ``"bm25"``: BM25's top non-relevant documents (``bm25s``, the evaluation's
            first stage); ``"model"``: BM25's top ``depth`` (every document when the corpus has
            no text) rescored by ``reranker``, its top non-relevant ones kept.
        query_ids: Queries to mine (default: every judged query), e.g. a training split.
        num_negatives: Negatives kept per query, hardest first.
        depth: First-stage candidates looked at per query.
        reranker: Anything with :meth:`m0rank.Reranker.score` (``method="model"``).

    Returns:
        Examples in ``query_ids`` order; queries without a relevant document or without a
        negative among the candidates are skipped (logged).

    Raises:
        InvalidInputError: Unknown method, a missing reranker, or an unknown query id.
    """
    if method not in MINING_METHODS:
        raise InvalidInputError(f"method must be one of {', '.join(MINING_METHODS)}, got "
                                f"{method!r}")
    if method == "model" and reranker is None:
        raise InvalidInputError("method='model' needs a reranker to score the candidates")
    wanted = list(collection.qrels) if query_ids is None else list(query_ids)
    unknown = [q for q in wanted if q not in collection.queries]
    if unknown:
        raise InvalidInputError(f"{collection.name}: unknown query ids {unknown[:5]}")
    has_text = any(item.text for item in collection.corpus.values())
    run = bm25_run(collection, k=depth) if has_text else all_documents_run(collection)
    examples = []
    for qid in wanted:
        candidates = _ranked(run.get(qid, {}))[:depth]
        if method == "model":
            candidates = _rescored(reranker, collection, qid, candidates)
        example = _example(collection, qid, candidates, num_negatives)
        if example is not None:
            examples.append(example)
    logger.info("mined %d of %d queries (%s)", len(examples), len(wanted), method)
    return examples


def _ranked(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda d: (-scores[d], d))


def _rescored(reranker: Any, collection: Collection, qid: str,
              candidates: Sequence[str]) -> list[str]:
    judged = [d for d in candidates if not collection.corpus[d].is_empty]
    if not judged:
        return []
    results = reranker.score(collection.queries[qid].to_input(),
                             [collection.corpus[d].to_input() for d in judged])
    return _ranked({d: float(r.score) for d, r in zip(judged, results, strict=True)})


def _example(collection: Collection, qid: str, candidates: Sequence[str],
             num_negatives: int) -> TrainExample | None:
    qrels = collection.qrels.get(qid, {})
    positives = sorted(d for d, grade in qrels.items() if grade > 0 and d in collection.corpus)
    negatives = [d for d in candidates if qrels.get(d, 0) <= 0
                 and not collection.corpus[d].is_empty][:num_negatives]
    if not positives or not negatives:
        logger.info("query %s skipped: %d positives, %d negatives", qid, len(positives),
                    len(negatives))
        return None
    where = f"{collection.name} query {qid}"
    return TrainExample(
        query=to_document(collection.queries[qid].to_input(), f"{where} query"),
        pos=tuple(to_document(collection.corpus[d].to_input(), f"{where} doc {d}")
                  for d in positives),
        neg=tuple(to_document(collection.corpus[d].to_input(), f"{where} doc {d}")
                  for d in negatives),
        source=where)
