"""Qwen2-VL input glue: tokenizer + PIL image processor + ``<|image_pad|>`` expansion.

``transformers``' ``Qwen2VLProcessor`` cannot be built without torchvision (its video
processor needs it), so we do its small job ourselves with the two parts that do work: the
tokenizer and ``Qwen2VLImageProcessor`` (PIL backend). Per image the processor yields
``grid_t * grid_h * grid_w`` patches; the prompt gets ``patches / merge_size**2`` copies of
``<|image_pad|>`` in place of the single placeholder, as the HF processor does.
``mm_token_type_ids`` (1 on image tokens) are derived from the ids at collation time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from m0rank.config import ImageSizing
from m0rank.errors import InputTooLargeError, ModelLoadError

if TYPE_CHECKING:
    import torch
    from PIL import Image

__all__ = ["EncodedPrompt", "Qwen2VLInputEncoder"]

logger = logging.getLogger(__name__)

# Fields of preprocessor_config.json that we take from the checkpoint (the pixel budget is not
# among them: the reference passes min_pixels / max_pixels explicitly).
_PROCESSOR_FIELDS = ("image_mean", "image_std", "patch_size", "temporal_patch_size", "merge_size")


@dataclass(frozen=True)
class EncodedPrompt:
    """Token ids of one prompt with its images' patches (``None`` for text-only prompts)."""

    input_ids: list[int]
    pixel_values: torch.Tensor | None
    image_grid_thw: tuple[tuple[int, int, int], ...]


class Qwen2VLInputEncoder:
    """Tokenises prompts and turns images into Qwen2-VL patches, as ``Qwen2VLProcessor`` would.

    Args:
        tokenizer: A Qwen2 tokenizer with the Qwen2-VL special tokens.
        image_processor: A ``Qwen2VLImageProcessor`` configured with the pixel budget.
        image_token: The placeholder token expanded per image.
    """

    def __init__(self, tokenizer: Any, image_processor: Any,
                 image_token: str = "<|image_pad|>") -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.image_token_id = int(tokenizer.convert_tokens_to_ids(image_token))
        self.merge_size = int(image_processor.merge_size)

    @classmethod
    def from_pretrained(cls, path: Path, sizing: ImageSizing) -> Qwen2VLInputEncoder:
        """Load the tokenizer and build the image processor from ``preprocessor_config.json``."""
        from transformers import AutoTokenizer
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            Qwen2VLImageProcessorPil,  # the torchvision-free backend
        )

        tokenizer = AutoTokenizer.from_pretrained(path)
        options = _read_processor_options(path / "preprocessor_config.json")
        size = {"shortest_edge": sizing.min_pixels, "longest_edge": sizing.max_pixels}
        image_processor = Qwen2VLImageProcessorPil(size=size, **options)
        return cls(tokenizer, image_processor)

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens (Qwen2 adds no BOS/EOS anyway)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate_text(self, text: str, max_tokens: int) -> str:
        """The reference's "TEMP FIX": a text reaching ``max_tokens`` tokens is replaced by the
        decoded text of its first ``max_tokens`` tokens (also when exactly at the limit).

        The ids are cut here rather than with ``truncation=True``: that flag rewrites the fast
        tokenizer's shared truncation setting on every call, which races when pairs are
        prepared on several threads. For one sequence without special tokens the ids are the
        same (right-side truncation)."""
        ids = self.tokenize(text)[:max_tokens]
        if len(ids) >= max_tokens:
            return str(self.tokenizer.decode(ids))
        return text

    def image_token_count(self, grid_thw: tuple[int, int, int]) -> int:
        """Number of ``<|image_pad|>`` tokens one image with this grid takes."""
        t, h, w = grid_thw
        return t * h * w // self.merge_size**2

    def encode_images(
        self, images: list[Image.Image]
    ) -> tuple[torch.Tensor, list[tuple[int, int, int]]]:
        """Patches of every image, concatenated in order, and each image's (t, h, w) grid."""
        out = self.image_processor(images=images, return_tensors="pt")
        grids = [tuple(int(v) for v in row) for row in out["image_grid_thw"].tolist()]
        return out["pixel_values"], grids  # type: ignore[return-value]

    def encode(
        self, prompt: str, images: list[Image.Image], budget: int, field: str
    ) -> EncodedPrompt:
        """Tokenise ``prompt``, expand each image placeholder and truncate to ``budget`` tokens.

        Raises:
            InputTooLargeError: Truncation would cut into image tokens (the reference would
                then fail on a feature/token count mismatch).
        """
        pixel_values, grids = self.encode_images(images) if images else (None, [])
        return EncodedPrompt(self.encode_ids(prompt, grids, budget, field), pixel_values,
                             tuple(grids))

    def encode_ids(self, prompt: str, grids: list[tuple[int, int, int]], budget: int,
                   field: str) -> list[int]:
        """Token ids of ``prompt`` with each placeholder expanded for its image's grid, cut to
        ``budget``; for callers that already know the grids (e.g. from a feature cache).

        Raises:
            InputTooLargeError: Truncation would cut into image tokens.
        """
        ids = self.tokenize(prompt)
        if grids:
            ids = self._expand_image_tokens(ids, grids)
        if len(ids) > budget:
            self._check_images_fit(ids, budget, field)
            ids = ids[:budget]
        return ids

    def _expand_image_tokens(self, ids: list[int], grids: list[tuple[int, int, int]]) -> list[int]:
        counts = iter(self.image_token_count(grid) for grid in grids)
        expanded: list[int] = []
        for token in ids:
            if token == self.image_token_id:
                expanded.extend([token] * next(counts))
            else:
                expanded.append(token)
        return expanded

    def _check_images_fit(self, ids: list[int], budget: int, field: str) -> None:
        last_image_position = max(
            (i for i, token in enumerate(ids) if token == self.image_token_id), default=-1
        )
        if last_image_position >= budget:
            image_tokens = sum(1 for token in ids if token == self.image_token_id)
            raise InputTooLargeError(
                f"{field}: the prompt needs {len(ids) + 1} tokens including {image_tokens} image "
                f"tokens, but max_length is {budget + 1}; image tokens are never truncated, so "
                f"raise max_length or lower max_pixels"
            )


def _read_processor_options(path: Path) -> dict[str, Any]:
    if not path.exists():
        logger.info("%s not found; using Qwen2-VL's default image normalisation", path)
        return {}
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from None
    return {key: config[key] for key in _PROCESSOR_FIELDS if key in config}
