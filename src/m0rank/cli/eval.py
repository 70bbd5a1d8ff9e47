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
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from m0rank.cli.common import add_model_arguments, model_kwargs
from m0rank.errors import InvalidInputError
from m0rank.eval.first_stage import TOKENIZERS
from m0rank.eval.runner import EvalOptions

if TYPE_CHECKING:
    from m0rank.eval.runner import CacheSpec, EvalReport

__all__ = ["add_arguments", "run"]

_DEFAULT_METRICS = ",".join(EvalOptions.metrics)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``m0rank eval`` (no heavy imports here: ``--help`` stays fast)."""
    data = parser.add_argument_group("data")
    data.add_argument("--data", action="append", required=True, type=Path, metavar="DIR",
                      help="BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/) or "
                           "Winoground-layout folder (examples.jsonl); repeatable")
    data.add_argument("--split", default=EvalOptions.split,
                      help=f"qrels split file (default: {EvalOptions.split})")
    data.add_argument("--max-queries", type=int, default=None, metavar="N",
                      help="only the first N judged queries (quick checks)")
    stage = parser.add_argument_group("first stage")
    stage.add_argument("--first-stage", choices=("auto", "bm25", "all"),
                       default=EvalOptions.first_stage,
                       help="bm25 over document text, every document, or auto (default): "
                            "bm25 when queries and documents have text, else all")
    stage.add_argument("--run", dest="run_file", type=Path, default=None, metavar="FILE",
                       help="TREC run file to rerank instead (applies to every --data)")
    stage.add_argument("--bm25-tokenizer", choices=TOKENIZERS, default=EvalOptions.bm25_tokenizer,
                       help="tokens of the BM25 first stage (default auto: by the collection's "
                            "script and language; chinese / chinese-jieba for Chinese data)")
    stage.add_argument("--top-k", type=int, default=EvalOptions.top_k,
                       help=f"candidates reranked per query (default {EvalOptions.top_k})")
    model = add_model_arguments(parser, several_models=True)
    model.add_argument("--max-length", type=int, default=None, help="longest prompt in tokens")
    model.add_argument("--chunk-size", type=int, default=None, metavar="TOKENS",
                       help="score long texts by their best window of this many tokens "
                            "(default: truncate, as the reference)")
    model.add_argument("--chunk-overlap", type=int, default=0, metavar="TOKENS",
                       help="tokens shared by consecutive windows (with --chunk-size)")
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
    from m0rank.api import Reranker
    from m0rank.eval.report import save_report
    from m0rank.eval.runner import run_evaluation

    _quiet_bm25s(getattr(args, "verbose", 0))
    if args.top_k < 1:
        raise InvalidInputError(f"--top-k must be >= 1, got {args.top_k}")
    load: Any = partial(Reranker.from_pretrained, **model_kwargs(args))
    if args.chunk_size is not None:
        plain = load
        load = lambda name: plain(name).chunked(args.chunk_size, args.chunk_overlap)  # noqa: E731
    report = run_evaluation(args.data, args.model, _options(args), load=load,
                            cache=_cache(args))
    _print(report)
    if args.out is not None:
        save_report(report, args.out, args.name, machine=args.machine,
                    extra_settings={"device": args.device, "dtype": args.dtype})
    return 0


def _options(args: argparse.Namespace) -> EvalOptions:
    metrics = tuple(m.strip() for m in args.metrics.split(",") if m.strip())
    return EvalOptions(split=args.split, max_queries=args.max_queries,
                       first_stage=args.first_stage, run_file=args.run_file, top_k=args.top_k,
                       metrics=metrics, max_length=args.max_length,
                       show_progress=not args.no_progress,
                       bm25_tokenizer=args.bm25_tokenizer)


def _cache(args: argparse.Namespace) -> CacheSpec | None:
    from m0rank.eval.runner import CacheSpec

    if args.no_cache:
        return None
    path = args.cache or Path.home() / ".cache" / "m0rank" / "eval_scores.sqlite"
    options: dict[str, Any] = {"max_length": args.max_length, "dtype": args.dtype,
                               "split": args.split, "min_pixels": args.min_pixels,
                               "max_pixels": args.max_pixels}
    if args.chunk_size is not None:  # chunked scores must not be served as truncated ones
        options.update(chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap)
    return CacheSpec(path=path, options=options)


def _quiet_bm25s(verbosity: int) -> None:
    """bm25s sets its own logger to DEBUG when imported; keep it at the CLI's level."""
    import bm25s  # noqa: F401 - imported first so its import-time setLevel runs before ours

    logging.getLogger("bm25s").setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


def _print(report: EvalReport) -> None:
    from rich.console import Console

    from m0rank.eval.report import build_table, render_rich

    console = Console(file=sys.stdout, soft_wrap=False)
    console.print(render_rich(build_table(report.results)))
    for cell in report.skipped:
        console.print(cell.note(), markup=False)
