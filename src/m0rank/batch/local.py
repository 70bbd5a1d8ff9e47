"""``--engine local``: the same engine without Ray; ``workers`` threads, one Reranker each."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from m0rank.batch.job import BatchJob, Shard, score_shard

__all__ = ["run_local", "load_reranker"]


def load_reranker(job: BatchJob) -> Any:
    """The job's model through the public API."""
    from m0rank.api import Reranker

    return Reranker.from_pretrained(job.model, **job.model_kwargs)


def run_local(job: BatchJob, shards: Sequence[Shard],
              write: Callable[[int, list[dict[str, Any]], list[dict[str, Any]]], None]) -> None:
    """Score ``shards``; shard files are written in this thread, one at a time."""
    if job.workers == 1:
        reranker = load_reranker(job)
        for shard in shards:
            write(shard.index, *score_shard(reranker, shard))
        return
    local = threading.local()
    lock = threading.Lock()

    def work(shard: Shard) -> tuple[int, Any, Any]:
        if not hasattr(local, "reranker"):
            local.reranker = load_reranker(job)
        scored, errors = score_shard(local.reranker, shard)
        with lock:
            write(shard.index, scored, errors)
        return shard.index, None, None

    with ThreadPoolExecutor(max_workers=job.workers, thread_name_prefix="m0rank-batch") as pool:
        for future in [pool.submit(work, shard) for shard in shards]:
            future.result()
