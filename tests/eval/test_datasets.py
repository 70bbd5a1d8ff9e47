"""Loaders, first stage and score cache: real files, exact error messages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from m0rank import InvalidInputError
from m0rank.eval.cache import ScoreCache, model_fingerprint
from m0rank.eval.datasets import load_beir, load_winoground
from m0rank.eval.first_stage import bm25_run, read_trec_run, top_k, write_trec_run
from m0rank.eval.runner import first_stage_result
from m0rank.testing.image_collection import write_page_collection, write_winoground_collection


def _beir(tmp_path: Path, corpus: str, queries: str, qrels: str) -> Path:
    (tmp_path / "qrels").mkdir(parents=True, exist_ok=True)
    (tmp_path / "corpus.jsonl").write_text(corpus, encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text(queries, encoding="utf-8")
    (tmp_path / "qrels" / "test.tsv").write_text(qrels, encoding="utf-8")
    return tmp_path


GOOD_CORPUS = ('{"_id": "d1", "title": "Solar", "text": "panels grew"}\n'
               '{"_id": "d2", "text": "rye bread recipe"}\n')
GOOD_QUERIES = '{"_id": "q1", "text": "solar panels"}\n{"_id": "q2", "text": "unjudged"}\n'
GOOD_QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n"


def test_load_beir_text(tmp_path: Path) -> None:
    collection = load_beir(_beir(tmp_path, GOOD_CORPUS, GOOD_QUERIES, GOOD_QRELS), name="toy")
    assert collection.corpus["d1"].text == "Solar panels grew"  # BEIR: title + " " + text
    assert list(collection.queries) == ["q1"]  # unjudged queries are dropped
    assert collection.qrels == {"q1": {"d1": 1, "d2": 0}}


@pytest.mark.parametrize(("corpus", "queries", "qrels", "message"), [
    ('{"_id": "d1", "text": "x"}\n{"_id": "d2", "text": 5}\n', GOOD_QUERIES, GOOD_QRELS,
     "corpus.jsonl:2: 'text' must be a string, got int"),
    ('{"_id": "d1", "text": "x"}\nnot json\n', GOOD_QUERIES, GOOD_QRELS,
     "corpus.jsonl:2: not valid JSON (Expecting value)"),
    ('{"text": "x"}\n', GOOD_QUERIES, GOOD_QRELS, "corpus.jsonl:1: missing '_id' (got None)"),
    ('{"_id": "d1", "text": "x"}\n{"_id": "d1", "text": "y"}\n', GOOD_QUERIES, GOOD_QRELS,
     "corpus.jsonl:2: duplicate _id 'd1'"),
    ('{"_id": "d1", "metadata": {}}\n', GOOD_QUERIES, GOOD_QRELS,
     "corpus.jsonl:1: row has neither 'text' nor 'image'"),
    ('{"_id": "d1", "image": "missing.png"}\n', GOOD_QUERIES, GOOD_QRELS,
     "corpus.jsonl:1: image file 'missing.png' not found under"),
    (GOOD_CORPUS, '[1, 2]\n', GOOD_QRELS,
     "queries.jsonl:1: expected a JSON object, got list"),
    (GOOD_CORPUS, GOOD_QUERIES, "q1\td1\n", "test.tsv:1: expected 'query-id corpus-id score'"),
    (GOOD_CORPUS, GOOD_QUERIES, "q1\td1\thigh\n", "test.tsv:1: score must be an integer, got 'high'"),
    (GOOD_CORPUS, GOOD_QUERIES, "q1\td1\t1\nq9\td1\t1\n",
     "test.tsv:2: query-id 'q9' is not in queries.jsonl"),
    (GOOD_CORPUS, GOOD_QUERIES, "q1\td9\t1\n", "test.tsv:1: corpus-id 'd9' is not in corpus.jsonl"),
    (GOOD_CORPUS, GOOD_QUERIES, "query-id\tcorpus-id\tscore\n", "test.tsv: no judgments"),
])
def test_malformed_files_name_file_and_line(tmp_path: Path, corpus: str, queries: str,
                                            qrels: str, message: str) -> None:
    folder = _beir(tmp_path, corpus, queries, qrels)
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        load_beir(folder)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(f"{tmp_path / 'corpus.jsonl'}: "
                                                          "cannot read (No such file")):
        load_beir(tmp_path)


def test_image_collection_and_winoground_layouts(tmp_path: Path) -> None:
    pages = load_beir(write_page_collection(tmp_path / "pages"))
    assert len(pages.corpus) == 6 and all(Path(d.image).is_file() for d in pages.corpus.values())
    assert all(d.text is None for d in pages.corpus.values())
    examples = load_winoground(write_winoground_collection(tmp_path / "wino"))
    assert [e.id for e in examples] == ["ex0", "ex1"]
    rows = (tmp_path / "wino" / "examples.jsonl").read_text().splitlines()
    broken = json.loads(rows[1])
    del broken["caption_1"]
    (tmp_path / "wino" / "examples.jsonl").write_text(rows[0] + "\n" + json.dumps(broken) + "\n")
    with pytest.raises(InvalidInputError, match=re.escape("examples.jsonl:2: missing 'caption_1'")):
        load_winoground(tmp_path / "wino")


def test_bm25_on_cranfield_beats_chance_and_is_deterministic(cranfield_dir: Path) -> None:
    collection = load_beir(cranfield_dir)
    assert (len(collection.corpus), len(collection.queries)) == (1400, 225)
    run = bm25_run(collection, k=100)
    result = first_stage_result("BM25", collection, run, ["ndcg@10"])
    # Published BM25 nDCG@10 on Cranfield is about 0.34 (shared/data/cranfield/README.md).
    assert 0.30 < result.metrics["ndcg@10"] < 0.40
    assert top_k(bm25_run(collection, k=100), 10) == top_k(run, 10)


def test_bm25_needs_text(tmp_path: Path) -> None:
    pages = load_beir(write_page_collection(tmp_path / "pages"), name="pages")
    with pytest.raises(InvalidInputError, match=re.escape("pages: BM25 needs document text")):
        bm25_run(pages)


def test_trec_run_round_trip_and_errors(tmp_path: Path) -> None:
    run = {"q1": {"d1": 0.5, "d2": 2.0}, "q2": {"d3": 1.0}}
    write_trec_run(run, tmp_path / "run.trec")
    assert (tmp_path / "run.trec").read_text().splitlines()[0] == "q1 Q0 d2 1 2.000000 m0rank"
    assert read_trec_run(tmp_path / "run.trec") == run
    (tmp_path / "bad.trec").write_text("q1 Q0 d1 1 0.5 tag\nq1 Q0 d2 2 high tag\n")
    with pytest.raises(InvalidInputError, match=re.escape("bad.trec:2: score 'high' is not a")):
        read_trec_run(tmp_path / "bad.trec")
    (tmp_path / "short.trec").write_text("q1 d1 0.5\n")
    with pytest.raises(InvalidInputError, match=re.escape("short.trec:1: expected 'qid Q0 docid "
                                                          "rank score tag', got 3 fields")):
        read_trec_run(tmp_path / "short.trec")


def test_score_cache_persists_and_keys_by_model_dataset_options(tmp_path: Path) -> None:
    path = tmp_path / "scores.sqlite"
    with ScoreCache(path, model="m@1", dataset="toy", options={"max_length": 10}) as cache:
        cache.put("q1", {"d1": 0.25, "d2": 0.5})
    with ScoreCache(path, model="m@1", dataset="toy", options={"max_length": 10}) as cache:
        assert cache.get("q1", ["d1", "d2", "d3"]) == {"d1": 0.25, "d2": 0.5}
        assert cache.count() == 2
    for other in ({"model": "m@2", "dataset": "toy"}, {"model": "m@1", "dataset": "other"}):
        with ScoreCache(path, options={"max_length": 10}, **other) as cache:
            assert cache.get("q1", ["d1"]) == {}
    with ScoreCache(path, model="m@1", dataset="toy", options={"max_length": 20}) as cache:
        assert cache.get("q1", ["d1"]) == {}


def test_model_fingerprint_changes_with_weights(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"a" * 10)
    first = model_fingerprint(str(tmp_path))
    assert first.startswith(f"{tmp_path}@") and model_fingerprint(str(tmp_path)) == first
    (tmp_path / "model.safetensors").write_bytes(b"b" * 10)
    assert model_fingerprint(str(tmp_path)) != first
    assert model_fingerprint("org/some-model") == "org/some-model"
