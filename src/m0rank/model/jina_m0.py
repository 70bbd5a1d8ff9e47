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
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Iterator

import torch
from torch import nn

from m0rank.config import ScoreOptions
from m0rank.errors import ModelLoadError
from m0rank.model.base import LoadOptions, PreparedPair, RerankerArchitecture
from m0rank.model.loading import read_safetensors
from m0rank.preprocessing.prompt import format_m0_prompt
from m0rank.preprocessing.qwen2vl import EncodedPrompt, Qwen2VLInputEncoder
from m0rank.types import Document

__all__ = ["JinaM0Reranker", "JinaM0Module", "SCORE_TOKEN_ID", "LOGIT_BIAS", "to_module_names"]

logger = logging.getLogger(__name__)

SCORE_TOKEN_ID = 100
LOGIT_BIAS = 2.65
_DROPPED_PREFIXES = ("lm_head.",)


class JinaM0Module(nn.Module):
    """Backbone (transformers' ``Qwen2VLModel``, no LM head) plus the score head."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        from transformers import Qwen2VLModel

        self.model = Qwen2VLModel(config)
        hidden = config.text_config.hidden_size
        self.score = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        image_grid_thw: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Raw logits, one per row, from the last (score) token of left-padded rows."""
        image_token_id = self.model.config.image_token_id
        mm_token_type_ids = (input_ids == image_token_id).to(torch.int32)
        position_ids, _ = self.model.get_rope_index(
            input_ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=image_grid_thw,
            attention_mask=attention_mask,
        )
        outputs = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            pixel_values=pixel_values, image_grid_thw=image_grid_thw,
            mm_token_type_ids=mm_token_type_ids, use_cache=False,
        )
        last_hidden = outputs.last_hidden_state[:, -1]
        return self.score(last_hidden).squeeze(-1)


class JinaM0Reranker(RerankerArchitecture):
    """jina-reranker-m0 through the three-stage contract (see module docstring)."""

    architecture_names: ClassVar[tuple[str, ...]] = ("JinaVLForRanking",)

    def __init__(self, module: JinaM0Module, encoder: Qwen2VLInputEncoder, device: torch.device,
                 model_name: str = "jina-reranker-m0") -> None:
        self.module = module
        self.encoder = encoder
        self.device = device
        self.model_name = model_name
        self.pad_token_id = int(encoder.tokenizer.pad_token_id or 151643)

    @classmethod
    def load(cls, path: Path, config: dict[str, Any], options: LoadOptions) -> JinaM0Reranker:
        """Build the backbone from ``config.json`` and load either weight naming into it."""
        from transformers import Qwen2VLConfig

        # The storage dtype in config.json must not decide the compute dtype: drop it.
        ignored = ("architectures", "auto_map", "torch_dtype", "dtype")
        qwen_config = Qwen2VLConfig.from_dict({k: v for k, v in config.items() if k not in ignored})
        device = torch.device(options.device)
        with _empty_init(options.dtype, device):
            module = JinaM0Module(qwen_config)
        state = to_module_names(read_safetensors(path), source=str(path))
        _load_exact(module, state, str(path))
        module.to(dtype=options.dtype).eval()
        encoder = Qwen2VLInputEncoder.from_pretrained(path, options.image_sizing)
        return cls(module, encoder, device)

    def preprocess(self, query: Document, document: Document, options: ScoreOptions,
                   field: str) -> PreparedPair:
        """Template, truncation, tokenisation and image patches for one pair (CPU)."""
        doc_text = document.text
        if doc_text is not None:
            doc_text = self.encoder.truncate_text(doc_text, options.effective_max_doc_length)
        prompt = format_m0_prompt(query.text, len(query.images), doc_text, len(document.images))
        images = [*document.images, *query.images]  # prompt order: document first
        encoded = self.encoder.encode(prompt, images, options.prompt_budget, field)
        encoded = EncodedPrompt([*encoded.input_ids, SCORE_TOKEN_ID], encoded.pixel_values,
                                encoded.image_grid_thw)
        return PreparedPair(num_tokens=len(encoded.input_ids), payload=encoded)

    @torch.inference_mode()
    def forward(self, batch: Sequence[PreparedPair]) -> torch.Tensor:
        """Left-pad a micro-batch, run backbone and head, return float32 logits on the CPU."""
        inputs = self._collate([pair.payload for pair in batch])
        return self.module(**inputs).float().cpu()

    def postprocess(self, logits: torch.Tensor) -> list[float]:
        """``sigmoid(logit - 2.65)``, the reference's normalisation."""
        return torch.sigmoid(logits - LOGIT_BIAS).tolist()

    def warmup(self) -> None:
        """One tiny text pair through the model."""
        prepared = self.preprocess(Document(text="warm up"), Document(text="warm up"),
                                   ScoreOptions(), "warmup")
        self.forward([prepared])

    def save_pretrained(self, out_dir: Path) -> None:
        """Write the checkpoint in the released layout (flat naming, config, tokenizer)."""
        from safetensors.torch import save_file

        out_dir.mkdir(parents=True, exist_ok=True)
        state = {to_flat_name(k): v.detach().cpu().contiguous()
                 for k, v in self.module.state_dict().items()}
        save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
        config = self.module.model.config.to_dict()
        config["architectures"] = list(self.architecture_names)
        import json

        (out_dir / "config.json").write_text(json.dumps(config, indent=2, default=str))
        self.encoder.tokenizer.save_pretrained(out_dir)
        self.encoder.image_processor.save_pretrained(out_dir)

    def _collate(self, encoded: Sequence[EncodedPrompt]) -> dict[str, torch.Tensor | None]:
        longest = max(len(item.input_ids) for item in encoded)
        ids = torch.full((len(encoded), longest), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), longest), dtype=torch.long)
        for row, item in enumerate(encoded):
            ids[row, longest - len(item.input_ids):] = torch.tensor(item.input_ids)
            mask[row, longest - len(item.input_ids):] = 1
        patches = [item.pixel_values for item in encoded if item.pixel_values is not None]
        grids = [grid for item in encoded for grid in item.image_grid_thw]
        dtype = next(self.module.parameters()).dtype
        return {
            "input_ids": ids.to(self.device),
            "attention_mask": mask.to(self.device),
            "pixel_values": torch.cat(patches).to(self.device, dtype) if patches else None,
            "image_grid_thw": torch.tensor(grids, device=self.device) if grids else None,
        }


def to_module_names(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Map either checkpoint naming onto :class:`JinaM0Module`'s parameter names.

    Flat (released): ``model.*`` -> ``model.language_model.*``, ``visual.*`` -> ``model.visual.*``.
    Nested (transformers >= 4.52): already ``model.language_model.*`` / ``model.visual.*``.
    ``lm_head.*`` is dropped in both.
    """
    nested = any(k.startswith(("model.language_model.", "model.visual.")) for k in state)
    mapped = {}
    for name, tensor in state.items():
        if name.startswith(_DROPPED_PREFIXES):
            continue
        mapped[name if nested else _from_flat_name(name)] = tensor
    if not mapped:
        raise ModelLoadError(f"{source}: the checkpoint holds no usable tensors")
    return mapped


def to_flat_name(name: str) -> str:
    """Module name -> the released checkpoint's flat name."""
    if name.startswith("model.language_model."):
        return "model." + name.removeprefix("model.language_model.")
    if name.startswith("model.visual."):
        return "visual." + name.removeprefix("model.visual.")
    return name


def _from_flat_name(name: str) -> str:
    if name.startswith("visual."):
        return "model." + name
    if name.startswith("model."):
        return "model.language_model." + name.removeprefix("model.")
    return name


def _load_exact(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load weights, failing loudly on missing or unexpected tensors (never random weights)."""
    expected = set(module.state_dict())
    missing = sorted(expected - state.keys())
    unexpected = sorted(state.keys() - expected)
    if missing or unexpected:
        raise ModelLoadError(
            f"{source}: checkpoint does not match the jina-reranker-m0 layout; "
            f"missing {len(missing)} tensors (e.g. {missing[:3]}), "
            f"unexpected {len(unexpected)} (e.g. {unexpected[:3]})"
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"{source}: tensor shapes do not match config.json: "
                             f"{str(exc)[:300]}") from None


@contextmanager
def _empty_init(dtype: torch.dtype, device: torch.device) -> Iterator[None]:
    """Allocate parameters directly in ``dtype`` on ``device`` and skip random init."""
    from transformers.initialization import no_init_weights

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with no_init_weights(), device:
            yield
    finally:
        torch.set_default_dtype(previous)
