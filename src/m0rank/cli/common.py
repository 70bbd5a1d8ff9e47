"""Options shared by subcommands that load a model.

Defaults are read from the config dataclasses (:class:`~m0rank.config.ImageSizing`), never
repeated as literals, so the CLI, the library and the server agree on them.
"""

from __future__ import annotations

import argparse
from typing import Any

from m0rank.config import ImageSizing

__all__ = ["MODEL_OPTIONS", "add_model_arguments", "model_kwargs"]

# Parsed option names that ``model_kwargs`` passes to ``Reranker.from_pretrained``.
MODEL_OPTIONS = ("device", "dtype", "min_pixels", "max_pixels", "local_files_only",
                 "vision_cache_bytes")


def add_model_arguments(parser: argparse.ArgumentParser, *,
                        several_models: bool = False) -> argparse._ArgumentGroup:
    """``--model``, ``--device``, ``--dtype``, the image pixel budget and hub access.

    Args:
        parser: The subcommand's parser.
        several_models: ``--model`` may be repeated (``args.model`` is then a list, empty when
            not given), as ``m0rank eval`` compares models.

    Returns:
        The "model" argument group, for a subcommand's own model options.
    """
    group = parser.add_argument_group("model")
    where = "checkpoint folder, hub id (e.g. jinaai/jina-reranker-m0) or built-in name"
    if several_models:
        group.add_argument("--model", action="append", default=[], metavar="PATH_OR_ID",
                           help=f"model to rerank with (repeatable): {where}; none: first "
                                f"stage only")
    else:
        group.add_argument("--model", default=None, metavar="PATH_OR_ID",
                           help=f"{where}; default: the built-in offline model 'm0rank-offline'")
    group.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    group.add_argument("--dtype", default=None, help="bf16, fp16 or fp32 (default: auto)")
    group.add_argument("--min-pixels", type=int, default=ImageSizing.min_pixels,
                       help=f"smallest image area (default {ImageSizing.min_pixels})")
    group.add_argument("--max-pixels", type=int, default=ImageSizing.max_pixels,
                       help=f"largest image area (default {ImageSizing.max_pixels})")
    group.add_argument("--vision-cache-bytes", type=int, default=None,
                       help="budget of the vision-feature cache (0 disables; default: per device)")
    group.add_argument("--local-files-only", action="store_true",
                       help="never contact the Hugging Face hub")
    return group


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for ``Reranker.from_pretrained`` from parsed options."""
    return {name: getattr(args, name) for name in MODEL_OPTIONS}
