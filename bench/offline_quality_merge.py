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
    "text: `--parts text --out offline_quality_text` (v2 all 240 questions, v1 the first 60; "
    "top-1, calibration, pairwise and reverse calibration and mixed lists from one run), "
    "re-run with the `chinese` weights (commit after 46799cb)",
    "collections: `--parts collections --out offline_quality_collections` (cranfield, cisi, "
    "xquad-en/de/zh, cmrc2018-dev) at commit 1be26a9; xquad-de re-run at e3193ef (`--parts "
    "collections --collections xquad-de --out offline_quality_xquad_de`): the only collection "
    "texts that e3193ef reads differently are 3 of its 240 questions; the Chinese rows "
    "(xquad-zh, drcd-test, cmrc2018-dev, drcd-dev) re-run with the `chinese` weights "
    "(`--parts collections --collections xquad-zh,drcd-test,cmrc2018-dev,drcd-dev --out "
    "offline_quality_zh`; that run had the logistic scale of the `chinese` weights, which "
    "ranks Chinese documents exactly as the shipped, rescaled ones); the English and German "
    "rows are unchanged by them (other weights)",
    "drcd-dev before the `chinese` weights, when it was still unseen: `--parts collections "
    "--collections drcd-dev --out offline_quality_drcd` at commit 46799cb "
    "(`drcd-dev_before_chinese_weights` below)",
    "pages: `--parts pages --v1-queries 30 --out offline_quality_pages` (v2 all 240 pages per "
    "language, v1 30 questions) at commit 1be26a9, before the `chinese` weights: its top-1 "
    "figures use no Chinese-Chinese pair, its calibration figures for Chinese questions do "
    "(not re-run: about an hour of OCR); since e3193ef 3 of the 240 German questions read as "
    "English again",
    "the first runs of the three parts ran at the same time on the 2 cores, with a test-suite "
    "run beside them (load average 4-7), and the later runs two at a time: their seconds are "
    "not speed figures (offline_speed.json has those)",
]
PARTS = ("text", "collections", "pages")
# Rows measured in their own later runs (see RUNS): part file -> collection row it replaces
# or adds in the collections part.
ROWS = {"xquad_de": ("xquad-de",), "zh": ("xquad-zh", "drcd-test", "cmrc2018-dev", "drcd-dev")}


def _read(name: str) -> dict:
    return json.loads((RESULTS / f"offline_quality_{name}.json").read_text())


def main() -> None:
    """Combine the parts into one report."""
    text, collections, pages = (_read(name) for name in PARTS)
    report = {key: text[key] for key in ("machine", "cpus", "python")}
    report["runs"] = RUNS
    report["load_average_1min"] = {name: part["load_average_1min"] for name, part in (
        ("text", text), ("collections", collections), ("pages", pages))}
    report["first_stage"] = text["first_stage"]
    report["cross_lingual_text"] = text["cross_lingual_text"]
    report["ndcg@10"] = collections["ndcg@10"]
    for part, rows in ROWS.items():
        for row in rows:
            report["ndcg@10"][row] = _read(part)["ndcg@10"][row]
    report["drcd-dev_before_chinese_weights"] = _read("drcd")["ndcg@10"]["drcd-dev"]
    report["cross_lingual_pages"] = pages["cross_lingual_pages"]
    (RESULTS / "offline_quality.json").write_text(
        json.dumps(report, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
