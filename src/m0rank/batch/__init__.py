"""``m0rank batch``: score millions of (query, document) pairs into sharded parquet.

Rows are grouped per query (so the engine packs a query's documents into shared micro-batches),
groups are packed into shards of a fixed size in input order (so a rerun cuts the same shards and
``--resume`` is exact), and each shard is written atomically. Bad rows go to
``<output>.errors.jsonl`` with their reason instead of failing the job.
"""

from m0rank.batch.job import BatchJob, BatchSummary, run_batch
from m0rank.batch.readers import PairRow, read_pairs

__all__ = ["BatchJob", "BatchSummary", "PairRow", "read_pairs", "run_batch"]
