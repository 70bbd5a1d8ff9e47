"""``m0rank explain``: why does a document score what it scores for a query?

Writes the page with the heatmap drawn on it (``--out heat.png``) for an image or a PDF page,
or prints the weight of each word span for a text; ``--json`` prints the whole explanation.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from m0rank.cli.common import add_model_arguments, model_kwargs
from m0rank.errors import InvalidInputError

__all__ = ["add_arguments", "run"]

_METHODS = ("occlusion", "attention", "gradient")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``m0rank explain``."""
    parser.add_argument("--query", required=True, help="text query")
    document = parser.add_mutually_exclusive_group(required=True)
    document.add_argument("--doc", metavar="TEXT", help="a text document")
    document.add_argument("--doc-image", metavar="PAGE", help="an image: path, URL or base64")
    document.add_argument("--doc-pdf", metavar="SRC", help="a PDF (see --page)")
    parser.add_argument("--page", type=int, default=1, help="PDF page to explain (default 1)")
    parser.add_argument("--method", choices=_METHODS, default="occlusion",
                        help="occlusion (every model), attention or gradient (jina-reranker-m0)")
    parser.add_argument("--block", type=int, default=None,
                        help="occlusion block: cells per side (images) or words (text)")
    parser.add_argument("--layers", type=_indices, default=None, metavar="0,-1",
                        help="attention layers to average (default all)")
    parser.add_argument("--heads", type=_indices, default=None, metavar="0,3",
                        help="attention heads to average (default all)")
    parser.add_argument("--out", type=Path, default=None, metavar="heat.png",
                        help="write the page with the heatmap drawn on it")
    parser.add_argument("--json", action="store_true", help="print the explanation as JSON")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Load the model, explain, write the overlay and print a summary."""
    from m0rank.api import Reranker

    document = _document(args)
    reranker = Reranker.from_pretrained(args.model, **model_kwargs(args))
    explanation = reranker.explain(args.query, document, method=args.method, block=args.block,
                                   layers=args.layers, heads=args.heads)
    if args.out is not None:
        if explanation.heatmap is None:
            raise InvalidInputError("--out needs an image or PDF page; a text explanation has "
                                    "word weights (printed) instead of a heatmap")
        explanation.overlay().save(args.out)
    if args.json:
        print(json.dumps(explanation.to_dict(overlay=False), ensure_ascii=False, indent=2))
    else:
        _print_summary(explanation, args.out)
    return 0


def _document(args: argparse.Namespace) -> Any:
    if args.doc is not None:
        return args.doc
    if args.doc_image is not None:
        return {"image": args.doc_image}
    return {"pdf": args.doc_pdf, "pages": [args.page]}


def _indices(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}"
                                         ) from None


def _print_summary(explanation: Any, out: Path | None) -> None:
    lines = [f"method {explanation.method}: score {explanation.score:.4f} (served), "
             f"{explanation.method_score:.4f} (this method's forward)"]
    if explanation.heatmap is not None:
        rows, cols = explanation.heatmap.shape
        row, col = explanation.peak()
        lines.append(f"heatmap {rows}x{cols} cells, peak at row {row}, column {col}")
        if out is not None:
            lines.append(f"overlay written to {out}")
    for span in sorted(explanation.spans, key=lambda s: -s.weight)[:10]:
        lines.append(f"{span.weight:+.4f}  {span.text}")
    sys.stdout.write("\n".join(lines) + "\n")
