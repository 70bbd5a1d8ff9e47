"""``m0rank rerank``: rank documents given on the command line or in a JSONL file.

Documents keep the order in which ``--doc``, ``--doc-image`` and ``--doc-pdf`` appear,
followed by the rows of ``--docs-file`` (one JSON string or ``{"text": ..., "image": ...}`` /
``{"pdf": ...}`` object per line). Each page of a PDF is ranked as its own result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from m0rank.cli.common import add_model_arguments, model_kwargs
from m0rank.errors import InvalidInputError

__all__ = ["add_arguments", "run", "read_docs_file"]

_PROGRESS_THRESHOLD = 16
_PREVIEW_CHARS = 70


class _AppendDocument(argparse.Action):
    """Collect ``--doc``, ``--doc-image`` and ``--doc-pdf`` into one list, in command-line
    order."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        documents = list(getattr(namespace, self.dest) or [])
        documents.append({self.const: values})
        setattr(namespace, self.dest, documents)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``m0rank rerank``."""
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument("--query", help="text query")
    query.add_argument("--query-image", metavar="SRC", help="image query: path, URL or base64")
    parser.add_argument("--doc", dest="documents", action=_AppendDocument, const="text",
                        metavar="TEXT", help="a text document (repeatable)")
    parser.add_argument("--doc-image", dest="documents", action=_AppendDocument, const="image",
                        metavar="SRC", help="an image document: path, URL or base64 (repeatable)")
    parser.add_argument("--doc-pdf", dest="documents", action=_AppendDocument, const="pdf",
                        metavar="SRC", help="a PDF, each page ranked: path, URL or base64 "
                                            "(repeatable)")
    parser.add_argument("--docs-file", type=Path, metavar="FILE.jsonl",
                        help="more documents, one JSON string or object per line")
    parser.add_argument("--top-n", type=int, default=None,
                        help="show only the best N (PDF pages count one each)")
    parser.add_argument("--pages", default=None, metavar="1-3,7",
                        help="PDF pages to read (default: all)")
    parser.add_argument("--chunk-size", type=int, default=None, metavar="TOKENS",
                        help="score long texts by their best window of this many tokens "
                             "(default: truncate, as the reference)")
    parser.add_argument("--chunk-overlap", type=int, default=0, metavar="TOKENS",
                        help="tokens shared by consecutive windows")
    parser.add_argument("--dedup", action="store_true",
                        help="mark near-duplicates of better-ranked documents")
    parser.add_argument("--diversity", type=float, default=None, metavar="LAMBDA",
                        help="re-order by maximal marginal relevance (1: plain relevance)")
    parser.add_argument("--max-length", type=int, default=None, help="longest prompt in tokens")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Load the model, rank, print."""
    from m0rank.api import Reranker

    documents = list(args.documents or [])
    if args.docs_file is not None:
        documents.extend(read_docs_file(args.docs_file))
    if not documents:
        raise InvalidInputError("no documents: give --doc, --doc-image, --doc-pdf or "
                                "--docs-file")
    query: Any = args.query if args.query is not None else {"image": args.query_image}
    reranker = Reranker.from_pretrained(
        args.model, show_progress=len(documents) >= _PROGRESS_THRESHOLD, **model_kwargs(args))
    results = reranker.rank(query, documents, top_n=args.top_n, return_documents=True,
                            max_length=args.max_length, pages=args.pages,
                            chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap,
                            dedup=args.dedup, diversity=args.diversity)
    if args.json:
        print(json.dumps(_as_json(reranker.model_name, results), ensure_ascii=False, indent=2))
    else:
        _print_table(reranker.model_name, results)
    return 0


def read_docs_file(path: Path) -> list[Any]:
    """Documents of a JSONL file; errors name the file and the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInputError(f"--docs-file {str(path)!r}: {exc.strerror}") from None
    documents = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(value, (str, dict)):
            raise InvalidInputError(f"{path}:{number}: expected a string or an object with "
                                    f"'text'/'image', got {type(value).__name__}")
        documents.append(value)
    return documents


def _as_json(model_name: str, results: list[Any]) -> dict[str, Any]:
    return {
        "model": model_name,
        "results": [
            {"index": r.index, "relevance_score": r.score, "document": r.document.to_dict(),
             **_extensions(r), **({"warnings": list(r.warnings)} if r.warnings else {})}
            for r in results
        ],
    }


def _extensions(result: Any) -> dict[str, Any]:
    """m0rank's additions to a result, only when set: page, chunk, duplicate_of."""
    fields = {"page": result.page, "duplicate_of": result.duplicate_of,
              "chunk": list(result.chunk) if result.chunk else None}
    return {name: value for name, value in fields.items() if value is not None}


def _print_table(model_name: str, results: list[Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"m0rank · {model_name}")
    table.add_column("rank", justify="right")
    table.add_column("index", justify="right")
    table.add_column("score", justify="right")
    table.add_column("document")
    for rank, result in enumerate(results, start=1):
        preview = _preview(result.document.to_dict())
        notes = [f"{k} {v}" for k, v in _extensions(result).items()]
        if notes:
            preview += f"  [cyan]({', '.join(notes)})[/cyan]"
        if result.warnings:
            preview += f"  [yellow]⚠ {'; '.join(result.warnings)}[/yellow]"
        table.add_row(str(rank), str(result.index), f"{result.score:.4f}", preview)
    Console(file=sys.stdout, soft_wrap=False).print(table)


def _preview(document: dict[str, Any]) -> str:
    parts: list[str] = []
    if "image" in document:
        images = document["image"] if isinstance(document["image"], list) else [document["image"]]
        parts.extend(f"[image] {_shorten(str(src), 40)}" for src in images)
    if "pdf" in document:
        parts.append(f"[pdf] {_shorten(str(document['pdf']), 40)}")
    if "text" in document:
        parts.append(_shorten(document["text"], _PREVIEW_CHARS))
    return " | ".join(parts)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
