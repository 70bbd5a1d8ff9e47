"""The harness end to end on a tiny random jina-m0 checkpoint: image path, cache, resume, CLI."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from m0rank.eval.cache import ScoreCache
from m0rank.eval.datasets import load_beir, load_winoground
from m0rank.eval.first_stage import all_documents_run, ranked_ids
from m0rank.eval.metrics import winoground_scores
from m0rank.eval.runner import model_result, rerank_collection, winoground_result
from m0rank.testing.image_collection import (
    write_image_query_collection,
    write_page_collection,
    write_winoground_collection,
)

SMALL_PIXELS = 28 * 28 * 16  # at most 16 image tokens per page: fast on CPU


@pytest.fixture(scope="module")
def small_reranker(m0_checkpoint: Path):  # noqa: ANN201
    from m0rank import Reranker

    return Reranker.from_pretrained(m0_checkpoint, device="cpu", max_pixels=SMALL_PIXELS)


@pytest.fixture(scope="module")
def collections(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("collections")
    return {"pages": write_page_collection(root / "pages"),
            "image-queries": write_image_query_collection(root / "image-queries"),
            "winoground": write_winoground_collection(root / "winoground")}


class CountingScorer:
    """The real reranker, counting pairs and optionally failing after some queries."""

    def __init__(self, reranker, fail_after: int | None = None) -> None:  # noqa: ANN001
        self.reranker, self.fail_after, self.calls, self.pairs = reranker, fail_after, 0, 0

    def score(self, query, documents, *, max_length=None):  # noqa: ANN001, ANN201
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        self.pairs += len(documents)
        return self.reranker.score(query, documents, max_length=max_length)


def test_image_documents_end_to_end_with_cache(small_reranker, collections, tmp_path) -> None:  # noqa: ANN001
    collection = load_beir(collections["pages"])
    first = all_documents_run(collection)
    with ScoreCache(tmp_path / "c.sqlite", model="tiny", dataset="pages") as cache:
        result = model_result("tiny", small_reranker, collection, first, k=10, cache=cache,
                              metrics=["ndcg@5", "recall@5"])
        again = model_result("tiny", small_reranker, collection, first, k=10, cache=cache,
                             metrics=["ndcg@5", "recall@5"])
    assert (result.pairs_scored, result.pairs_cached) == (36, 0)
    assert (again.pairs_scored, again.pairs_cached) == (0, 36)
    assert again.metrics == result.metrics
    assert 0.0 <= result.metrics["ndcg@5"] <= 1.0 and result.metrics["recall@5"] > 0
    # The per-query value follows from the model's own scores of that query's pages.
    doc_ids = list(collection.corpus)
    direct = small_reranker.score(collection.queries["q3"].to_input(),
                                  [{"image": collection.corpus[d].image} for d in doc_ids])
    ranking = ranked_ids({d: s.score for d, s in zip(doc_ids, direct, strict=True)})
    expected = 1.0 if ranking.index("p-weather") < 5 else 0.0
    assert result.per_query["recall@5"]["q3"] == expected


def test_image_queries_against_text_documents(small_reranker, collections) -> None:  # noqa: ANN001
    collection = load_beir(collections["image-queries"])
    assert collection.queries["q1"].image and collection.queries["q1"].text is None
    result = model_result("tiny", small_reranker, collection, all_documents_run(collection),
                          metrics=["recall@5", "recall@10"])
    assert result.pairs_scored == 36 and result.metrics["recall@10"] == 1.0


def test_interrupted_run_resumes_where_it_stopped(small_reranker, collections, tmp_path) -> None:  # noqa: ANN001
    collection = load_beir(collections["pages"])
    candidates = {q: list(collection.corpus) for q in collection.queries}
    path = tmp_path / "resume.sqlite"
    with ScoreCache(path, model="tiny", dataset="pages") as cache, \
            pytest.raises(KeyboardInterrupt):
        rerank_collection(CountingScorer(small_reranker, fail_after=2), collection, candidates,
                          cache)
    with ScoreCache(path, model="tiny", dataset="pages") as cache:
        assert cache.count() == 12  # two queries x six pages survived the interruption
        scorer = CountingScorer(small_reranker)
        resumed, scored, cached = rerank_collection(scorer, collection, candidates, cache)
    assert (scorer.calls, scored, cached) == (4, 24, 12)
    fresh, _, _ = rerank_collection(small_reranker, collection, candidates, None)
    flat = {(q, d): s for q, scores in fresh.items() for d, s in scores.items()}
    assert {(q, d): s for q, scores in resumed.items() for d, s in scores.items()} == \
        pytest.approx(flat, abs=1e-6)


def test_winoground_scores_from_the_model(small_reranker, collections, tmp_path) -> None:  # noqa: ANN001
    examples = load_winoground(collections["winoground"])
    with ScoreCache(tmp_path / "w.sqlite", model="tiny", dataset="wino") as cache:
        result = winoground_result("tiny", small_reranker, "wino", examples, cache)
        again = winoground_result("tiny", small_reranker, "wino", examples, cache)
    matrices = [[[r.score for r in small_reranker.score(c, [{"image": i} for i in e.images])]
                 for c in e.captions] for e in examples]
    assert result.metrics == winoground_scores(matrices)
    assert (result.pairs_scored, again.pairs_scored, again.pairs_cached) == (8, 0, 8)


def test_cli_end_to_end_image_and_winoground(m0_checkpoint, collections, tmp_path) -> None:  # noqa: ANN001
    from m0rank.cli.main import main

    args = ["eval", "--data", str(collections["pages"]), "--data", str(collections["winoground"]),
            "--first-stage", "all", "--model", str(m0_checkpoint), "--device", "cpu",
            "--max-pixels", str(SMALL_PIXELS), "--metrics", "ndcg@5,recall@5",
            "--cache", str(tmp_path / "c.sqlite"), "--out", str(tmp_path / "out"),
            "--name", "tiny", "--no-progress"]
    assert main(args) == 0
    document = json.loads((tmp_path / "out" / "tiny.json").read_text())
    rows = {(r["dataset"], r["model"]): r for r in document["results"]}
    model = m0_checkpoint.name
    assert set(rows) == {("pages", model), ("winoground", model)}
    assert set(rows[("winoground", model)]["metrics"]) == {"text", "image", "group"}
    markdown = (tmp_path / "out" / "tiny.md").read_text()
    assert f"| {model} |" in markdown and "winoground · group" in markdown
    assert (tmp_path / "out" / "tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(args) == 0  # a rerun reads every score from the cache
    rerun = json.loads((tmp_path / "out" / "tiny.json").read_text())["results"]
    assert all(r["pairs_scored"] == 0 and r["pairs_cached"] > 0 for r in rerun)


def test_cli_bm25_and_model_on_cranfield_subset(m0_checkpoint, tmp_path, no_network, cranfield_dir) -> None:  # noqa: ANN001
    from m0rank.cli.main import main

    out = tmp_path / "out"
    assert main(["eval", "--data", str(cranfield_dir), "--max-queries", "4", "--top-k", "5",
                 "--model", str(m0_checkpoint), "--device", "cpu", "--no-cache", "--out",
                 str(out), "--no-progress"]) == 0
    results = json.loads((out / "eval.json").read_text())["results"]
    assert [r["model"] for r in results] == ["BM25", m0_checkpoint.name]
    assert results[1]["pairs_scored"] == 20 and results[0]["queries"] == 4


def test_eval_imports_only_the_public_api() -> None:
    package = Path(__file__).resolve().parents[2] / "src" / "m0rank" / "eval"
    allowed = {"m0rank", "m0rank.api"}
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                if name.startswith("m0rank"):
                    assert name in allowed or name.startswith("m0rank.eval"), (path.name, name)


def test_import_and_help_do_not_load_torch() -> None:
    code = ("import sys, m0rank.eval, m0rank.cli.eval; from m0rank.cli.main import build_parser;"
            " build_parser(); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
