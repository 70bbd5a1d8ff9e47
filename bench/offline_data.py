"""Shared pieces of the offline-model benchmarks, on top of ``m0rank.eval``.

Collections are read with ``m0rank.eval.load_beir``; the first stage is
``m0rank.eval.bm25_run`` (the evaluation harness's BM25: Lucene k1 0.9, b 0.4, tokens chosen
by the collection's script and language); nDCG@10 is ``m0rank.eval``'s metric. So a bench
figure and an ``m0rank eval`` figure of the same model on the same collection agree.

- Cranfield (``shared/data/cranfield``, or ``$M0RANK_CRANFIELD``): 1400 aeronautics
  abstracts, 225 queries, 1612 judgements.
- ``bench/data/<name>``: XQuAD en/de/zh, CMRC 2018 and CISI (see ``bench/data/README.md``).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from m0rank.eval import Collection, bm25_run, load_beir
from m0rank.eval.first_stage import Run
from m0rank.eval.runner import evaluate_run

HERE = Path(__file__).resolve().parent
CRANFIELD = Path(os.environ.get("M0RANK_CRANFIELD", HERE.parents[1] / "shared/data/cranfield"))
DATA_DIR = HERE / "data"
RESULTS = HERE / "results"
MACHINE = "2-core AMD EPYC CPU, no GPU"
DEPTH = 100


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    return {"machine": MACHINE, "cpus": os.cpu_count(), "python": platform.python_version(),
            "load_average_1min": round(os.getloadavg()[0], 2)}


def collection(name: str) -> Collection:
    """``"cranfield"`` or a folder of ``bench/data``."""
    return load_beir(CRANFIELD if name == "cranfield" else DATA_DIR / name, name=name)


def load_cranfield() -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    """``(corpus, queries, qrels)`` of Cranfield as plain texts (relevant judgements only)."""
    cran = collection("cranfield")
    qrels = {q: {d: r for d, r in docs.items() if r > 0} for q, docs in cran.qrels.items()}
    return ({d: item.text or "" for d, item in cran.corpus.items()},
            {q: item.text or "" for q, item in cran.queries.items()},
            {q: docs for q, docs in qrels.items() if docs})


def bm25_first_stage(corpus: dict[str, str] | None = None, queries: dict[str, str] | None = None,
                     depth: int = DEPTH) -> Run:
    """Cranfield's top ``depth`` per query by the harness's BM25 (the arguments are kept for
    the callers that pass Cranfield's texts; the collection is read again)."""
    del corpus, queries
    return bm25_run(collection("cranfield"), depth)


def ndcg10(qrels: dict[str, dict[str, int]], run: Run, only: set[str] | None = None) -> float:
    """Mean nDCG@10 over the queries of ``run`` (restricted to ``only``) that have a
    relevant document."""
    keep = {q: run[q] for q in run if q in qrels and any(r > 0 for r in qrels[q].values())
            and (only is None or q in only)}
    return float(evaluate_run(keep, qrels, ["ndcg@10"])[0]["ndcg@10"])


def write_result(name: str, payload: dict[str, object]) -> Path:
    """Write ``bench/results/<name>.json`` with the machine description first."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({**machine(), **payload}, indent=2, ensure_ascii=False) + "\n")
    return path
