"""``m0rank batch``: score many pairs into sharded parquet (``docs/scale.md``).

Prints a one-line summary (pairs/s, failures, where the errors went) on stderr; exits 0 even
when some rows failed (they are in ``<output>.errors.jsonl``), 2 on bad input or options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from m0rank.cli.common import add_model_arguments, model_kwargs

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``m0rank batch``."""
    add_model_arguments(parser)
    io = parser.add_argument_group("input and output")
    io.add_argument("--input", required=True, type=Path,
                    help="pairs.jsonl / pairs.parquet (query_id, query, doc_id, document[, image])"
                         " or a BEIR folder with --run")
    io.add_argument("--run", type=Path, help="TREC run file naming the pairs of a BEIR folder")
    io.add_argument("--output", required=True, type=Path,
                    help="output parquet folder (scores.parquet); errors: <output>.errors.jsonl")
    io.add_argument("--resume", action="store_true", help="skip shards already written")
    io.add_argument("--shard-size", type=int, default=1024, help="pairs per shard (1024)")
    engine = parser.add_argument_group("engine")
    engine.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local threads, or a ray.data actor pool")
    engine.add_argument("--workers", type=int, default=1, help="model replicas (threads/actors)")
    engine.add_argument("--address", help="Ray cluster address (ray://host:10001); default: a "
                                          "local Ray")
    engine.add_argument("--cpus-per-worker", type=float,
                        help="Ray CPUs per actor (default: split the cluster, fractional)")
    engine.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run the job and print its summary."""
    from m0rank.batch import BatchJob, run_batch

    job = BatchJob(input=args.input, output=args.output, model=args.model, run=args.run,
                   engine=args.engine, workers=args.workers, address=args.address,
                   resume=args.resume, shard_size=args.shard_size,
                   model_kwargs=model_kwargs(args), cpus_per_worker=args.cpus_per_worker,
                   show_progress=not args.no_progress)
    summary = run_batch(job)
    print(f"m0rank batch: {summary.pairs_scored} pairs scored in {summary.seconds:.1f} s "
          f"({summary.pairs_per_second:.1f} pairs/s), {summary.shards_skipped} of "
          f"{summary.shards_total} shards already done, {summary.failures} failed rows "
          f"(see {job.errors_path}); output {job.output}", file=sys.stderr)
    return 0
