"""``run_evaluation`` and its typed parts with a fake scorer: no model, no torch, milliseconds."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from m0rank import InvalidInputError, PairScore
from m0rank.eval.first_stage import write_trec_run
from m0rank.eval.report import save_report
from m0rank.eval.runner import (
    ALL_DOCUMENTS,
    WINOGROUND_STAGE,
    BeirDataset,
    CacheSpec,
    EvalOptions,
    SkippedCell,
    WinogroundDataset,
    load_dataset,
    run_evaluation,
)
from m0rank.testing.image_collection import write_page_collection, write_winoground_collection

CORPUS = [
    {"_id": "d1", "title": "wing flutter", "text": "flutter of a swept wing at transonic speed"},
    {"_id": "d2", "title": "boundary layer", "text": "laminar boundary layer on a flat plate"},
    {"_id": "d3", "title": "heat transfer", "text": "heat transfer in hypersonic flow"},
    {"_id": "d4", "title": "", "text": "   "},  # empty: scores 0 without reaching the model
]
QUERIES = [{"_id": "q1", "text": "wing flutter"}, {"_id": "q2", "text": "boundary layer"},
           {"_id": "q3", "text": "hypersonic heat transfer"}]
QRELS = [("q1", "d1", 1), ("q2", "d2", 2), ("q3", "d3", 1)]


def write_text_collection(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    for name, rows in (("corpus", CORPUS), ("queries", QUERIES)):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in QRELS))
    return folder


class OverlapScorer:
    """Scores a text document by the share of query words it contains; refuses images
    unless ``reads_images`` (then the image file name decides)."""

    def __init__(self, name: str, reads_images: bool = False) -> None:
        self.model_name, self.reads_images, self.pairs = name, reads_images, 0

    def score(self, query: Any, documents: Sequence[Any], *,
              max_length: int | None = None) -> list[PairScore]:
        words = set(str(query.get("text", query) if isinstance(query, dict) else query).split())
        scores = []
        for i, doc in enumerate(documents):
            if "image" in doc and not self.reads_images:
                raise InvalidInputError(f"documents[{i}]: {self.model_name} cannot read images")
            text = doc.get("text") or Path(doc.get("image", "")).stem.replace("-", " ")
            scores.append(len(words & set(text.split())) / max(len(words), 1))
        self.pairs += len(documents)
        return [PairScore(score=s, logit=s, num_tokens=1) for s in scores]


class Loader:
    """Records which names were loaded."""

    def __init__(self, **scorers: OverlapScorer) -> None:
        self.scorers, self.names = scorers, []

    def __call__(self, name: str | None) -> OverlapScorer:
        self.names.append(name)
        return self.scorers[str(name)]


@pytest.fixture()
def text_dir(tmp_path: Path) -> Path:
    return write_text_collection(tmp_path / "aero")


def test_bm25_row_then_each_model_row(text_dir: Path) -> None:
    loader = Loader(overlap=OverlapScorer("overlap"))
    report = run_evaluation([text_dir], ["overlap"], EvalOptions(metrics=("ndcg@10", "mrr@10")),
                            load=loader)
    assert [(r.model, r.dataset) for r in report.results] == [("BM25", "aero"),
                                                              ("overlap", "aero")]
    model_row = report.results[1]
    assert model_row.metrics == {"ndcg@10": 1.0, "mrr@10": 1.0}  # each query's words match
    # BM25 keeps only documents sharing a term, so 2 or 3 candidates per query (not 4 x 3).
    assert 0 < model_row.pairs_scored < 12 and model_row.pairs_cached == 0
    assert report.first_stages == {"aero": "BM25"} and report.skipped == ()
    assert report.settings()["models"] == ["overlap"] and loader.names == ["overlap"]


def test_default_names_load_the_built_in_model(text_dir: Path) -> None:
    scorer = OverlapScorer("built-in")
    loader = Loader(**{"None": scorer})
    report = run_evaluation([text_dir], ["default"], EvalOptions(first_stage="all"),
                            load=loader)
    assert loader.names == [None]
    assert [r.model for r in report.results] == ["built-in"]  # "all documents" has no row
    assert report.results[0].pairs_scored == 12
    assert scorer.pairs == 9  # the empty document scores 0 without reaching the model


def test_first_stage_choice(text_dir: Path, tmp_path: Path) -> None:
    assert load_dataset(text_dir, EvalOptions()).first_stage_label == "BM25"
    every = load_dataset(text_dir, EvalOptions(first_stage="all"))
    assert isinstance(every, BeirDataset) and every.first_stage_label == ALL_DOCUMENTS
    assert set(every.first_stage["q1"]) == {"d1", "d2", "d3", "d4"}
    run_path = tmp_path / "given.trec"
    write_trec_run({"q1": {"d2": 1.0, "d1": 0.5}}, run_path)
    given = load_dataset(text_dir, EvalOptions(run_file=run_path))
    assert given.first_stage_label == "run:given.trec"
    assert isinstance(given, BeirDataset) and given.first_stage == {"q1": {"d2": 1.0, "d1": 0.5}}
    pages = load_dataset(write_page_collection(tmp_path / "pages"), EvalOptions())
    assert pages.first_stage_label == ALL_DOCUMENTS  # auto: image documents have no text


def test_max_queries_keeps_the_first_judged_queries(text_dir: Path) -> None:
    dataset = load_dataset(text_dir, EvalOptions(max_queries=2))
    assert isinstance(dataset, BeirDataset)
    assert list(dataset.collection.queries) == ["q1", "q2"]
    assert list(dataset.collection.qrels) == ["q1", "q2"]


def test_unreadable_dataset_is_a_skipped_cell(text_dir: Path, tmp_path: Path) -> None:
    pages = write_page_collection(tmp_path / "pages")
    report = run_evaluation([text_dir, pages], ["text-only"], EvalOptions(),
                            load=Loader(**{"text-only": OverlapScorer("text-only")}))
    assert [(r.model, r.dataset) for r in report.results] == [("BM25", "aero"),
                                                              ("text-only", "aero")]
    assert report.skipped == (SkippedCell("text-only", "pages",
                                          "documents[0]: text-only cannot read images"),)
    assert report.skipped[0].note() == (
        "– text-only on pages: not run (documents[0]: text-only cannot read images)")


def test_winoground_folder(tmp_path: Path) -> None:
    folder = write_winoground_collection(tmp_path / "wino")
    dataset = load_dataset(folder, EvalOptions())
    assert isinstance(dataset, WinogroundDataset) and len(dataset.examples) == 2
    assert dataset.first_stage_label == WINOGROUND_STAGE
    report = run_evaluation([folder], ["eyes"], EvalOptions(),
                            load=Loader(eyes=OverlapScorer("eyes", reads_images=True)))
    (row,) = report.results
    assert set(row.metrics) == {"text", "image", "group"} and row.pairs_scored == 8


def test_cache_makes_a_rerun_free(text_dir: Path, tmp_path: Path) -> None:
    cache = CacheSpec(path=tmp_path / "scores.sqlite", options={"max_length": None})
    scorer = OverlapScorer("overlap")
    options = EvalOptions(first_stage="all")
    first = run_evaluation([text_dir], ["overlap"], options, load=Loader(overlap=scorer),
                           cache=cache)
    again = run_evaluation([text_dir], ["overlap"], options, load=Loader(overlap=scorer),
                           cache=cache)
    assert (first.results[0].pairs_scored, again.results[0].pairs_scored) == (12, 0)
    assert again.results[0].pairs_cached == 12 and scorer.pairs == 9
    assert again.results[0].metrics == first.results[0].metrics


@pytest.mark.parametrize(("options", "message"), [
    ({"top_k": 0}, "top_k must be >= 1, got 0"),
    ({"metrics": ("ndcg@10", "bleu@4")}, "metric must look like 'ndcg@10'"),
    ({"metrics": ()}, "metrics must name at least one metric"),
    ({"first_stage": "dense"}, "first_stage must be one of ('auto', 'bm25', 'all'), got 'dense'"),
])
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        EvalOptions(**options)


def test_save_report_writes_json_markdown_and_plot(text_dir: Path, tmp_path: Path) -> None:
    report = run_evaluation([text_dir], ["overlap"], EvalOptions(top_k=5),
                            load=Loader(overlap=OverlapScorer("overlap")))
    json_path, md_path, png_path = save_report(report, tmp_path / "out", "aero",
                                               machine="test box",
                                               extra_settings={"device": "cpu"})
    document = json.loads(json_path.read_text())
    assert document["machine"] == "test box"
    assert document["settings"]["first_stage"] == {"aero": "BM25"}
    assert (document["settings"]["top_k"], document["settings"]["device"]) == (5, "cpu")
    assert [r["model"] for r in document["results"]] == ["BM25", "overlap"]
    assert "first stage (aero: BM25), top 5 reranked" in md_path.read_text()
    assert png_path.read_bytes()[:4] == b"\x89PNG"
