"""First-stage candidates: BM25 (``bm25s``), a TREC run file, or every document.

A *run* maps query id -> {document id -> score}; the candidates a model reranks are the
top ``k`` of the run by score (ties broken by document id, so reruns are identical).
"""

from __future__ import annotations

import logging
from pathlib import Path

from m0rank import InvalidInputError
from m0rank.eval.datasets import Collection

__all__ = ["Run", "bm25_run", "all_documents_run", "read_trec_run", "write_trec_run",
           "top_k", "ranked_ids"]

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]

# Lucene BM25 with the parameters Anserini uses for BEIR baselines (k1=0.9, b=0.4).
BM25_K1 = 0.9
BM25_B = 0.4


def bm25_run(collection: Collection, k: int = 100, *, k1: float = BM25_K1,
             b: float = BM25_B) -> Run:
    """BM25 over the documents' text (title + text), English stopwords, no stemming.

    Raises:
        InvalidInputError: A query or every document has no text (use a run file or
            ``all`` candidates for image collections).
    """
    import bm25s

    doc_ids = [d for d, item in collection.corpus.items() if item.text]
    if not doc_ids:
        raise InvalidInputError(f"{collection.name}: BM25 needs document text; the corpus "
                                f"has none (use --first-stage all or --run FILE)")
    query_ids = list(collection.queries)
    for qid in query_ids:
        if not collection.queries[qid].text:
            raise InvalidInputError(f"{collection.name}: query {qid!r} has no text for BM25 "
                                    f"(use --first-stage all or --run FILE)")
    retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
    texts = [collection.corpus[d].text or "" for d in doc_ids]
    retriever.index(bm25s.tokenize(texts, stopwords="en", show_progress=False),
                    show_progress=False)
    queries = bm25s.tokenize([collection.queries[q].text or "" for q in query_ids],
                             stopwords="en", show_progress=False)
    hits, scores = retriever.retrieve(queries, k=min(k, len(doc_ids)), show_progress=False)
    return {
        qid: {doc_ids[int(i)]: float(s) for i, s in zip(row_hits, row_scores, strict=True) if s > 0}
        for qid, row_hits, row_scores in zip(query_ids, hits, scores, strict=True)
    }


def all_documents_run(collection: Collection) -> Run:
    """Every document is a candidate for every query (small or image-only collections)."""
    return {qid: dict.fromkeys(collection.corpus, 0.0) for qid in collection.queries}


def read_trec_run(path: str | Path) -> Run:
    """Read a TREC run: ``qid Q0 docid rank score tag`` per line.

    Raises:
        InvalidInputError: Unreadable file or a malformed line (file and line named).
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read ({exc.strerror})") from None
    run: Run = {}
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise InvalidInputError(f"{path}:{number}: expected 'qid Q0 docid rank score tag', "
                                    f"got {len(fields)} fields")
        try:
            score = float(fields[4])
        except ValueError:
            raise InvalidInputError(f"{path}:{number}: score {fields[4]!r} is not a "
                                    f"number") from None
        run.setdefault(fields[0], {})[fields[2]] = score
    return run


def write_trec_run(run: Run, path: str | Path, tag: str = "m0rank") -> None:
    """Write ``run`` in TREC format, each query's documents by descending score."""
    with Path(path).open("w", encoding="utf-8") as handle:
        for qid in sorted(run):
            for rank, doc_id in enumerate(ranked_ids(run[qid]), start=1):
                handle.write(f"{qid} Q0 {doc_id} {rank} {run[qid][doc_id]:.6f} {tag}\n")


def ranked_ids(scores: dict[str, float]) -> list[str]:
    """Document ids by descending score; ties by document id (deterministic)."""
    return sorted(scores, key=lambda doc: (-scores[doc], doc))


def top_k(run: Run, k: int) -> dict[str, list[str]]:
    """The best ``k`` document ids per query, best first."""
    return {qid: ranked_ids(scores)[:k] for qid, scores in run.items()}
