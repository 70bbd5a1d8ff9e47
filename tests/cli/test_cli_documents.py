"""``m0rank rerank`` with PDFs, chunking, dedup and diversity; ``m0rank explain``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from m0rank.cli.main import main
from m0rank.testing.checkset import render_passage
from m0rank.testing.pdfs import text_pdf

QUERY = "wind turbine blade fatigue"
PAGES = [["Annual report of the engineering department."],
         ["Budget tables and staffing for the coming year."],
         ["Wind turbine blade fatigue was measured under cyclic loads."],
         ["Appendix: list of abbreviations."]]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture()
def report(tmp_path: Path) -> Path:
    path = tmp_path / "report.pdf"
    path.write_bytes(text_pdf(PAGES))
    return path


@pytest.mark.parametrize("model", ["m0rank-dummy", "m0rank-offline"])
def test_doc_pdf_ranks_page_three_first(capsys, report: Path, model: str) -> None:  # noqa: ANN001
    code, out, _ = _run(capsys, "rerank", "--model", model, "--query", QUERY,
                        "--doc", "cooking pasta", "--doc-pdf", str(report), "--top-n", "3",
                        "--json")
    assert code == 0
    results = json.loads(out)["results"]
    assert (results[0]["index"], results[0]["page"]) == (1, 3)
    assert results[0]["document"] == {"pdf": str(report)}
    assert len(results) == 3


def test_table_shows_page_and_pages_option(capsys, report: Path) -> None:  # noqa: ANN001
    code, out, _ = _run(capsys, "rerank", "--model", "m0rank-dummy", "--query", QUERY,
                        "--doc-pdf", str(report), "--pages", "2-3")
    assert code == 0 and "page 3" in out and "page 1" not in out


def test_chunking_dedup_and_diversity_flags(capsys) -> None:  # noqa: ANN001
    long = " ".join(["Flour and sugar make cakes."] * 60 + ["Wind turbine blade fatigue."])
    code, out, _ = _run(capsys, "rerank", "--model", "m0rank-dummy", "--query", QUERY,
                        "--doc", long, "--doc", long, "--chunk-size", "32", "--chunk-overlap",
                        "8", "--dedup", "--diversity", "0.7", "--json")
    assert code == 0
    results = json.loads(out)["results"]
    start, end = results[0]["chunk"]
    assert "Wind turbine" in long[start:end]
    assert results[1]["duplicate_of"] == results[0]["index"]


def test_explain_writes_the_overlay(capsys, m0_checkpoint: Path, tmp_path: Path) -> None:  # noqa: ANN001
    page = tmp_path / "page.png"
    render_passage("Wind turbine blades fail by fatigue.").save(page)
    out_path = tmp_path / "heat.png"
    code, out, _ = _run(capsys, "explain", "--model", str(m0_checkpoint), "--query", QUERY,
                        "--doc-image", str(page), "--method", "attention", "--layers", "-1",
                        "--out", str(out_path))
    assert code == 0 and "method attention" in out and "overlay written" in out
    with Image.open(out_path) as heat, Image.open(page) as original:
        assert heat.size == original.size


def test_explain_text_prints_word_weights_and_json(capsys) -> None:  # noqa: ANN001
    code, out, _ = _run(capsys, "explain", "--model", "m0rank-dummy", "--query", QUERY,
                        "--doc", "The wind turbine report.", "--block", "1", "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["method"] == "occlusion"
    assert {s["text"] for s in payload["spans"] if s["weight"] > 0} == {"wind", "turbine"}


def test_explain_out_needs_an_image(capsys, tmp_path: Path) -> None:  # noqa: ANN001
    code, _, err = _run(capsys, "explain", "--model", "m0rank-dummy", "--query", QUERY,
                        "--doc", "text", "--out", str(tmp_path / "h.png"))
    assert code == 2 and "--out needs an image" in err


def test_doc_pdf_with_tiny_jina_m0_matches_the_library(capsys, report: Path, m0_checkpoint: Path,
                                                       reranker) -> None:  # noqa: ANN001
    code, out, _ = _run(capsys, "rerank", "--model", str(m0_checkpoint), "--device", "cpu",
                        "--query", QUERY, "--doc-pdf", str(report), "--json")
    assert code == 0
    results = json.loads(out)["results"]
    library = reranker.rank(QUERY, [{"pdf": str(report)}])
    assert [r["page"] for r in results] == [r.page for r in library]
    assert [r["relevance_score"] for r in results] == pytest.approx([r.score for r in library],
                                                                     abs=1e-6)
