"""``m0rank eval``: benchmark tables for any model, from local collections, fully offline.

Example::

    m0rank eval --data ../shared/data/cranfield --model m0rank-offline --out bench/results

prints a table (rows: BM25 and each ``--model``; columns: datasets and their average) and,
with ``--out``, writes ``<name>.json``, ``<name>.md`` and ``<name>.png``. Scores are cached in
SQLite, so an interrupted run resumes and a rerun costs nothing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from m0rank.errors import InvalidInputError

__all__ = ["add_arguments", "run"]

logger = logging.getLogger(__name__)

_DEFAULT_METRICS = "ndcg@10,recall@10,mrr@10,map@100"
_ALL_LABEL = "all documents"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``m0rank eval`` (no heavy imports here: ``--help`` stays fast)."""
    data = parser.add_argument_group("data")
    data.add_argument("--data", action="append", required=True, type=Path, metavar="DIR",
                      help="BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/) or "
                           "Winoground-layout folder (examples.jsonl); repeatable")
    data.add_argument("--split", default="test", help="qrels split file (default: test)")
    data.add_argument("--max-queries", type=int, default=None, metavar="N",
                      help="only the first N judged queries (quick checks)")
    stage = parser.add_argument_group("first stage")
    stage.add_argument("--first-stage", choices=("auto", "bm25", "all"), default="auto",
                       help="bm25 over document text, every document, or auto (default): "
                            "bm25 when queries and documents have text, else all")
    stage.add_argument("--run", dest="run_file", type=Path, default=None, metavar="FILE",
                       help="TREC run file to rerank instead (applies to every --data)")
    stage.add_argument("--top-k", type=int, default=100, help="candidates reranked per query")
    model = parser.add_argument_group("models")
    model.add_argument("--model", action="append", default=[], metavar="PATH_OR_ID",
                       help="model to rerank with (repeatable): folder, hub id or built-in "
                            "name ('m0rank-offline'); none: first stage only")
    model.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    model.add_argument("--dtype", default=None, help="bf16, fp16 or fp32 (default: auto)")
    model.add_argument("--min-pixels", type=int, default=3136, help="smallest image area")
    model.add_argument("--max-pixels", type=int, default=602112, help="largest image area")
    model.add_argument("--max-length", type=int, default=None, help="longest prompt in tokens")
    model.add_argument("--local-files-only", action="store_true",
                       help="never contact the Hugging Face hub")
    out = parser.add_argument_group("output")
    out.add_argument("--metrics", default=_DEFAULT_METRICS,
                     help=f"comma-separated; the first is the table's headline "
                          f"(default: {_DEFAULT_METRICS})")
    out.add_argument("--out", type=Path, default=None, metavar="DIR",
                     help="write <name>.json, <name>.md and <name>.png here")
    out.add_argument("--name", default="eval", help="file name stem for --out")
    out.add_argument("--machine", default=None, help="machine description stored in the JSON")
    out.add_argument("--cache", type=Path, default=None, metavar="FILE",
                     help="SQLite score cache (default: ~/.cache/m0rank/eval_scores.sqlite)")
    out.add_argument("--no-cache", action="store_true", help="score every pair afresh")
    out.add_argument("--no-progress", action="store_true", help="hide progress bars")


def run(args: argparse.Namespace) -> int:
    """Load the collections, run the first stage, rerank with each model, report."""
    from m0rank.eval.metrics import parse_metric

    _quiet_bm25s(getattr(args, "verbose", 0))
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    for metric in metrics:
        parse_metric(metric)
    if args.top_k < 1:
        raise InvalidInputError(f"--top-k must be >= 1, got {args.top_k}")
    datasets = [_load(path, args) for path in args.data]
    # "all documents" is a candidate set, not a ranking: it gets no row of its own.
    results = [_first_stage_row(dataset, metrics) for dataset in datasets
               if dataset["first_stage"] is not None and dataset["label"] != _ALL_LABEL]
    skipped: list[dict[str, str]] = []
    for name in args.model:
        results.extend(_model_rows(name, datasets, metrics, args, skipped))
    stages = {d["name"]: d.get("label", "pairs of captions and images") for d in datasets}
    _report(results, metrics, args, skipped, stages)
    return 0


def _quiet_bm25s(verbosity: int) -> None:
    """bm25s sets its own logger to DEBUG when imported; keep it at the CLI's level."""
    import bm25s  # noqa: F401 - imported first so its import-time setLevel runs before ours

    logging.getLogger("bm25s").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


def _load(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    from m0rank.eval import datasets as ds
    from m0rank.eval import first_stage as fs

    if ds.is_winoground(path):
        examples = ds.load_winoground(path)[: args.max_queries]
        return {"name": path.name, "winoground": examples, "first_stage": None}
    collection = _subset(ds.load_beir(path, split=args.split), args.max_queries)
    if args.run_file is not None:
        label, first = f"run:{args.run_file.name}", fs.read_trec_run(args.run_file)
    elif args.first_stage == "all" or (args.first_stage == "auto" and not _has_text(collection)):
        label, first = _ALL_LABEL, fs.all_documents_run(collection)
    else:
        label, first = "BM25", fs.bm25_run(collection, k=args.top_k)
    return {"name": collection.name, "collection": collection, "first_stage": first,
            "label": label}


def _has_text(collection: Any) -> bool:
    return all(q.text for q in collection.queries.values()) and \
        any(d.text for d in collection.corpus.values())


def _subset(collection: Any, max_queries: int | None) -> Any:
    if max_queries is None:
        return collection
    from dataclasses import replace

    keep = list(collection.qrels)[:max_queries]
    return replace(collection, queries={q: collection.queries[q] for q in keep},
                   qrels={q: collection.qrels[q] for q in keep})


def _first_stage_row(dataset: dict[str, Any], metrics: list[str]) -> Any:
    from m0rank.eval.runner import first_stage_result

    return first_stage_result(dataset["label"], dataset["collection"], dataset["first_stage"],
                              metrics)


def _model_rows(name: str, datasets: list[dict[str, Any]], metrics: list[str],
                args: argparse.Namespace, skipped: list[dict[str, str]]) -> list[Any]:
    """Rows of one model. A dataset the model cannot read (a text cross-encoder on page
    images, MonoQwen on text documents) leaves its cell empty and is listed in ``skipped``."""
    from m0rank.api import Reranker
    from m0rank.eval.cache import model_fingerprint

    model_arg = None if name in ("default", "") else name
    reranker = Reranker.from_pretrained(
        model_arg, device=args.device, dtype=args.dtype, min_pixels=args.min_pixels,
        max_pixels=args.max_pixels, local_files_only=args.local_files_only)
    key = model_fingerprint(model_arg)
    rows = []
    for dataset in datasets:
        with _cache(args, key, dataset["name"]) as cache:
            try:
                rows.append(_model_row(reranker, dataset, metrics, cache, args))
            except InvalidInputError as exc:
                logger.warning("%s on %s skipped: %s", reranker.model_name, dataset["name"], exc)
                skipped.append({"model": reranker.model_name, "dataset": dataset["name"],
                                "reason": str(exc)})
    return rows


def _model_row(reranker: Any, dataset: dict[str, Any], metrics: list[str], cache: Any,
               args: argparse.Namespace) -> Any:
    from m0rank.eval.runner import model_result, winoground_result

    if "winoground" in dataset:
        return winoground_result(reranker.model_name, reranker, dataset["name"],
                                 dataset["winoground"], cache, show_progress=not args.no_progress)
    return model_result(reranker.model_name, reranker, dataset["collection"],
                        dataset["first_stage"], k=args.top_k, metrics=metrics, cache=cache,
                        max_length=args.max_length, show_progress=not args.no_progress)


def _cache(args: argparse.Namespace, key: str, dataset: str) -> Any:
    from m0rank.eval.cache import ScoreCache

    if args.no_cache:
        return nullcontext()
    path = args.cache or Path.home() / ".cache" / "m0rank" / "eval_scores.sqlite"
    options = {"max_length": args.max_length, "dtype": args.dtype, "split": args.split,
               "min_pixels": args.min_pixels, "max_pixels": args.max_pixels}
    return ScoreCache(path, model=key, dataset=dataset, options=options)


def _report(results: list[Any], metrics: list[str], args: argparse.Namespace,
            skipped: list[dict[str, str]], stages: dict[str, str]) -> None:
    from rich.console import Console

    from m0rank.eval import report

    table = report.build_table(results)
    console = Console(file=sys.stdout, soft_wrap=False)
    console.print(report.render_rich(table))
    notes = [f"– {s['model']} on {s['dataset']}: not run ({s['reason']})" for s in skipped]
    for note in notes:
        console.print(note, markup=False)
    if args.out is None:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"data": [str(p) for p in args.data], "split": args.split,
                "first_stage": stages, "top_k": args.top_k,
                "metrics": metrics, "models": args.model, "max_queries": args.max_queries,
                "max_length": args.max_length, "device": args.device, "dtype": args.dtype}
    report.write_json(args.out / f"{args.name}.json",
                      report.to_json(results, settings, machine=args.machine, skipped=skipped))
    used = ", ".join(f"{name}: {label}" for name, label in stages.items())
    caption = (f"Scores x 100; first stage ({used}), top {args.top_k} reranked; "
               f"headline metric per column.")
    markdown = report.to_markdown(table, caption=caption) + "".join(f"\n{n}\n" for n in notes)
    markdown += "\n" + report.to_markdown_details(results)
    (args.out / f"{args.name}.md").write_text(markdown, encoding="utf-8")
    report.write_box_plot(results, args.out / f"{args.name}.png")
