"""jina-reranker-m0: Qwen2-VL-2B with an MLP score head on the last token.

Reference: ``jinaai/jina-reranker-m0`` ``modeling.py`` (``JinaVLForRanking``, HF remote code)
and vLLM's ``vllm/model_executor/models/jina_vl.py``; the facts used are collected in
``shared/spec/m0-reference.md`` (§1-3). What we reproduce:

- prompt ``"**Document**:\\n{doc}\\n**Query**:\\n{query}"`` (document first), then token 100;
- left padding; the final-layer hidden state (after the last RMSNorm) of the last token;
- head ``Linear(H, H) -> ReLU -> Linear(H, 1)``; relevance ``sigmoid(logit - 2.65)``;
- image pixel budget 3136..602112 passed explicitly; text documents pre-truncated to
  ``max_doc_length`` tokens, the prompt to ``max_length - 1``.

Choices where the reference is silent or unconfirmed (written down as asked):

- M-RoPE positions are computed over non-padded tokens for every batch, text-only included, as
  transformers 4.x ``get_rope_index`` did in the reference era. (transformers 5 falls back to
  plain ``arange`` positions for text-only batches, which would shift left-padded rows.)
- The head runs in the backbone's dtype, as in the reference (no fp32 head).
- ``lm_head.weight`` in the checkpoint is unused (the reference replaces ``lm_head`` with
  ``Identity``); it is dropped at load time without a warning.

How it runs (same scores, less work; docs/performance.md): micro-batches are packed without
padding and attend per pair (``m0rank.model.qwen2vl.packing``), the vision tower runs once
per micro-batch over every image not in the vision-feature cache (``vision_cache``), and only
each pair's last token goes through the final norm and the head. ``packing=False`` gives the
left-padded path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from m0rank.config import ScoreOptions
from m0rank.model.base import LoadOptions, LoraTargets, PreparedPair, RerankerArchitecture
from m0rank.model.jina_m0.inputs import (
    M0Image,
    M0Prompt,
    PackedInputs,
    PaddedInputs,
    pack,
    pad,
    resolve_image_features,
)
from m0rank.model.jina_m0.prompt import format_m0_prompt
from m0rank.model.loading import empty_init, read_safetensors
from m0rank.model.lora import load_merged_adapter, read_adapter_config
from m0rank.model.qwen2vl.collate import QWEN2_PAD_TOKEN_ID
from m0rank.model.qwen2vl.inputs import Qwen2VLInputEncoder
from m0rank.model.qwen2vl.packing import decode_packed, enable_packed_attention, to_device
from m0rank.model.qwen2vl.vision_cache import VisionFeatureCache, image_cache_key
from m0rank.model.qwen2vl.weights import load_qwen2vl_state, to_flat_names, to_nested_names
from m0rank.types import CacheStats, Document

__all__ = ["JinaM0Reranker", "JinaM0Module", "SCORE_TOKEN_ID", "LOGIT_BIAS", "to_module_names"]

logger = logging.getLogger(__name__)

SCORE_TOKEN_ID = 100
LOGIT_BIAS = 2.65
_DROPPED_PREFIXES = ("lm_head.",)
# Device bytes of cached vision features by default: a 768-token page is 2.4 MB in bf16, so
# 4 GiB keeps ~1,700 pages on a GPU; 512 MiB on the CPU.
DEFAULT_VISION_CACHE_BYTES = {"cuda": 4 << 30, "cpu": 512 << 20}
# LoRA targets (training): every linear of the language model's decoder layers; the vision
# tower's blocks only when asked. Patterns are full matches over JinaM0Module's names.
_LLM_LINEARS = (r"model\.language_model\.layers\.\d+\."
                r"(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)")
_VISION_LINEARS = r"model\.visual\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.(fc1|fc2))"


class JinaM0Module(nn.Module):
    """Backbone (transformers' ``Qwen2VLModel``, no LM head) plus the score head; run through
    :meth:`forward_packed` or :meth:`forward_padded` (images encoded first, see
    :meth:`encode_images`)."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        from transformers import Qwen2VLModel

        self.model = Qwen2VLModel(config)
        hidden = config.text_config.hidden_size
        self.score = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def encode_images(self, pixel_values: list[torch.Tensor],
                      grids: list[tuple[int, int, int]]) -> list[torch.Tensor]:
        """Merged vision features ``(tokens, hidden)`` of each image, all images in one call
        of the vision tower (its attention stays within each image)."""
        device, dtype = self.model.visual.get_device(), self.model.visual.get_dtype()
        pixels = to_device(torch.cat(pixel_values), device, dtype)
        grid_thw = to_device(torch.tensor(grids), device)
        merged = self.model.visual(pixels, grid_thw=grid_thw).pooler_output
        sizes = [t * h * w // self.model.visual.spatial_merge_size**2 for t, h, w in grids]
        # clone: a cached page must not keep the whole micro-batch's tensor alive
        return [part.clone() for part in merged.split(sizes)]

    def forward_packed(self, inputs: PackedInputs, image_features: torch.Tensor | None,
                       ) -> torch.Tensor:
        """Raw logits of packed pairs: per-pair attention, head on the last tokens only."""
        text_model = self.model.language_model
        embeds = text_model.embed_tokens(inputs.input_ids)  # (T, H)
        if image_features is not None:
            embeds = embeds.index_copy(0, inputs.image_index, image_features.to(embeds.dtype))
        last = decode_packed(text_model, embeds, inputs.positions, inputs.segments,
                             inputs.last_index)
        return self.score(last).squeeze(-1)

    def forward_padded(self, inputs: PaddedInputs, image_features: torch.Tensor | None,
                       ) -> torch.Tensor:
        """Raw logits of left-padded rows with precomputed image features."""
        text_model = self.model.language_model
        embeds = text_model.embed_tokens(inputs.input_ids)  # (B, L, H)
        if image_features is not None:
            flat = embeds.flatten(0, 1).index_copy(0, inputs.image_index,
                                                   image_features.to(embeds.dtype))
            embeds = flat.view_as(embeds)
        outputs = text_model(inputs_embeds=embeds, attention_mask=inputs.attention_mask,
                             position_ids=inputs.positions, use_cache=False)
        return self.score(outputs.last_hidden_state[:, -1]).squeeze(-1)


class JinaM0Reranker(RerankerArchitecture):
    """jina-reranker-m0 through the three-stage contract (see module docstring).

    Args:
        module: The loaded backbone and head.
        encoder: Tokeniser and image processor.
        device: Where ``module`` lives.
        model_name: Name reported to users.
        vision_cache_bytes: Device bytes for cached vision features (``0`` disables the
            cache); default by device type, see ``DEFAULT_VISION_CACHE_BYTES``.
        packing: Run micro-batches packed (default) instead of left-padded.
    """

    architecture_names: ClassVar[tuple[str, ...]] = ("JinaVLForRanking",)
    # preprocess is thread-safe (the tokenizer is only read), so the engine may run it in
    # threads; forward is split into launch/collect so batch n + 1 is queued before n is read
    parallel_preprocess: ClassVar[bool] = True
    overlaps_batches: ClassVar[bool] = True
    score_logit_offset: ClassVar[float] = LOGIT_BIAS

    def __init__(self, module: JinaM0Module, encoder: Qwen2VLInputEncoder, device: torch.device,
                 model_name: str = "jina-reranker-m0", *, vision_cache_bytes: int | None = None,
                 packing: bool = True) -> None:
        self.module = module
        self.encoder = encoder
        self.device = device
        self.model_name = model_name
        self.pad_token_id = int(encoder.tokenizer.pad_token_id or QWEN2_PAD_TOKEN_ID)
        self.image_token_id = int(module.model.config.image_token_id)
        self.packing = packing
        self.released_config: dict[str, Any] | None = None
        if vision_cache_bytes is None:
            vision_cache_bytes = DEFAULT_VISION_CACHE_BYTES.get(device.type, 0)
        self.vision_cache = VisionFeatureCache(vision_cache_bytes)
        self._image_settings = _image_settings(encoder.image_processor, module)
        enable_packed_attention(module.model.language_model)

    @property
    def packs_sequences(self) -> bool:  # type: ignore[override]
        """True when micro-batches cost their real tokens (packed), not rows x longest."""
        return self.packing

    @classmethod
    def load(cls, path: Path, config: dict[str, Any], options: LoadOptions) -> JinaM0Reranker:
        """Build the backbone from ``config.json`` and load either weight naming into it; an
        adapter folder (``m0rank train --save adapter``) is merged into its base."""
        from transformers import Qwen2VLConfig

        adapter = read_adapter_config(path)
        if adapter is not None:
            model = load_merged_adapter(cls, path, adapter, options)
            model._image_settings = _image_settings(model.encoder.image_processor, model.module)
            return model

        # The storage dtype in config.json must not decide the compute dtype: drop it.
        ignored = ("architectures", "auto_map", "torch_dtype", "dtype")
        qwen_config = Qwen2VLConfig.from_dict({k: v for k, v in config.items() if k not in ignored})
        device = torch.device(options.device)
        with empty_init(device, options.dtype):
            module = JinaM0Module(qwen_config)
        state = to_module_names(read_safetensors(path), source=str(path))
        load_qwen2vl_state(module, state, str(path), "jina-reranker-m0")
        module.to(dtype=options.dtype).eval()
        encoder = Qwen2VLInputEncoder.from_pretrained(path, options.image_sizing)
        model = cls(module, encoder, device, options.model_name or "jina-reranker-m0",
                    vision_cache_bytes=options.vision_cache_bytes)
        model.released_config = dict(config)
        return model

    def preprocess(self, query: Document, document: Document, options: ScoreOptions,
                   field: str) -> PreparedPair:
        """Template, truncation, tokenisation and image patches for one pair (CPU).

        An image whose features are cached is not resized or normalised again.
        """
        # prompt order: document first
        images = tuple(self._prepare_image(image) for image in [*document.images, *query.images])
        doc_text = document.text
        if doc_text is not None:
            doc_text = self.encoder.truncate_text(doc_text, options.effective_max_doc_length)
        prompt = format_m0_prompt(query.text, len(query.images), doc_text, len(document.images))
        ids = self.encoder.encode_ids(prompt, [image.grid for image in images],
                                      options.prompt_budget, field)
        return PreparedPair(num_tokens=len(ids) + 1,
                            payload=M0Prompt([*ids, SCORE_TOKEN_ID], images))

    @torch.inference_mode()
    def forward(self, batch: Sequence[PreparedPair]) -> torch.Tensor:
        """Run a micro-batch (packed unless ``packing`` is off); float32 logits on the CPU."""
        return self.collect(self.launch(batch))

    @torch.inference_mode()
    def launch(self, batch: Sequence[PreparedPair]) -> torch.Tensor:
        """Collate and queue a micro-batch on the device without waiting for the result, so
        the engine can collate the next one meanwhile; :meth:`collect` waits."""
        return self._logits(batch)

    def train_logits(self, batch: Sequence[PreparedPair]) -> torch.Tensor:
        """:meth:`launch`'s code path with autograd on (logits on the device, module dtype).
        Load with ``vision_cache_bytes=0`` to train: cached features are inference tensors."""
        return self._logits(batch)

    def trainable_module(self) -> JinaM0Module:
        """Backbone and score head (a trainer sets train mode and attaches adapters)."""
        return self.module

    def lora_targets(self, include_vision: bool = False) -> LoraTargets:
        """The language model's linears (and the vision tower's when asked); head in full."""
        pattern = f"({_LLM_LINEARS}|{_VISION_LINEARS})" if include_vision else _LLM_LINEARS
        return LoraTargets(linear_pattern=pattern, head_modules=("score",))

    def _logits(self, batch: Sequence[PreparedPair]) -> torch.Tensor:
        prompts, rows = _distinct([pair.payload for pair in batch])
        features = resolve_image_features(prompts, self.vision_cache, self.module.encode_images)
        backbone = self.module.model
        if self.packing:
            packed = pack(prompts, backbone, self.image_token_id, self.device)
            logits = self.module.forward_packed(packed, features)
        else:
            padded = pad(prompts, backbone, self.image_token_id, self.pad_token_id, self.device)
            logits = self.module.forward_padded(padded, features)
        if len(prompts) == len(rows):
            return logits
        return logits.index_select(0, to_device(torch.tensor(rows), self.device))

    def collect(self, logits: torch.Tensor) -> torch.Tensor:
        """Wait for :meth:`launch`'s logits and bring them to the CPU as float32."""
        return logits.float().cpu()

    def postprocess(self, logits: torch.Tensor) -> list[float]:
        """``sigmoid(logit - 2.65)``, the reference's normalisation."""
        return torch.sigmoid(logits - LOGIT_BIAS).tolist()

    def cache_stats(self) -> dict[str, CacheStats]:
        """The vision-feature cache's counters, reported as ``cache="vision"``."""
        return {"vision": self.vision_cache.stats()}

    def warmup(self) -> None:
        """One tiny text pair through the model."""
        prepared = self.preprocess(Document(text="warm up"), Document(text="warm up"),
                                   ScoreOptions(), "warmup")
        self.forward([prepared])

    def save_pretrained(self, out_dir: Path) -> None:
        """Write the checkpoint in the released layout (flat naming with ``lm_head.weight``,
        config, tokenizer, preprocessor)."""
        from safetensors.torch import save_file

        out_dir.mkdir(parents=True, exist_ok=True)
        state = to_flat_names({k: v.detach().cpu().contiguous()
                               for k, v in self.module.state_dict().items()})
        # The released file carries an unused, untied lm_head.weight and loaders built on
        # Qwen2VLForConditionalGeneration expect it; it is dropped at load, so write a
        # placeholder of its shape (a copy of the input embeddings; never read for scores).
        state.setdefault("lm_head.weight", state["model.embed_tokens.weight"].clone())
        save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
        # The flat config.json read at load (the released form the reference code and vLLM
        # read); transformers' nested to_dict() only for a model built in memory.
        config = dict(self.released_config or self.module.model.config.to_dict())
        config["architectures"] = list(self.architecture_names)
        config["torch_dtype"] = str(next(iter(state.values())).dtype).removeprefix("torch.")
        config.pop("dtype", None)
        import json

        (out_dir / "config.json").write_text(json.dumps(config, indent=2, default=str))
        self.encoder.tokenizer.save_pretrained(out_dir)
        self.encoder.image_processor.save_pretrained(out_dir)

    def _prepare_image(self, image: Any) -> M0Image:
        key = image_cache_key(image, self._image_settings)
        entry = self.vision_cache.get(key)
        if entry is not None:
            return M0Image(key, entry.grid, None, entry.features)
        pixel_values, grids = self.encoder.encode_images([image])
        return M0Image(key, grids[0], pixel_values, None)


def to_module_names(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Map either checkpoint naming onto :class:`JinaM0Module`'s parameter names.

    Flat (released): ``model.*`` -> ``model.language_model.*``, ``visual.*`` -> ``model.visual.*``.
    Nested (transformers >= 4.52): already ``model.language_model.*`` / ``model.visual.*``.
    ``lm_head.*`` is dropped in both.
    """
    return to_nested_names(state, source, dropped_prefixes=_DROPPED_PREFIXES)


def _distinct(prompts: list[M0Prompt]) -> tuple[list[M0Prompt], list[int]]:
    """Identical prompts of a micro-batch, run once: the distinct prompts and, per input,
    the row of its result (so duplicates get bit-identical scores, and ties stay ties)."""
    first: dict[tuple[Any, ...], int] = {}
    rows = [first.setdefault((tuple(p.input_ids), tuple(i.key for i in p.images)), len(first))
            for p in prompts]
    distinct: list[M0Prompt] = [None] * len(first)  # type: ignore[list-item]
    for prompt, row in zip(prompts, rows, strict=True):
        distinct[row] = prompt
    return distinct, rows


def _image_settings(processor: Any, module: JinaM0Module) -> str:
    """What besides the pixels decides an image's features: the resize and normalisation
    settings, and a hash of the vision tower's first layer and dtype (the weights)."""
    import hashlib

    weight = module.model.visual.patch_embed.proj.weight.detach()
    digest = hashlib.sha256(str(weight.dtype).encode())
    digest.update(weight.float().cpu().numpy().tobytes())
    fields = ("size", "patch_size", "temporal_patch_size", "merge_size", "image_mean", "image_std")
    settings = "|".join(repr(getattr(processor, name, None)) for name in fields)
    return f"{settings}|{digest.hexdigest()[:16]}"
