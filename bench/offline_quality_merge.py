"""Merge the parts of one ``offline_quality.py`` measurement into ``offline_quality.json``.

The parts ran as separate processes (``--parts text``, ``--parts collections``, ``--parts
pages``) into ``bench/results/offline_quality_<part>.json``; this writes the combined report
with a ``runs`` list that says which figure came from which run. Usage:
``python bench/offline_quality_merge.py`` (the part names are fixed below).
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = [
    "text: `--parts text` (v2 all 240 questions, v1 the first 60), one process",
    "text, pairwise calibration: a second run of the v2 text grid (`--parts text "
    "--v1-queries 0`); same top-1 and calibration, only `calibration_pairwise` comes from it",
    "collections: `--parts collections` (cranfield, cisi, xquad-en/de/zh), then "
    "`--parts collections --collections cmrc2018-dev` after the embedding cache grew to 32,768 "
    "entries (the first run's CMRC pass thrashed the 8,192-entry cache and was stopped)",
    "pages: `--parts pages --v1-queries 30` (v2 all 240 pages per language, v1 30 questions)",
    "the parts ran at the same time on the 2 cores, beside a training job (load average "
    "5-7): their seconds are not speed figures",
]


def _read(name: str) -> dict:
    return json.loads((RESULTS / f"offline_quality_{name}.json").read_text())


def main() -> None:
    """Combine the parts and check that the two text runs agree."""
    text, pairwise = _read("text"), _read("text_pairwise")
    collections, cmrc, pages = _read("collections"), _read("cmrc"), _read("pages")
    cross = text["cross_lingual_text"]
    second = pairwise["cross_lingual_text"]["m0rank-offline"]
    if cross["m0rank-offline"]["top1"] != second["top1"]:
        raise SystemExit("the two text runs disagree: re-run them")
    cross["m0rank-offline"]["calibration_pairwise"] = second["calibration_pairwise"]
    report = {key: text[key] for key in ("machine", "cpus", "python")}
    report["runs"] = RUNS
    report["load_average_1min"] = {name: part["load_average_1min"] for name, part in (
        ("text", text), ("collections", collections), ("cmrc", cmrc), ("pages", pages))}
    report["first_stage"] = text["first_stage"]
    report["cross_lingual_text"] = cross
    report["ndcg@10"] = {**collections["ndcg@10"], **cmrc["ndcg@10"]}
    report["cross_lingual_pages"] = pages["cross_lingual_pages"]
    (RESULTS / "offline_quality.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
