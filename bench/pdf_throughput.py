"""PDF pages per second on the CPU: rendering alone, and rendered + scored per model.

Two 12-page PDFs built here: a born-digital one (a text layer, written by
``m0rank.testing.pdfs.text_pdf``) and a scanned one (pages rendered with the Noto fonts,
images only). Every run ranks all pages of one PDF against one query through
``Reranker.rank`` (a fresh model each time, so no cache helps), after one warm-up call on a
one-page PDF.

- ``render``: ``render_pdf`` alone, pages at ``PdfLimits.render_pixels`` (602,112 px);
- ``m0rank-offline``: OCR of each page (Tesseract), and, for the born-digital PDF, the text
  layer instead (``reads_text_layer``: the hook the offline family opts into);
- ``m0rank-dummy``: the pipeline without a model (fetch, render, units, ranking);
- tiny random jina-m0 (the test checkpoint: 2 layers, hidden 64): the jina-m0 code path
  (vision tower on every page), not the 2B model's speed.

Usage: ``python bench/pdf_throughput.py``; writes ``bench/results/pdf_throughput_cpu.json``.
No GPU number is claimed here (no GPU was lent). The machine is shared: the load average is
recorded, and CPU seconds (Tesseract subprocesses included) sit next to wall seconds.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from offline_data import write_result

from m0rank import Reranker
from m0rank.preprocessing.pdf import render_pdf
from m0rank.testing.checkpoints import write_m0_checkpoint
from m0rank.testing.checkset import render_passage
from m0rank.testing.pdfs import image_pdf, text_pdf

PAGES = 12
QUERY = "pressure distribution on a slender wing"
LINES = [
    "The pressure distribution on a slender wing was measured at Mach 2.",
    "Boundary layer transition moves forward as the Reynolds number grows.",
    "Heat transfer to a blunt body in hypersonic flow scales with the nose radius.",
    "Panel flutter of thin plates depends on the in-plane load and the damping.",
]


def pdfs() -> dict[str, bytes]:
    """The born-digital and the scanned PDF, page ``i`` holding paragraph ``i % 4``."""
    texts = [[LINES[i % 4], f"Page {i + 1} of the report."] for i in range(PAGES)]
    return {"born_digital": text_pdf(texts),
            "scanned": image_pdf([render_passage(" ".join(t)) for t in texts])}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (Tesseract runs as one)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(fn: Any) -> dict[str, float]:
    """Wall and CPU seconds of ``fn()``; ``pages_per_cpu_s`` is what an idle core would do."""
    wall, cpu = time.perf_counter(), _cpu()
    fn()
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    return {"pages": PAGES, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "pages_per_s": round(PAGES / wall, 2), "pages_per_cpu_s": round(PAGES / cpu, 2)}


def rank_run(name: str, data: bytes, *, text_layer: bool | None = None) -> dict[str, float]:
    reranker = Reranker.from_pretrained(name, device="cpu")
    if text_layer is not None:  # the family hook, set on this instance for the comparison
        reranker.model.reads_text_layer = text_layer  # type: ignore[misc]
    reranker.rank(QUERY, [{"pdf": text_pdf([["warm up"]])}])
    return timed(lambda: reranker.rank(QUERY, [{"pdf": data}]))


def main() -> None:
    load_before = os.getloadavg()[0]
    files = pdfs()
    render_pdf(text_pdf([["warm up"]]), "warm-up")  # PDFium's one-time initialisation
    results: dict[str, Any] = {"render": {kind: timed(lambda d=data: render_pdf(d, "bench"))
                                          for kind, data in files.items()}}
    results["m0rank-offline"] = {
        "born_digital_text_layer": rank_run("m0rank-offline", files["born_digital"],
                                            text_layer=True),
        "born_digital_ocr": rank_run("m0rank-offline", files["born_digital"], text_layer=False),
        "scanned_ocr": rank_run("m0rank-offline", files["scanned"]),
    }
    results["m0rank-dummy"] = {kind: rank_run("m0rank-dummy", data)
                               for kind, data in files.items()}
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = write_m0_checkpoint(Path(folder), seed=0)
        results["tiny-jina-m0 (random, 2 layers)"] = {
            kind: rank_run(str(checkpoint), data) for kind, data in files.items()}
    path = write_result("pdf_throughput_cpu", {
        "load_average_1min": {"before": round(load_before, 2),
                              "after": round(os.getloadavg()[0], 2)},
        "render_pixels": 602112, "pages_per_pdf": PAGES, **results})
    print(path.read_text())


if __name__ == "__main__":
    main()
