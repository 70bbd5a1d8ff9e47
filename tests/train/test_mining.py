"""Hard-negative mining from a BEIR folder: BM25's and a model's top non-relevant documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from m0rank import Reranker
from m0rank.errors import InvalidInputError
from m0rank.eval import bm25_run, load_beir
from m0rank.train import mine_negatives


def test_bm25_negatives_are_the_top_non_relevant_hits(beir_dir: Path) -> None:
    collection = load_beir(beir_dir)
    examples = mine_negatives(collection, num_negatives=2, depth=10)
    assert [e.source for e in examples] == [f"{beir_dir.name} query q1",
                                            f"{beir_dir.name} query q2"]
    q1 = examples[0]
    assert [d.text for d in q1.pos] == [collection.corpus["d1"].text, collection.corpus["d4"].text]
    run = bm25_run(collection, k=10)["q1"]
    ranked = sorted((d for d in run if d not in ("d1", "d4")), key=lambda d: (-run[d], d))
    assert [d.text for d in q1.neg] == [collection.corpus[d].text for d in ranked[:2]]


def test_model_negatives_and_query_subset(beir_dir: Path) -> None:
    collection = load_beir(beir_dir)
    dummy = Reranker.from_pretrained("m0rank-dummy")
    examples = mine_negatives(collection, method="model", reranker=dummy, query_ids=["q2"],
                              num_negatives=3)
    assert len(examples) == 1 and examples[0].pos[0].text == collection.corpus["d3"].text
    assert collection.corpus["d3"].text not in [d.text for d in examples[0].neg]
    candidates = [d for d in bm25_run(collection, k=100)["q2"] if d != "d3"]
    assert sorted(d.text for d in examples[0].neg) == sorted(collection.corpus[d].text
                                                             for d in candidates)


def test_mining_errors(beir_dir: Path) -> None:
    collection = load_beir(beir_dir)
    with pytest.raises(InvalidInputError, match="method must be one of bm25, model, got 'x'"):
        mine_negatives(collection, method="x")
    with pytest.raises(InvalidInputError, match="needs a reranker"):
        mine_negatives(collection, method="model")
    with pytest.raises(InvalidInputError, match=r"unknown query ids \['q9'\]"):
        mine_negatives(collection, query_ids=["q9"])
