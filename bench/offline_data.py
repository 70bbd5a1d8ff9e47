"""Shared pieces of the offline-model benchmarks: Cranfield, its BM25 first stage, nDCG@10.

Cranfield (``shared/data/cranfield``, BEIR layout: 1400 aeronautics abstracts, 225 queries,
1612 judgements) is a collection nobody on this project wrote. The first stage is ``bm25s``
with its English stop words (optionally the Snowball English stemmer); every reranker sees the
same top 100 per query. nDCG@10 comes from ``ranx``.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

DATA = Path(os.environ.get("M0RANK_CRANFIELD", Path(__file__).resolve().parents[2]
                           / "shared/data/cranfield"))
RESULTS = Path(__file__).resolve().parent / "results"
MACHINE = "2-core AMD EPYC CPU, no GPU"
DEPTH = 100


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    return {"machine": MACHINE, "cpus": os.cpu_count(), "python": platform.python_version()}


def load_cranfield() -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """``(corpus, queries, qrels)`` of Cranfield in BEIR layout."""
    corpus = {}
    for line in (DATA / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        corpus[row["_id"]] = row["text"]  # the text already starts with the title
    queries = {}
    for line in (DATA / "queries.jsonl").read_text().splitlines():
        row = json.loads(line)
        queries[row["_id"]] = row["text"]
    qrels: dict[str, dict[str, int]] = {}
    for line in (DATA / "qrels/test.tsv").read_text().splitlines()[1:]:
        qid, did, rel = line.split("\t")
        if int(rel) > 0:
            qrels.setdefault(qid, {})[did] = int(rel)
    return corpus, queries, qrels


def bm25_first_stage(corpus: dict[str, str], queries: dict[str, str], depth: int = DEPTH,
                     stem: bool = False) -> dict[str, dict[str, float]]:
    """Top ``depth`` documents per query by bm25s with English stop words; ``stem=False`` is
    the issue's baseline (nDCG@10 0.339), ``stem=True`` adds the Snowball English stemmer."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english") if stem else None
    ids = list(corpus)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([corpus[i] for i in ids], stopwords="en", stemmer=stemmer,
                                   show_progress=False), show_progress=False)
    qids = list(queries)
    tokens = bm25s.tokenize([queries[q] for q in qids], stopwords="en", stemmer=stemmer,
                            show_progress=False)
    docs, scores = retriever.retrieve(tokens, k=depth, show_progress=False)
    return {qid: {ids[d]: float(s) for d, s in zip(docs[row], scores[row], strict=True)}
            for row, qid in enumerate(qids)}


def ndcg10(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]],
           only: set[str] | None = None) -> float:
    """Mean nDCG@10 over the queries of ``run`` (restricted to ``only`` when given) that
    have judgements; a query without any relevant document is skipped."""
    from ranx import Qrels, Run, evaluate

    keep = [q for q in run if q in qrels and (only is None or q in only)]
    return float(evaluate(Qrels({q: qrels[q] for q in keep}), Run({q: run[q] for q in keep}),
                          "ndcg@10"))


def write_result(name: str, payload: dict[str, object]) -> Path:
    """Write ``bench/results/<name>.json`` with the machine description first."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**machine(), **payload}, indent=2, ensure_ascii=False) + "\n")
    return path
