"""jina-reranker-m0 micro-batch inputs: per-pair payload, image features, packed and padded tensors.

Split from ``reranker.py`` so the family file stays readable: this module turns the prepared
pairs of one micro-batch into device tensors, either

- *packed*: all pairs back to back in one ``(1, tokens)`` sequence with per-pair M-RoPE
  positions and boundaries (see ``model.qwen2vl.packing``), or
- *padded*: left-padded ``(pairs, longest)`` rows as the reference builds them.

Image features come from the vision-feature cache when the page was seen before, otherwise
from one vision-encoder call over every missing image of the micro-batch (each distinct image
once, even when several pairs share it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from m0rank.model.qwen2vl.collate import left_pad
from m0rank.model.qwen2vl.packing import PackedSegments, pair_positions, to_device
from m0rank.model.qwen2vl.vision_cache import CachedFeatures, VisionFeatureCache

__all__ = ["M0Image", "M0Prompt", "PackedInputs", "PaddedInputs", "resolve_image_features",
           "pack", "pad"]


@dataclass(frozen=True)
class M0Image:
    """One image of a prompt: its cache key and grid, plus patches or cached features.

    Exactly one of ``pixel_values`` (CPU patches, ``(t*h*w, 1176)``) and ``features``
    (merged features already on the device, held so an eviction cannot lose them) is set.
    """

    key: str
    grid: tuple[int, int, int]
    pixel_values: torch.Tensor | None
    features: torch.Tensor | None


@dataclass(frozen=True)
class M0Prompt:
    """Payload of a prepared jina-m0 pair: token ids (score token included) and its images
    in prompt order (document images first)."""

    input_ids: list[int]
    images: tuple[M0Image, ...]


@dataclass(frozen=True)
class PackedInputs:
    """Device tensors of one packed micro-batch."""

    input_ids: torch.Tensor  # (T,)
    positions: torch.Tensor  # (3, T)
    image_index: torch.Tensor  # (image tokens,) positions of <|image_pad|> in the sequence
    last_index: torch.Tensor  # (pairs,)
    segments: PackedSegments


@dataclass(frozen=True)
class PaddedInputs:
    """Device tensors of one left-padded micro-batch."""

    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L)
    positions: torch.Tensor  # (3, B, L)
    image_index: torch.Tensor  # (image tokens,) flat indices into B * L


EncodeFn = Callable[[list[torch.Tensor], list[tuple[int, int, int]]], list[torch.Tensor]]


def resolve_image_features(prompts: Sequence[M0Prompt], cache: VisionFeatureCache,
                           encode: EncodeFn) -> torch.Tensor | None:
    """Features of every image of the micro-batch, concatenated in prompt order.

    Looks each image up in the cache (it may have been filled since preprocessing), runs
    ``encode`` once over the distinct missing images, stores the new features and counts
    hits (images served without running the encoder) and misses (images encoded).
    """
    images = [image for prompt in prompts for image in prompt.images]
    if not images:
        return None
    found: dict[str, torch.Tensor] = {}
    missing: dict[str, M0Image] = {}
    for image in images:
        if image.key in found or image.key in missing:
            continue
        entry = image.features if image.features is not None else _cached(cache, image.key)
        if entry is not None:
            found[image.key] = entry
        else:
            missing[image.key] = image
    if missing:
        todo = list(missing.values())
        encoded = encode([image.pixel_values for image in todo], [image.grid for image in todo])
        for image, features in zip(todo, encoded, strict=True):
            found[image.key] = features
            cache.put(image.key, CachedFeatures(features, image.grid))
    cache.count(hits=len(images) - len(missing), misses=len(missing))
    return torch.cat([found[image.key] for image in images])


def _cached(cache: VisionFeatureCache, key: str) -> torch.Tensor | None:
    entry = cache.get(key)
    return None if entry is None else entry.features


def pack(prompts: Sequence[M0Prompt], backbone: Any, image_token_id: int,
         device: torch.device) -> PackedInputs:
    """All pairs back to back: ids, per-pair positions, image slots and pair boundaries."""
    ids = torch.tensor([token for prompt in prompts for token in prompt.input_ids])
    positions = torch.cat([
        pair_positions(backbone, prompt.input_ids, [image.grid for image in prompt.images],
                       image_token_id)
        for prompt in prompts
    ], dim=1)
    segments = PackedSegments.from_lengths([len(p.input_ids) for p in prompts], device)
    image_index = (ids == image_token_id).nonzero().squeeze(1)
    last_index = torch.tensor(segments.last_positions)
    return PackedInputs(to_device(ids, device), to_device(positions, device),
                        to_device(image_index, device), to_device(last_index, device), segments)


def pad(prompts: Sequence[M0Prompt], backbone: Any, image_token_id: int, pad_token_id: int,
        device: torch.device) -> PaddedInputs:
    """Left-padded rows and M-RoPE positions over the non-padded tokens (reference layout)."""
    ids, mask = left_pad([prompt.input_ids for prompt in prompts], pad_token_id)
    grids = [image.grid for prompt in prompts for image in prompt.images]
    positions, _ = backbone.get_rope_index(
        ids, mm_token_type_ids=(ids == image_token_id).to(torch.int32),
        image_grid_thw=torch.tensor(grids) if grids else None, attention_mask=mask,
    )
    image_index = (ids.flatten() == image_token_id).nonzero().squeeze(1)
    return PaddedInputs(to_device(ids, device), to_device(mask, device),
                        to_device(positions, device), to_device(image_index, device))
