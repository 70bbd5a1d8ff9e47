"""``m0rank`` command line: subcommands are modules loaded only when used.

``m0rank --help`` and ``m0rank eval --help`` do not import torch: each subcommand module keeps
its heavy imports inside ``run`` (after vLLM's ``entrypoints/cli``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from m0rank._version import __version__
from m0rank.errors import InvalidInputError, M0RankError

__all__ = ["main", "SUBCOMMANDS"]

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "rerank": ("m0rank.cli.rerank", "rank documents against a query"),
    "serve": ("m0rank.cli.serve", "start the Jina/Cohere-compatible HTTP server"),
    "eval": ("m0rank.cli.eval", "evaluate models on BEIR-style collections"),
    "batch": ("m0rank.cli.batch", "score many pairs into sharded parquet (local or Ray)"),
    "explain": ("m0rank.cli.explain", "show why a document scores what it scores (heatmap)"),
    "train": ("m0rank.cli.train", "fine-tune a reranker (LoRA or full) and save it"),
}

EXIT_INPUT_ERROR = 2
EXIT_MODEL_ERROR = 1


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per available subcommand."""
    parser = argparse.ArgumentParser(prog="m0rank", description="Multimodal reranking.")
    parser.add_argument("--version", action="version", version=f"m0rank {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v info, -vv debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # a subcommand whose module is not installed
            continue
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``m0rank`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return EXIT_INPUT_ERROR
    _configure_logging(args.verbose)
    try:
        return int(args.run(args) or 0)
    except InvalidInputError as exc:
        print(f"m0rank: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except M0RankError as exc:
        print(f"m0rank: error: {exc}", file=sys.stderr)
        return EXIT_MODEL_ERROR
    except KeyboardInterrupt:
        return 130


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbosity == 0:
        # transformers logs a torchvision fallback notice on every image-processor build.
        logging.getLogger("transformers").setLevel(logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
