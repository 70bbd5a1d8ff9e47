"""Options shared by subcommands that load a model."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_model_arguments", "model_kwargs"]


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model``, ``--device``, ``--dtype`` and the image pixel budget."""
    group = parser.add_argument_group("model")
    group.add_argument("--model", default=None, metavar="PATH_OR_ID",
                       help="checkpoint folder, hub id (e.g. jinaai/jina-reranker-m0) or built-in "
                            "name; default: the built-in offline model 'm0rank-offline'")
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    group.add_argument("--dtype", default=None, help="bf16, fp16 or fp32 (default: auto)")
    group.add_argument("--min-pixels", type=int, default=3136, help="smallest image area")
    group.add_argument("--max-pixels", type=int, default=602112, help="largest image area")
    group.add_argument("--vision-cache-bytes", type=int, default=None,
                       help="budget of the vision-feature cache (0 disables; default: per device)")
    group.add_argument("--local-files-only", action="store_true",
                       help="never contact the Hugging Face hub")


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``Reranker.from_pretrained`` from parsed options."""
    return {
        "device": args.device,
        "dtype": args.dtype,
        "min_pixels": args.min_pixels,
        "max_pixels": args.max_pixels,
        "local_files_only": args.local_files_only,
        "vision_cache_bytes": args.vision_cache_bytes,
    }
