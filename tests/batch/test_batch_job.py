"""``m0rank batch`` with the local engine: scores equal ``Reranker.score``, resume is exact,
bad rows go to the error file, shards are deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from m0rank.batch import BatchJob, read_pairs, run_batch
from m0rank.batch.job import iter_scores, make_shards
from m0rank.errors import InvalidInputError


def _expected(reranker, pairs_file: Path) -> dict[tuple[str, str], float]:  # noqa: ANN001
    rows = read_pairs(pairs_file)
    out = {}
    for qid in dict.fromkeys(r.query_id for r in rows):
        group = [r for r in rows if r.query_id == qid]
        for row, result in zip(group, reranker.score(group[0].query, [r.document for r in group]),
                               strict=True):
            out[(qid, row.doc_id)] = result.score
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_local_scores_equal_reranker_score(reranker, m0_checkpoint: Path, pairs_file: Path,
                                           tmp_path: Path, workers: int) -> None:
    output = tmp_path / "scores.parquet"
    summary = run_batch(BatchJob(input=pairs_file, output=output, model=str(m0_checkpoint),
                                 workers=workers, shard_size=3,
                                 model_kwargs={"device": "cpu"}))
    assert (summary.pairs_total, summary.pairs_scored, summary.failures) == (9, 9, 0)
    assert summary.shards_total == 3  # one whole query (3 pairs) per shard
    expected = _expected(reranker, pairs_file)
    got = {(r["query_id"], r["doc_id"]): r["score"] for r in iter_scores(output)}
    assert got.keys() == expected.keys()
    for key, score in expected.items():
        assert abs(got[key] - score) <= 1e-6, key
    table = pq.read_table(output)  # the folder is one parquet dataset
    assert table.num_rows == 9
    assert set(table.column_names) >= {"query_id", "doc_id", "score", "logit", "rank",
                                       "num_tokens"}
    for qid in ("q0", "q1", "q2"):
        ranked = sorted((r for r in iter_scores(output) if r["query_id"] == qid),
                        key=lambda r: r["rank"])
        assert [r["rank"] for r in ranked] == [1, 2, 3]
        assert ranked[0]["score"] >= ranked[1]["score"] >= ranked[2]["score"]


def test_killed_run_resumes_without_rescoring(m0_checkpoint: Path, pairs_file: Path,
                                              tmp_path: Path) -> None:
    output = tmp_path / "scores.parquet"
    job = BatchJob(input=pairs_file, output=output, model=str(m0_checkpoint), shard_size=3,
                   model_kwargs={"device": "cpu"})

    def crash(index: int) -> None:
        if index == 0:
            raise KeyboardInterrupt  # the process dies after the first shard is on disk

    with pytest.raises(KeyboardInterrupt):
        run_batch(job, on_shard=crash)
    with pytest.raises(InvalidInputError, match="pass --resume"):
        run_batch(job)
    resumed = run_batch(BatchJob(**{**job.__dict__, "resume": True}))
    assert (resumed.shards_skipped, resumed.pairs_scored) == (1, 6)
    fresh = tmp_path / "fresh.parquet"
    run_batch(BatchJob(**{**job.__dict__, "output": fresh}))
    assert list(iter_scores(output)) == list(iter_scores(fresh))
    assert [r["row"] for r in iter_scores(output)] == list(range(9))  # no pair twice


def test_bad_rows_go_to_the_error_file(m0_checkpoint: Path, tmp_path: Path) -> None:
    rows = [
        {"query_id": "q", "query": "q text", "doc_id": "ok", "document": "fine"},
        {"query_id": "q", "query": "q text", "doc_id": "empty", "document": "   "},
        {"query_id": "q", "query": "q text", "doc_id": "noimg",
         "document": {"image": str(tmp_path / "missing.png")}},
    ]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    output = tmp_path / "scores.parquet"
    job = BatchJob(input=pairs, output=output, model=str(m0_checkpoint),
                   model_kwargs={"device": "cpu"})
    summary = run_batch(job)
    assert (summary.pairs_scored, summary.failures) == (3, 2)
    assert [r["doc_id"] for r in iter_scores(output)] == ["ok"]
    errors = [json.loads(line) for line in job.errors_path.read_text().splitlines()]
    assert job.errors_path == tmp_path / "scores.parquet.errors.jsonl"
    assert [(e["doc_id"], e["row"]) for e in errors] == [("empty", 1), ("noimg", 2)]
    assert all(e["reason"] for e in errors)


def test_missing_column_names_file_row_and_field(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"query_id": "q", "query": "x", "doc_id": "a", "document": "y"}\n'
                     '{"query_id": "q", "doc_id": "b", "document": "z"}\n')
    with pytest.raises(InvalidInputError) as info:
        read_pairs(pairs)
    assert str(info.value) == f"{pairs}: row 1: missing field 'query'"


def test_parquet_input_and_beir_run(tmp_path: Path) -> None:
    import pyarrow as pa

    table = pa.Table.from_pylist([{"query_id": "q", "query": "x", "doc_id": "a",
                                   "document": "y", "image": None}])
    pq.write_table(table, tmp_path / "pairs.parquet")
    (row,) = read_pairs(tmp_path / "pairs.parquet")
    assert (row.query_id, row.document) == ("q", "y")
    beir = tmp_path / "beir"
    beir.mkdir()
    (beir / "corpus.jsonl").write_text('{"_id": "d1", "title": "T", "text": "body"}\n'
                                       '{"_id": "d2", "text": "other"}\n')
    (beir / "queries.jsonl").write_text('{"_id": "1", "text": "question"}\n')
    (tmp_path / "run.trec").write_text("1 Q0 d2 1 5.0 bm25\n1 Q0 d1 2 3.0 bm25\n")
    rows = read_pairs(beir, run=tmp_path / "run.trec")
    assert [(r.query, r.doc_id, r.document) for r in rows] == [
        ("question", "d2", "other"), ("question", "d1", "T body")]


def test_shards_are_whole_queries_in_input_order() -> None:
    from m0rank.batch.readers import PairRow

    rows = [PairRow(row=i, query_id=q, query=q, doc_id=str(i), document="x")
            for i, q in enumerate("aabbbc")]
    shards = make_shards(rows, 2)
    assert [[r.row for r in s.rows] for s in shards] == [[0, 1], [2, 3, 4], [5]]


def test_cli_runs_a_job_and_reports(m0_checkpoint: Path, pairs_file: Path, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    from m0rank.cli.main import main

    output = tmp_path / "scores.parquet"
    argv = ["batch", "--model", str(m0_checkpoint), "--device", "cpu", "--input",
            str(pairs_file), "--output", str(output), "--shard-size", "3", "--no-progress"]
    assert main(argv) == 0
    assert "9 pairs scored" in capsys.readouterr().err
    assert main(argv) == 2  # exists without --resume
    assert "pass --resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert "3 of 3 shards already done" in capsys.readouterr().err
