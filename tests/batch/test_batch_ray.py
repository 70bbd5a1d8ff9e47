"""``m0rank batch --engine ray`` on a local 2-CPU Ray: same scores as ``Reranker.score``."""

from __future__ import annotations

from pathlib import Path

import pytest

from m0rank.batch import BatchJob, run_batch
from m0rank.batch.job import iter_scores
from m0rank.batch.ray_engine import cpus_per_worker

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'm0rank[ray]')")


@pytest.fixture(scope="module")
def local_ray():  # noqa: ANN201
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_fractional_cpus_on_a_small_machine() -> None:
    assert cpus_per_worker(2, 1) == 1.5
    assert cpus_per_worker(2, 2) == 0.75


@pytest.mark.parametrize("workers", [1, 2])
def test_ray_scores_equal_reranker_score(local_ray, reranker, m0_checkpoint: Path,  # noqa: ANN001
                                         pairs_file: Path, tmp_path: Path, workers: int) -> None:
    output = tmp_path / "scores.parquet"
    summary = run_batch(BatchJob(input=pairs_file, output=output, model=str(m0_checkpoint),
                                 engine="ray", workers=workers, shard_size=3,
                                 model_kwargs={"device": "cpu"}))
    assert (summary.pairs_scored, summary.failures, summary.shards_total) == (9, 0, 3)
    local = tmp_path / "local.parquet"
    run_batch(BatchJob(input=pairs_file, output=local, model=str(m0_checkpoint), shard_size=3,
                       model_kwargs={"device": "cpu"}))
    got, want = list(iter_scores(output)), list(iter_scores(local))
    assert [(r["query_id"], r["doc_id"], r["rank"]) for r in got] == \
        [(r["query_id"], r["doc_id"], r["rank"]) for r in want]
    for a, b in zip(got, want, strict=True):
        assert abs(a["score"] - b["score"]) <= 1e-6
