"""Batch reranking throughput: ``--engine local`` against ``--engine ray``, 1 and 2 workers.

Pairs: the first ``--queries`` Cranfield queries x ``--docs`` documents each (text), scored by a
model (default: the tiny random jina-m0 checkpoint, whose forward is cheap, so the per-pair
overhead of the engines shows). Wall times include model loading in every worker (what a job
pays); Ray's cluster start (``ray.init``) is timed separately. The Ray overhead per pair is
``(wall_ray - wall_local) / pairs`` at the same worker count (mostly a fixed start cost: actor
start, imports and model load in each actor), and its marginal part is the difference of the
per-pair slopes measured between two job sizes (``--queries`` and 4x as many).

    .venv/bin/python bench/batch.py --out bench/results/batch_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

CRANFIELD = Path(__file__).resolve().parents[2] / "shared" / "data" / "cranfield"


def write_pairs(path: Path, queries: int, docs: int) -> int:
    """Cranfield queries x the first ``docs`` corpus documents, as ``pairs.jsonl``."""
    def read(name: str, n: int) -> list[dict]:
        with (CRANFIELD / name).open() as handle:
            return [json.loads(next(handle)) for _ in range(n)]
    qs, ds = read("queries.jsonl", queries), read("corpus.jsonl", docs)
    with path.open("w") as out:
        for q in qs:
            for d in ds:
                out.write(json.dumps({"query_id": q["_id"], "query": q["text"],
                                      "doc_id": d["_id"], "document": d["text"]}) + "\n")
    return len(qs) * len(ds)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model (default: tiny random jina-m0 checkpoint)")
    parser.add_argument("--queries", type=int, default=16)
    parser.add_argument("--docs", type=int, default=25)
    parser.add_argument("--shard-size", type=int, default=50)
    parser.add_argument("--engines", default="local,ray")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    from m0rank.batch import BatchJob, run_batch

    work = Path(tempfile.mkdtemp(prefix="m0rank-bench-batch-"))
    model = args.model
    if model is None:
        from m0rank.testing.checkpoints import write_m0_checkpoint

        model = str(write_m0_checkpoint(work / "tiny-m0", seed=0))
    sizes = {"small": args.queries, "large": 4 * args.queries}
    paths = {name: work / f"pairs-{name}.jsonl" for name in sizes}
    counts = {name: write_pairs(paths[name], n, args.docs) for name, n in sizes.items()}
    pairs = counts["small"]
    report: dict = {
        "machine": "2-core AMD EPYC CPU (shared with other jobs), 24 GB, no GPU",
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "model": args.model or "tiny random jina-m0 checkpoint (m0rank.testing, TINY_SIZES)",
        "pairs": counts, "queries": sizes, "docs_per_query": args.docs,
        "shard_size": args.shard_size, "runs": {},
    }
    engines = args.engines.split(",")
    if "ray" in engines:
        import ray

        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        report["ray_init_s"] = round(time.perf_counter() - start, 2)
        report["ray"] = ray.__version__
    for size in sizes:
        for engine in engines:
            for workers in (1, 2):
                output = work / f"{size}-{engine}-{workers}.parquet"
                start = time.perf_counter()
                summary = run_batch(BatchJob(input=paths[size], output=output, model=model,
                                             engine=engine, workers=workers,
                                             shard_size=args.shard_size,
                                             model_kwargs={"device": "cpu"}))
                wall = time.perf_counter() - start
                report["runs"][f"{size}_{engine}_{workers}"] = {
                    "pairs": counts[size], "wall_s": round(wall, 2),
                    "pairs_per_s": round(counts[size] / wall, 1), "failures": summary.failures}
    runs = report["runs"]
    extra_pairs = counts["large"] - counts["small"]
    for workers in (1, 2):
        if f"small_ray_{workers}" not in runs or f"small_local_{workers}" not in runs:
            continue
        extra = runs[f"small_ray_{workers}"]["wall_s"] - runs[f"small_local_{workers}"]["wall_s"]
        slope = {e: (runs[f"large_{e}_{workers}"]["wall_s"]
                     - runs[f"small_{e}_{workers}"]["wall_s"]) / extra_pairs
                 for e in ("local", "ray")}
        report[f"ray_overhead_{workers}_workers"] = {
            "ms_per_pair_at_small_job": round(1000 * extra / pairs, 2),
            "fixed_start_s": round(extra - pairs * (slope["ray"] - slope["local"]), 2),
            "marginal_ms_per_pair": round(1000 * (slope["ray"] - slope["local"]), 3),
            "local_marginal_ms_per_pair": round(1000 * slope["local"], 3),
            "ray_marginal_ms_per_pair": round(1000 * slope["ray"], 3)}
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
