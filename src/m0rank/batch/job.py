"""The batch job: deterministic shards, per-query scoring, atomic shard files, resume.

Output layout (``--output scores.parquet``)::

    scores.parquet/part-00000.parquet ...   one file per shard (a parquet dataset folder)
    scores.parquet/_manifest.json           job fingerprint; resume refuses a different job
    scores.parquet/_errors-00000.jsonl      bad rows of a shard (merged at the end)
    scores.parquet.errors.jsonl             every bad row with its reason

A shard file appears only complete (written to a temporary name, then renamed), so after a crash
``--resume`` skips exactly the shards whose file exists and no pair is scored twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from m0rank.batch.readers import PairRow, read_pairs
from m0rank.errors import InvalidInputError, M0RankError

__all__ = ["BatchJob", "BatchSummary", "Shard", "make_shards", "run_batch", "score_shard",
           "SCORE_COLUMNS"]

logger = logging.getLogger(__name__)

SCORE_COLUMNS = ("row", "query_id", "doc_id", "score", "logit", "rank", "num_tokens")
MANIFEST = "_manifest.json"


@dataclass(frozen=True, kw_only=True)
class BatchJob:
    """What ``m0rank batch`` runs.

    Args:
        input: ``.jsonl``/``.parquet`` pairs, or a BEIR folder (with ``run``).
        output: Output folder (``scores.parquet``), a parquet dataset of shard files.
        model: Checkpoint folder, hub id or built-in name (``None``: the offline model).
        run: TREC run file when ``input`` is a BEIR folder.
        engine: ``"local"`` (threads in this process) or ``"ray"`` (``ray.data`` actor pool).
        workers: Model replicas (threads or Ray actors).
        address: Ray cluster (``ray://host:10001``); ``None`` starts a local Ray.
        resume: Skip the shards already written.
        shard_size: Pairs per shard (whole queries are kept in one shard).
        model_kwargs: Extra ``Reranker.from_pretrained`` options (device, dtype...).
        cpus_per_worker: Ray CPUs per actor; ``None`` splits the cluster's CPUs evenly
            (fractional on small machines, so the data reader is never starved).
        show_progress: A progress bar over shards.
    """

    input: Path
    output: Path
    model: str | None = None
    run: Path | None = None
    engine: str = "local"
    workers: int = 1
    address: str | None = None
    resume: bool = False
    shard_size: int = 1024
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    cpus_per_worker: float | None = None
    show_progress: bool = False

    @property
    def errors_path(self) -> Path:
        """``<output>.errors.jsonl``."""
        return self.output.with_name(self.output.name + ".errors.jsonl")


@dataclass(frozen=True, kw_only=True)
class Shard:
    """Consecutive whole-query groups of the input; ``index`` names its file."""

    index: int
    rows: tuple[PairRow, ...]


@dataclass(frozen=True, kw_only=True)
class BatchSummary:
    """What a run did: ``pairs_scored`` counts only pairs scored in this run."""

    pairs_total: int
    pairs_scored: int
    failures: int
    shards_total: int
    shards_skipped: int
    seconds: float
    tokens: int

    @property
    def pairs_per_second(self) -> float:
        """Pairs scored in this run per wall second."""
        return self.pairs_scored / self.seconds if self.seconds > 0 else 0.0


def make_shards(rows: Sequence[PairRow], shard_size: int) -> list[Shard]:
    """Group rows per query (first-appearance order), pack groups into shards of at least
    ``shard_size`` pairs. Depends only on the input, so resume cuts the same shards."""
    if shard_size < 1:
        raise InvalidInputError(f"shard_size must be at least 1, got {shard_size}")
    groups: dict[tuple[str, str], list[PairRow]] = {}
    for row in rows:
        groups.setdefault((row.query_id, _key(row.query)), []).append(row)
    shards: list[Shard] = []
    current: list[PairRow] = []
    for group in groups.values():
        current.extend(group)
        if len(current) >= shard_size:
            shards.append(Shard(index=len(shards), rows=tuple(current)))
            current = []
    if current:
        shards.append(Shard(index=len(shards), rows=tuple(current)))
    return shards


def score_shard(reranker: Any, shard: Shard) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Score one shard: ``(scored rows, error rows)``. A query's documents go in one
    ``Reranker.score`` call; when that fails, its rows are scored one by one so only the bad
    rows fail (a pair scores the same alone or in a batch)."""
    scored: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    groups: dict[tuple[str, str], list[PairRow]] = {}
    for row in shard.rows:
        groups.setdefault((row.query_id, _key(row.query)), []).append(row)
    for group in groups.values():
        group_scored: list[dict[str, Any]] = []
        try:
            results = reranker.score(group[0].query, [r.document for r in group])
            group_scored = [_scored(r, s) for r, s in zip(group, results, strict=True)]
        except M0RankError:
            for row in group:
                try:
                    (result,) = reranker.score(row.query, [row.document])
                except M0RankError as exc:
                    errors.append(_error(row, exc))
                    continue
                group_scored.append(_scored(row, result))
        _assign_ranks(group_scored)
        scored.extend(group_scored)
    return scored, errors


def run_batch(job: BatchJob, *,
              on_shard: Callable[[int], None] | None = None) -> BatchSummary:
    """Run ``job`` to completion (``on_shard`` is called after each shard is written).

    Raises:
        InvalidInputError: Bad input file, bad options, or an output from another job.
    """
    if job.workers < 1:
        raise InvalidInputError(f"--workers must be at least 1, got {job.workers}")
    if job.engine not in ("local", "ray"):
        raise InvalidInputError(f"--engine must be 'local' or 'ray', got {job.engine!r}")
    rows = read_pairs(job.input, run=job.run)
    shards = make_shards(rows, job.shard_size)
    _prepare_output(job, len(rows), len(shards))
    todo = [s for s in shards if not _shard_path(job.output, s.index).exists()]
    start = time.perf_counter()
    done = _Progress(job, len(shards), len(shards) - len(todo))
    scored = tokens = 0

    def write(index: int, results: list[dict[str, Any]], errors: list[dict[str, Any]]) -> None:
        nonlocal scored, tokens
        _write_shard(job.output, index, results, errors)
        scored += len(results) + len(errors)
        tokens += sum(r["num_tokens"] for r in results)
        done.update()
        if on_shard is not None:
            on_shard(index)

    try:
        if todo:
            if job.engine == "local":
                from m0rank.batch.local import run_local

                run_local(job, todo, write)
            else:
                from m0rank.batch.ray_engine import run_ray

                run_ray(job, todo, write)
    finally:
        done.close()
    failures = _merge_errors(job)
    summary = BatchSummary(pairs_total=len(rows), pairs_scored=scored, failures=failures,
                           shards_total=len(shards), shards_skipped=len(shards) - len(todo),
                           seconds=time.perf_counter() - start, tokens=tokens)
    logger.info("batch done: %s", asdict(summary))
    return summary


def _key(query: Any) -> str:
    return json.dumps(query, sort_keys=True, default=str)


def _scored(row: PairRow, result: Any) -> dict[str, Any]:
    return {"row": row.row, "query_id": row.query_id, "doc_id": row.doc_id,
            "score": float(result.score), "logit": float(result.logit), "rank": 0,
            "num_tokens": int(result.num_tokens)}


def _error(row: PairRow, exc: Exception) -> dict[str, Any]:
    return {"row": row.row, "query_id": row.query_id, "doc_id": row.doc_id,
            "error": type(exc).__name__, "reason": str(exc)}


def _assign_ranks(scored: list[dict[str, Any]]) -> None:
    """Rank 1 is the best document of its query; ties keep input order."""
    order = sorted(range(len(scored)), key=lambda i: (-scored[i]["score"], scored[i]["row"]))
    for rank, i in enumerate(order, start=1):
        scored[i]["rank"] = rank


def _fingerprint(job: BatchJob, pairs: int, shards: int) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(job.input, "rb") if job.input.is_file() else open(job.run or os.devnull, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"input": str(job.input), "input_sha256": digest.hexdigest(), "model": job.model,
            "shard_size": job.shard_size, "pairs": pairs, "shards": shards}


def _prepare_output(job: BatchJob, pairs: int, shards: int) -> None:
    manifest = job.output / MANIFEST
    expected = _fingerprint(job, pairs, shards)
    if job.output.exists():
        if not job.resume:
            raise InvalidInputError(f"--output {job.output} exists: pass --resume to continue "
                                    f"it or remove it")
        if manifest.exists() and json.loads(manifest.read_text()) != expected:
            raise InvalidInputError(f"--output {job.output} belongs to another job (input, "
                                    f"model or shard size differ); it cannot be resumed")
    job.output.mkdir(parents=True, exist_ok=True)
    _atomic_write(manifest, json.dumps(expected, indent=2).encode())


def _shard_path(output: Path, index: int) -> Path:
    return output / f"part-{index:05d}.parquet"


def _write_shard(output: Path, index: int, results: list[dict[str, Any]],
                 errors: list[dict[str, Any]]) -> None:
    """Errors first, then the shard file: its presence means the shard is complete."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors)
    _atomic_write(output / f"_errors-{index:05d}.jsonl", lines.encode())
    schema = pa.schema([("row", pa.int64()), ("query_id", pa.string()), ("doc_id", pa.string()),
                        ("score", pa.float64()), ("logit", pa.float64()), ("rank", pa.int32()),
                        ("num_tokens", pa.int64())])
    table = pa.Table.from_pylist(results, schema=schema)
    path = _shard_path(output, index)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _merge_errors(job: BatchJob) -> int:
    """Concatenate the per-shard error files into ``<output>.errors.jsonl``; count the lines."""
    lines: list[str] = []
    for part in sorted(job.output.glob("_errors-*.jsonl")):
        lines.extend(part.read_text(encoding="utf-8").splitlines(keepends=True))
    _atomic_write(job.errors_path, "".join(lines).encode())
    return len(lines)


class _Progress:
    """A tqdm bar over shards (off unless asked)."""

    def __init__(self, job: BatchJob, total: int, initial: int) -> None:
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, initial=initial, unit="shard", desc="m0rank batch",
                         disable=not job.show_progress)

    def update(self) -> None:
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


def iter_scores(output: Path) -> Iterable[dict[str, Any]]:
    """Every scored row of an output folder, ordered by input row (for tests and tools)."""
    import pyarrow.parquet as pq

    rows: list[dict[str, Any]] = []
    for part in sorted(output.glob("part-*.parquet")):
        rows.extend(pq.read_table(part).to_pylist())
    return sorted(rows, key=lambda r: r["row"])
