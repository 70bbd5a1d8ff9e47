"""The README's main job (``m0rank rerank`` without ``--model``) and the check-set builder."""

from __future__ import annotations

import json

import pytest

from m0rank.testing.checkset import (
    LANGUAGES,
    MODALITIES,
    build_checkset,
    checkset_run_inputs,
    random_ndcg_at_10,
)


def test_cli_rerank_uses_the_builtin_model(no_network, capsys: pytest.CaptureFixture) -> None:
    from m0rank.cli.main import main

    code = main(["rerank", "--query", "Wie backe ich Sauerteigbrot?",
                 "--doc", "Die Zentralbank erhöht die Zinsen.",
                 "--doc", "Sauerteigbrot backen: Mehl, Wasser, Salz und Sauerteig mischen.",
                 "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, None)
    assert out["model"] == "m0rank-offline"
    assert [r["index"] for r in out["results"]] == [1, 0]
    assert 0.0 <= out["results"][1]["relevance_score"] < out["results"][0]["relevance_score"] <= 1


@pytest.mark.parametrize("language", LANGUAGES)
def test_checkset_shape(language: str) -> None:
    cs = build_checkset(language)
    assert len(cs.queries) == 12 and len(cs.docs) == 24
    assert all(len(rel) == 2 and set(rel) <= set(cs.docs) for rel in cs.qrels.values())
    assert len(set(cs.docs.values())) == 24


def test_checkset_modalities_render_pages() -> None:
    cs = build_checkset("zh")
    for modality in MODALITIES:
        queries, docs = checkset_run_inputs(cs, modality)
        assert set(queries) == set(cs.queries) and set(docs) == set(cs.docs)
    queries, docs = checkset_run_inputs(cs, "mixed")
    sample = docs["ev-a"]
    assert sample["text"] and sample["image"].size[0] == 800


def test_random_baseline_matches_the_formula() -> None:
    # one relevant among 2 documents: nDCG = (1 + 1/log2(3)) / 2
    assert random_ndcg_at_10(2, 1, trials=4000) == pytest.approx(0.8155, abs=0.02)
    assert 0.21 < random_ndcg_at_10(24, 2) < 0.26
