"""The evaluation harness with chunking: ``Reranker.chunked`` and ``m0rank eval --chunk-size``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m0rank import Reranker
from m0rank.errors import InvalidInputError

LONG = " ".join(["Flour and sugar make cakes."] * 60 + ["Wind turbine blade fatigue."])


def test_chunked_scorer_scores_by_the_best_window() -> None:
    reranker = Reranker.from_pretrained("m0rank-dummy")
    chunked = reranker.chunked(32, 8)
    assert chunked.model_name == "m0rank-dummy (chunk 32/8)"
    [score] = chunked.score("wind turbine", [LONG], max_length=None)
    assert score.score == reranker.score("wind turbine", [LONG], chunk_size=32,
                                         chunk_overlap=8)[0].score
    plain = reranker.score("wind turbine", [LONG])[0]
    assert score.chunk is not None and score.num_tokens > plain.num_tokens
    assert chunked.rank("wind turbine", [LONG, "cakes"])[0].chunk is not None
    with pytest.raises(InvalidInputError, match="chunk_size must be"):
        reranker.chunked(2)


def test_cli_eval_runs_chunked_and_names_it(tmp_path: Path, no_network, cranfield_dir) -> None:  # noqa: ANN001
    from m0rank.cli.main import main

    out = tmp_path / "out"
    cache = tmp_path / "scores.sqlite"
    common = ["eval", "--data", str(cranfield_dir), "--max-queries", "2", "--top-k", "3",
              "--model", "m0rank-dummy", "--cache", str(cache), "--no-progress"]
    assert main([*common, "--out", str(out), "--chunk-size", "16", "--chunk-overlap",
                 "4"]) == 0
    results = json.loads((out / "eval.json").read_text())["results"]
    assert results[1]["model"] == "m0rank-dummy (chunk 16/4)"
    assert results[1]["pairs_scored"] == 6
    # the same cache file does not serve chunked scores to a truncated run
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "eval.json").read_text())["results"]
    assert plain[1]["model"] == "m0rank-dummy" and plain[1]["pairs_scored"] == 6
