"""``--engine ray``: a ``ray.data`` actor pool, one Reranker per actor.

Each input item is one shard; :class:`ShardScorer` actors (``concurrency=workers``) score it and
return the rows, and the driver writes the shard file, so the output folder only has to exist
where ``m0rank batch`` runs. On a small machine each actor asks for a fraction of a CPU: actors
that each take a whole CPU on a 2-CPU machine starve Ray Data's reader and the job hangs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from m0rank.batch.job import BatchJob, Shard, score_shard
from m0rank.batch.readers import PairRow
from m0rank.errors import InvalidInputError

__all__ = ["run_ray", "ShardScorer", "cpus_per_worker"]

logger = logging.getLogger(__name__)


def cpus_per_worker(cluster_cpus: float, workers: int) -> float:
    """CPUs per actor: an even split of the cluster that leaves 0.5 CPU to Ray Data's read
    and split tasks (fractional on small machines, never the whole-CPU-per-actor hang)."""
    return round(max(cluster_cpus - 0.5, 0.1) / workers, 2)


class ShardScorer:
    """A Ray Data callable class: holds one Reranker, scores whole shards."""

    def __init__(self, job: BatchJob) -> None:
        from m0rank.batch.local import load_reranker

        self._reranker = load_reranker(job)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        indexes, scored, errors = [], [], []
        for index, payload in zip(batch["shard"], batch["rows"], strict=True):
            rows = tuple(PairRow(**r) for r in json.loads(payload))
            results, bad = score_shard(self._reranker, Shard(index=int(index), rows=rows))
            indexes.append(int(index))
            scored.append(json.dumps(results))
            errors.append(json.dumps(bad))
        return {"shard": indexes, "scored": scored, "errors": errors}


def run_ray(job: BatchJob, shards: Sequence[Shard],
            write: Callable[[int, list[dict[str, Any]], list[dict[str, Any]]], None]) -> None:
    """Score ``shards`` on Ray (``job.address``, or a local Ray sized to this machine)."""
    try:
        import ray
    except ImportError:
        raise InvalidInputError("--engine ray needs Ray: pip install 'm0rank[ray]'") from None
    if not ray.is_initialized():
        if job.address:
            ray.init(address=job.address)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)
    cpus = job.cpus_per_worker or cpus_per_worker(ray.cluster_resources().get("CPU", 1),
                                                  job.workers)
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= job.workers else 0
    logger.info("ray: %d actors with %.2f CPU and %d GPU each", job.workers, cpus, gpus)
    items = [{"shard": s.index, "rows": json.dumps([_row_dict(r) for r in s.rows])}
             for s in shards]
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        ShardScorer, fn_constructor_kwargs={"job": job}, batch_size=1,
        concurrency=job.workers, num_cpus=cpus, num_gpus=gpus)
    for out in dataset.iter_rows():
        write(int(out["shard"]), json.loads(out["scored"]), json.loads(out["errors"]))


def _row_dict(row: PairRow) -> dict[str, Any]:
    return {"row": row.row, "query_id": row.query_id, "query": row.query, "doc_id": row.doc_id,
            "document": row.document}
