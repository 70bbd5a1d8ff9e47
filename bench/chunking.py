"""Chunked (MaxP) against truncated scoring of long documents built from real text.

Long documents are made by concatenating consecutive documents of a collection, in their
original order (so one long document holds a few whole articles, like MLDR's long documents);
a long document is relevant to a query when any of its parts is (grade: the best part's).
Every query ranks every long document through ``Reranker.rank`` twice:

- ``truncated``: the default, as the reference does (the offline model's MiniLM reads the
  first 256 word pieces; BM25 reads the whole text);
- ``chunked``: ``chunk_size`` tokens per window with ``chunk_overlap``, the document scoring by
  its best window.

Collections: ``xquad-en`` (bench/data, 240 Wikipedia paragraphs, one question each; nothing is
fitted on it) and Cranfield (1400 abstracts, 225 queries; the offline model's three fusion
numbers were fitted on Cranfield's judgements, so its figure is not held-out).

Usage: ``python bench/chunking.py [--model m0rank-offline] [--cranfield-queries 50]``; writes
``bench/results/chunking_long_docs.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from offline_data import load_cranfield, write_result

from m0rank import Reranker
from m0rank.eval.metrics import ndcg_at_k

DATA = Path(__file__).parent / "data"


def read_beir(folder: Path) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """``(corpus, queries, qrels)`` of a BEIR folder, documents in file order."""
    corpus = {}
    for line in (folder / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        corpus[row["_id"]] = " ".join(p for p in (row.get("title"), row["text"]) if p)
    queries = {json.loads(line)["_id"]: json.loads(line)["text"]
               for line in (folder / "queries.jsonl").read_text().splitlines()}
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query, doc, grade = line.split("\t")
        if int(grade) > 0:
            qrels.setdefault(query, {})[doc] = int(grade)
    return corpus, queries, qrels


def long_documents(corpus: dict[str, str], parts: int) -> tuple[list[str], dict[str, int]]:
    """Consecutive groups of ``parts`` documents joined by blank lines, and the long document
    of each original id."""
    ids = list(corpus)
    texts, home = [], {}
    for number, start in enumerate(range(0, len(ids), parts)):
        group = ids[start:start + parts]
        texts.append("\n\n".join(corpus[i] for i in group))
        home.update({i: number for i in group})
    return texts, home


def long_qrels(qrels: dict[str, dict[str, int]], home: dict[str, int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for query, judged in qrels.items():
        for doc, grade in judged.items():
            key = str(home[doc])
            out.setdefault(query, {})[key] = max(grade, out.get(query, {}).get(key, 0))
    return out


def evaluate(reranker: Reranker, texts: list[str], queries: dict[str, str],
             qrels: dict[str, dict[str, int]], **options: int) -> dict[str, float]:
    """Mean nDCG@10 over the judged queries, wall and CPU seconds."""
    scores = []
    wall, cpu = time.perf_counter(), time.process_time()
    for query_id, query in queries.items():
        if query_id not in qrels:
            continue
        results = reranker.rank(query, texts, **options)
        scores.append(ndcg_at_k([str(r.index) for r in results], qrels[query_id], 10))
    return {"ndcg@10": round(sum(scores) / len(scores), 4), "queries": len(scores),
            "wall_s": round(time.perf_counter() - wall, 1),
            "cpu_s": round(time.process_time() - cpu, 1)}


def run_collection(reranker: Reranker, corpus: dict[str, str], queries: dict[str, str],
                   qrels: dict[str, dict[str, int]], parts: int, chunk_size: int,
                   overlap: int) -> dict[str, object]:
    texts, home = long_documents(corpus, parts)
    judged = long_qrels(qrels, home)
    words = [len(t.split()) for t in texts]
    return {
        "long_documents": len(texts), "parts_per_document": parts,
        "words_per_document": {"min": min(words), "median": sorted(words)[len(words) // 2],
                               "max": max(words)},
        "truncated": evaluate(reranker, texts, queries, judged),
        "chunked": {"chunk_size": chunk_size, "chunk_overlap": overlap,
                    **evaluate(reranker, texts, queries, judged, chunk_size=chunk_size,
                               chunk_overlap=overlap)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="m0rank-offline")
    parser.add_argument("--chunk-size", type=int, default=128)
    parser.add_argument("--chunk-overlap", type=int, default=32)
    parser.add_argument("--cranfield-queries", type=int, default=50,
                        help="first N judged Cranfield queries (all 70 long documents each)")
    args = parser.parse_args()
    reranker = Reranker.from_pretrained(args.model)
    load_before = os.getloadavg()[0]
    corpus, queries, qrels = read_beir(DATA / "xquad-en")
    xquad = run_collection(reranker, corpus, queries, qrels, 10, args.chunk_size,
                           args.chunk_overlap)
    corpus, queries, qrels = load_cranfield()
    judged = [q for q in queries if q in qrels][: args.cranfield_queries]
    cranfield = run_collection(reranker, corpus, {q: queries[q] for q in judged}, qrels, 20,
                               args.chunk_size, args.chunk_overlap)
    path = write_result("chunking_long_docs", {
        "model": args.model,
        "load_average_1min": {"before": round(load_before, 2),
                              "after": round(os.getloadavg()[0], 2)},
        "xquad-en (held out: nothing fitted on it)": xquad,
        "cranfield (the offline fusion was fitted on it)": cranfield,
    })
    print(path.read_text())


if __name__ == "__main__":
    main()
