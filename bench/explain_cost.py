"""Cost of one explanation per page, for each method and model family, on the CPU.

One rendered page (Noto, 800 px wide, two paragraphs) explained for one query through
``Reranker.explain``; median of ``--repeats`` runs (each on a page with new pixels, so caches
do not help) after a warm-up, wall and CPU seconds (Tesseract subprocesses included).
Occlusion's cost is its number of scored variants (default block: at most 64); attention is
one eager forward; gradient x input one forward and one backward.

Models: ``m0rank-offline`` (occlusion only: each variant is OCRed again), ``m0rank-dummy`` (the
method's own overhead), and the tiny random jina-m0 test checkpoint (the jina-m0 code path,
not the 2B model's speed). No GPU number is claimed (no GPU was lent).

Usage: ``python bench/explain_cost.py``; writes ``bench/results/explain_cost_cpu.json``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from offline_data import write_result

from m0rank import Reranker
from m0rank.testing.checkpoints import write_m0_checkpoint
from m0rank.testing.pages import render_page

QUERY = "wind turbine blade fatigue"
PARAGRAPHS = ["Wind turbine blades fail by fatigue after millions of load cycles in gusty wind.",
              "The bakery sells fresh bread, croissants and cakes every morning before eight."]


def page(run: int) -> Any:
    """The page of one run: a run number at the bottom makes every run's pixels new, so no
    OCR or vision-feature cache serves a later run."""
    return render_page([PARAGRAPHS[1], "", PARAGRAPHS[0], "", f"Run {run}."], width=800,
                       font_size=28)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (Tesseract runs as one)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def cost(reranker: Reranker, method: str, repeats: int) -> dict[str, Any]:
    reranker.explain(QUERY, {"image": page(0)}, method=method)  # warm-up: lazy init only
    walls, cpus, explanation = [], [], None
    for run in range(1, repeats + 1):
        image = page(run)
        wall, cpu = time.perf_counter(), _cpu()
        explanation = reranker.explain(QUERY, {"image": image}, method=method)
        walls.append(time.perf_counter() - wall)
        cpus.append(_cpu() - cpu)
    assert explanation is not None
    return {"seconds_per_page": round(statistics.median(walls), 3),
            "cpu_seconds_per_page": round(statistics.median(cpus), 3),
            "grid": list(explanation.heatmap.shape), **explanation.details,
            "score": round(explanation.score, 5),
            "method_score": round(explanation.method_score, 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {}
    for name in ("m0rank-offline", "m0rank-dummy"):
        results[name] = {"occlusion": cost(Reranker.from_pretrained(name), "occlusion",
                                           args.repeats)}
    with tempfile.TemporaryDirectory() as folder:
        tiny = Reranker.from_pretrained(write_m0_checkpoint(Path(folder), seed=0), device="cpu")
        results["tiny-jina-m0 (random, 2 layers)"] = {
            method: cost(tiny, method, args.repeats)
            for method in ("occlusion", "attention", "gradient")}
    path = write_result("explain_cost_cpu", {
        "load_average_1min": {"before": round(load_before, 2),
                              "after": round(os.getloadavg()[0], 2)},
        "page_size": list(page(1).size), **results})
    print(path.read_text())


if __name__ == "__main__":
    main()
