"""m0rank rerank without --model (the v2 default): cross-lingual text and a page image."""

from __future__ import annotations

import json

import pytest
from v2_helpers import BERLIN_DE, EIFFEL_ZH


def test_cli_ranks_a_chinese_answer_to_a_german_question_first(
        no_network, capsys: pytest.CaptureFixture) -> None:
    from m0rank.cli.main import main

    code = main(["rerank", "--query", "Wie hoch ist der Eiffelturm?", "--doc", BERLIN_DE,
                 "--doc", EIFFEL_ZH, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, None)
    assert out["model"] == "m0rank-offline"
    assert [r["index"] for r in out["results"]] == [1, 0]
    assert 0.0 <= out["results"][1]["relevance_score"] < out["results"][0]["relevance_score"] <= 1


def test_cli_ranks_a_chinese_page_for_an_english_question_first(
        offline_v2, zh_eiffel_page, tmp_path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    from m0rank.api import Reranker
    from m0rank.cli.main import main

    # the CLI's own load is covered above; reuse the session's model for speed
    monkeypatch.setattr(Reranker, "from_pretrained", classmethod(lambda cls, *a, **k: offline_v2))
    page = tmp_path / "eiffel.png"
    zh_eiffel_page.save(page)
    code = main(["rerank", "--query", "How tall is the Eiffel Tower?", "--doc", BERLIN_DE,
                 "--doc-image", str(page), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, None)
    assert [r["index"] for r in out["results"]] == [1, 0]
