"""Random jina-reranker-m0 checkpoints in the exact released layout, for tests and benchmarks.

The released ``jinaai/jina-reranker-m0`` directory holds a flat Qwen2-VL-2B ``config.json``
(``architectures: ["JinaVLForRanking"]``, ``model_type: "qwen2_vl"``), one ``model.safetensors``
with the *flat* weight naming (``model.*`` for the language model, ``visual.*``, an untied and
unused ``lm_head.weight``, and the score head ``score.0.*`` / ``score.2.*``), the Qwen2-VL
tokenizer files and a ``preprocessor_config.json`` (m0-reference.md §1.1-1.3, §2).

This module writes that layout with random weights. It deliberately does not use m0rank's own
loader or model classes: the backbone comes straight from ``transformers`` so that tests compare
two independent code paths.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from m0rank.testing.qwen2_tokenizer import qwen2_tokenizer_dir

__all__ = ["TinySizes", "FULL_SIZES", "TINY_SIZES", "write_m0_checkpoint", "m0_config_dict",
           "write_qwen2vl_side_files", "to_flat_name"]

Naming = Literal["flat", "nested"]


@dataclass(frozen=True)
class TinySizes:
    """Backbone sizes; ``FULL_SIZES`` is Qwen2-VL-2B, ``TINY_SIZES`` runs in milliseconds."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    mrope_section: tuple[int, int, int]
    vision_depth: int
    vision_embed_dim: int
    vision_num_heads: int
    vision_mlp_ratio: int = 4


TINY_SIZES = TinySizes(64, 128, 2, 4, 2, (2, 3, 3), 2, 32, 2, 2)
FULL_SIZES = TinySizes(1536, 8960, 28, 12, 2, (16, 24, 24), 32, 1280, 16, 4)
VOCAB_SIZE = 151936


def m0_config_dict(sizes: TinySizes = TINY_SIZES) -> dict:
    """A Qwen2-VL-2B-style flat ``config.json`` as released with jina-reranker-m0."""
    return {
        "architectures": ["JinaVLForRanking"],
        "auto_map": {"AutoModel": "modeling.JinaVLForRanking"},
        "model_type": "qwen2_vl",
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "pad_token_id": 151643,
        "vision_start_token_id": 151652,
        "vision_end_token_id": 151653,
        "vision_token_id": 151654,
        "image_token_id": 151655,
        "video_token_id": 151656,
        "hidden_act": "silu",
        "hidden_size": sizes.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": sizes.intermediate_size,
        "max_position_embeddings": 32768,
        "max_window_layers": 28,
        "num_attention_heads": sizes.num_attention_heads,
        "num_hidden_layers": sizes.num_hidden_layers,
        "num_key_value_heads": sizes.num_key_value_heads,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "rope_scaling": {"type": "mrope", "mrope_section": list(sizes.mrope_section)},
        "sliding_window": 32768,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": VOCAB_SIZE,
        "vision_config": {
            "depth": sizes.vision_depth,
            "embed_dim": sizes.vision_embed_dim,
            "hidden_size": sizes.hidden_size,
            "hidden_act": "quick_gelu",
            "mlp_ratio": sizes.vision_mlp_ratio,
            "num_heads": sizes.vision_num_heads,
            "in_chans": 3,
            "spatial_patch_size": 14,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
    }


PREPROCESSOR_CONFIG = {
    # Qwen2-VL-2B-Instruct's file: it carries the library's large pixel defaults, which the
    # reference overrides with min_pixels=3136 / max_pixels=602112 at load time.
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2VLProcessor",
}


def write_m0_checkpoint(
    out_dir: Path,
    *,
    sizes: TinySizes = TINY_SIZES,
    seed: int = 0,
    naming: Naming = "flat",
    shards: int = 1,
    dtype: str = "float32",
) -> Path:
    """Write a random jina-reranker-m0 checkpoint to ``out_dir`` and return it.

    Args:
        sizes: Backbone sizes.
        seed: Seed for the random weights (same seed, same checkpoint).
        naming: ``"flat"`` (the released checkpoint: ``model.*``, ``visual.*``, ``lm_head.*``)
            or ``"nested"`` (transformers >= 4.52: ``model.language_model.*``,
            ``model.visual.*``).
        shards: Number of safetensors files; more than one writes an index as
            ``save_pretrained`` does.
        dtype: Storage dtype of the weights.
    """
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    config = m0_config_dict(sizes)
    state = _random_state_dict(config, seed, getattr(torch, dtype))
    if naming == "flat":
        state = {to_flat_name(name): tensor for name, tensor in state.items()}
    _write_safetensors(state, out_dir, shards)
    write_qwen2vl_side_files(out_dir, config)
    return out_dir


def write_qwen2vl_side_files(out_dir: Path, config: dict) -> None:
    """``config.json``, ``preprocessor_config.json`` and the Qwen2-VL tokenizer files."""
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    (out_dir / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2))
    for path in qwen2_tokenizer_dir().iterdir():
        shutil.copy(path, out_dir / path.name)


def _random_state_dict(config: dict, seed: int, dtype: object) -> dict:
    """Random backbone from transformers' own class, plus an untied lm_head and a score head."""
    import torch
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(Qwen2VLConfig(**config))
    hidden = config["hidden_size"]
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    state["lm_head.weight"] = torch.randn(config["vocab_size"], hidden) * 0.02
    # A score head with a real spread so rankings in tests are not ties.
    state["score.0.weight"] = torch.randn(hidden, hidden) / hidden**0.5
    state["score.0.bias"] = torch.randn(hidden) * 0.1
    state["score.2.weight"] = torch.randn(1, hidden) / hidden**0.5 * 4
    state["score.2.bias"] = torch.tensor([2.65])
    return {name: tensor.to(dtype).contiguous() for name, tensor in state.items()}


def to_flat_name(name: str) -> str:
    if name.startswith("model.language_model."):
        return "model." + name.removeprefix("model.language_model.")
    if name.startswith("model.visual."):
        return "visual." + name.removeprefix("model.visual.")
    return name


def _write_safetensors(state: dict, out_dir: Path, shards: int) -> None:
    from safetensors.torch import save_file

    metadata = {"format": "pt"}
    if shards == 1:
        save_file(state, str(out_dir / "model.safetensors"), metadata=metadata)
        return
    names = sorted(state)
    weight_map = {}
    for index in range(shards):
        file_name = f"model-{index + 1:05d}-of-{shards:05d}.safetensors"
        part = {name: state[name] for name in names[index::shards]}
        save_file(part, str(out_dir / file_name), metadata=metadata)
        weight_map.update(dict.fromkeys(part, file_name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index_doc = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(index_doc, indent=2))
