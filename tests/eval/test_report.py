"""The announcement-style table: cells, averages, Markdown layout, JSON and the box plot."""

from __future__ import annotations

from pathlib import Path

from m0rank.eval.report import build_table, to_json, to_markdown, write_box_plot
from m0rank.eval.runner import DatasetResult

RESULTS = [
    DatasetResult("BM25", "scifact", {"ndcg@10": 0.665, "recall@10": 0.8},
                  {"ndcg@10": {"q1": 0.5, "q2": 0.83}}),
    DatasetResult("m0", "scifact", {"ndcg@10": 0.75, "recall@10": 0.9},
                  {"ndcg@10": {"q1": 0.7, "q2": 0.8}}, pairs_scored=200, seconds=3.0),
    DatasetResult("m0", "winoground", {"text": 0.5, "image": 0.25, "group": 0.25}),
]


def test_table_cells_and_average() -> None:
    table = build_table(RESULTS)
    assert table.models == ["BM25", "m0"]
    assert table.columns == ["scifact · ndcg@10", "winoground · text", "winoground · image",
                             "winoground · group"]
    assert table.average("BM25") == 0.665  # only the cells it has
    assert table.average("m0") == (0.75 + 0.5 + 0.25 + 0.25) / 4
    assert build_table(RESULTS, {"scifact": "recall@10"}).cells[("m0", "scifact · recall@10")] \
        == 0.9


def test_markdown_layout() -> None:
    markdown = to_markdown(build_table(RESULTS[:2]), caption="Scores x 100")
    assert markdown == (
        "Scores x 100\n\n"
        "| Model | scifact · ndcg@10 | Avg |\n"
        "|---|---:|---:|\n"
        "| BM25 | 66.50 | 66.50 |\n"
        "| m0 | **75.00** | 75.00 |\n")


def test_json_and_box_plots(tmp_path: Path) -> None:
    document = to_json(RESULTS, {"top_k": 100}, machine="test box",
                       skipped=[{"model": "bge", "dataset": "vidore", "reason": "images"}])
    assert document["machine"] == "test box" and document["settings"] == {"top_k": 100}
    assert document["results"][1] == {"model": "m0", "dataset": "scifact",
                                      "metrics": {"ndcg@10": 0.75, "recall@10": 0.9},
                                      "queries": 2, "pairs_scored": 200, "pairs_cached": 0,
                                      "seconds": 3.0}
    assert document["skipped"][0]["dataset"] == "vidore"
    for name, rows in (("one.png", RESULTS[:2]), ("many.png", RESULTS)):
        write_box_plot(rows, tmp_path / name)
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
