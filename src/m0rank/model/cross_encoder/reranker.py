"""Text cross-encoders on XLM-RoBERTa: bge-reranker-v2-m3 and jina-reranker-v2-base-multilingual.

References (what was read, and what it fixes here):

- ``BAAI/bge-reranker-v2-m3``: a plain transformers ``XLMRobertaForSequenceClassification``
  (``num_labels = 1``). Its model card scores with ``tokenizer(pairs, padding=True,
  truncation=True, max_length=512)`` and ``logits.view(-1)``; FlagEmbedding's
  ``compute_score(..., normalize=True)`` maps the logit through a sigmoid. Weight names are
  transformers' own (``roberta.embeddings.*``, ``roberta.encoder.layer.N.attention.self.query``,
  ``classifier.dense`` / ``classifier.out_proj``).
- ``jinaai/jina-reranker-v2-base-multilingual``: remote code from
  ``jinaai/xlm-roberta-flash-implementation`` (``modeling_xlm_roberta.py``, ``mha.py``,
  ``block.py``, ``embedding.py``; read from a public copy). ``config.json`` names
  ``XLMRobertaForSequenceClassification`` with an ``auto_map`` and no ``model_type``;
  ``compute_score`` tokenises pairs with ``padding=True, truncation=True, max_length`` (card:
  1024) and returns ``sigmoid(logit)``. Its blocks are post-norm BERT blocks
  (``norm1(x + out_proj(attn))``, ``norm2(h + fc2(gelu(fc1(h))))``), the embeddings add word,
  XLM-R position (``padding_idx + 1 + cumsum``) and token-type embeddings before ``emb_ln``,
  and the head is RoBERTa's. Its parameter names differ from transformers'; we map them
  (:data:`JINA_RENAMES`) and split the packed ``mixer.Wqkv`` (rows ``(three h d)`` =
  ``[query; key; value]``) onto transformers' ``XLMRobertaForSequenceClassification``.
  Verified against a straight-line re-implementation of those modules in the tests; the
  remote code masks padding with ``-10000`` where transformers uses the dtype minimum (no
  visible difference after softmax). Not verified: the released checkpoint file itself.

Both families read text only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from m0rank.config import ScoreOptions
from m0rank.errors import ModelLoadError
from m0rank.model.base import (
    LoadOptions,
    LoraTargets,
    PreparedPair,
    RerankerArchitecture,
    require_text_pair,
)
from m0rank.model.loading import empty_init, load_exact, read_safetensors
from m0rank.model.lora import load_merged_adapter, read_adapter_config
from m0rank.types import Document

__all__ = ["CrossEncoderReranker", "from_jina_names", "JINA_RENAMES"]

logger = logging.getLogger(__name__)

# Longest pair by default: the bge card's max_length=512, the jina card's max_length=1024.
BGE_MAX_LENGTH = 512
JINA_MAX_LENGTH = 1024

# jina remote-code name (regex) -> transformers XLMRobertaForSequenceClassification name.
JINA_RENAMES: tuple[tuple[str, str], ...] = (
    (r"^roberta\.emb_ln\.", "roberta.embeddings.LayerNorm."),
    (r"^roberta\.encoder\.layers\.(\d+)\.mixer\.out_proj\.",
     r"roberta.encoder.layer.\1.attention.output.dense."),
    (r"^roberta\.encoder\.layers\.(\d+)\.norm1\.",
     r"roberta.encoder.layer.\1.attention.output.LayerNorm."),
    (r"^roberta\.encoder\.layers\.(\d+)\.mlp\.fc1\.",
     r"roberta.encoder.layer.\1.intermediate.dense."),
    (r"^roberta\.encoder\.layers\.(\d+)\.mlp\.fc2\.", r"roberta.encoder.layer.\1.output.dense."),
    (r"^roberta\.encoder\.layers\.(\d+)\.norm2\.", r"roberta.encoder.layer.\1.output.LayerNorm."),
)
# LoRA targets (training): the attention and feed-forward linears of every encoder layer.
LORA_LINEARS = (r"roberta\.encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|"
                r"attention\.output\.dense|intermediate\.dense|output\.dense)")
_WQKV = re.compile(r"^roberta\.encoder\.layers\.(\d+)\.mixer\.Wqkv\.(weight|bias)$")
# Keys the remote code or old transformers store that the module does not have.
_IGNORED = re.compile(r"(^|\.)position_ids$|^roberta\.pooler\.")
# config.json fields of the remote code that transformers' config must not receive.
_CONFIG_DROP = ("architectures", "auto_map", "torch_dtype", "dtype", "use_flash_attn",
                "emb_pooler", "matryoshka_dimensions", "truncate_dim", "lora_adaptations",
                "_name_or_path", "transformers_version")


class CrossEncoderReranker(RerankerArchitecture):
    """A query/document pair through XLM-RoBERTa with a one-logit head; ``sigmoid(logit)``."""

    architecture_names: ClassVar[tuple[str, ...]] = ("XLMRobertaForSequenceClassification",)
    reads_text_layer: ClassVar[bool] = True  # reads text only: PDF pages by their text layer

    def __init__(self, module: Any, tokenizer: Any, device: torch.device, max_length: int,
                 model_name: str = "cross-encoder") -> None:
        self.module = module
        self.tokenizer = tokenizer
        self.device = device
        self.max_length = max_length
        self.model_name = model_name
        self.pad_token_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                                else 1)

    @classmethod
    def load(cls, path: Path, config: dict[str, Any], options: LoadOptions) -> CrossEncoderReranker:
        """Build transformers' module from ``config.json`` and load either weight naming; an
        adapter folder (``m0rank train --save adapter``) is merged into its base."""
        adapter = read_adapter_config(path)
        if adapter is not None:
            return load_merged_adapter(cls, path, adapter, options)
        from transformers import (
            AutoTokenizer,
            XLMRobertaConfig,
            XLMRobertaForSequenceClassification,
        )

        hf_config = XLMRobertaConfig.from_dict(
            {k: v for k, v in config.items() if k not in _CONFIG_DROP})
        if hf_config.num_labels != 1:
            raise ModelLoadError(f"{path}: a reranker needs num_labels = 1, config.json has "
                                 f"{hf_config.num_labels}")
        device = torch.device(options.device)
        with empty_init(device):
            module = XLMRobertaForSequenceClassification(hf_config)
        state = _read_weights(path)
        jina = any(_WQKV.match(name) for name in state)
        if jina:
            state = from_jina_names(state, hf_config.num_attention_heads)
        expected = {k for k in module.state_dict() if not _IGNORED.search(k)}
        load_exact(module, state, str(path), "XLM-RoBERTa cross-encoder", expected)
        module.to(dtype=options.dtype).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
        # XLM-R positions start at pad_token_id + 1, so the table holds max_pos - pad - 1 tokens.
        fits = hf_config.max_position_embeddings - hf_config.pad_token_id - 1
        return cls(module, tokenizer, device, min(JINA_MAX_LENGTH if jina else BGE_MAX_LENGTH,
                                                  fits),
                   model_name=options.model_name or "cross-encoder")

    def preprocess(self, query: Document, document: Document, options: ScoreOptions,
                   field: str) -> PreparedPair:
        """``<s> query </s></s> document </s>``, truncated longest-first as the cards do."""
        require_text_pair(query, document, field, self.model_name)
        limit = min(options.max_length, self.max_length)
        ids = self.tokenizer(query.text, document.text, truncation=True,
                             max_length=limit)["input_ids"]
        return PreparedPair(num_tokens=len(ids), payload=list(ids))

    @torch.inference_mode()
    def forward(self, batch: Sequence[PreparedPair]) -> torch.Tensor:
        """Right-pad, run the encoder and head, return float32 logits on the CPU."""
        return self._logits(batch).float().cpu()

    def train_logits(self, batch: Sequence[PreparedPair]) -> torch.Tensor:
        """:meth:`forward`'s code path with autograd on (logits on the device)."""
        return self._logits(batch)

    def trainable_module(self) -> Any:
        """transformers' ``XLMRobertaForSequenceClassification`` (encoder and head)."""
        return self.module

    def lora_targets(self, include_vision: bool = False) -> LoraTargets:
        """Attention and feed-forward linears; the classification head in full."""
        return LoraTargets(linear_pattern=LORA_LINEARS, head_modules=("classifier",))

    def save_pretrained(self, path: Path) -> None:
        """bge-reranker-v2-m3's layout: transformers' names, ``config.json``, tokenizer. (A
        model loaded from jina-reranker-v2's remote-code layout is saved in this layout too.)"""
        save_sequence_classifier(self.module, self.tokenizer, path, self.architecture_names)

    def _logits(self, batch: Sequence[PreparedPair]) -> torch.Tensor:
        longest = max(pair.num_tokens for pair in batch)
        ids = torch.full((len(batch), longest), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, pair in enumerate(batch):
            ids[row, : pair.num_tokens] = torch.tensor(pair.payload)
            mask[row, : pair.num_tokens] = 1
        logits = self.module(input_ids=ids.to(self.device),
                             attention_mask=mask.to(self.device)).logits  # (B, 1)
        return logits[:, 0]

    def postprocess(self, logits: torch.Tensor) -> list[float]:
        """``sigmoid(logit)``: FlagEmbedding's ``normalize=True`` and jina's compute_score."""
        return torch.sigmoid(logits).tolist()


def save_sequence_classifier(module: Any, tokenizer: Any, path: Path,
                             architectures: tuple[str, ...]) -> None:
    """transformers' ``save_pretrained`` of a one-logit classifier (``model.safetensors`` with
    its own names, ``config.json`` naming ``architectures``) and the tokenizer files."""
    path.mkdir(parents=True, exist_ok=True)
    module.config.architectures = list(architectures)
    module.save_pretrained(str(path), safe_serialization=True)
    tokenizer.save_pretrained(str(path))


def from_jina_names(state: dict[str, torch.Tensor], num_heads: int) -> dict[str, torch.Tensor]:
    """Map jina remote-code weight names onto transformers' names; split ``Wqkv``.

    ``Wqkv`` holds ``3 * hidden`` output rows ordered ``(three, heads, head_dim)``, so the
    first ``hidden`` rows are the query projection, then key, then value (``num_heads`` is
    only checked, the split does not depend on it).
    """
    mapped: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        packed = _WQKV.match(name)
        if packed:
            layer, kind = packed.groups()
            if tensor.shape[0] % (3 * num_heads):
                raise ModelLoadError(f"{name}: {tuple(tensor.shape)} is not 3 x heads rows")
            for part, chunk in zip(("query", "key", "value"), tensor.chunk(3, dim=0), strict=True):
                mapped[f"roberta.encoder.layer.{layer}.attention.self.{part}.{kind}"] = chunk
            continue
        for pattern, replacement in JINA_RENAMES:
            name = re.sub(pattern, replacement, name)
        mapped[name] = tensor
    return mapped


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if (path / "model.safetensors").exists() or (path / "model.safetensors.index.json").exists():
        state = read_safetensors(path)
    elif (path / "pytorch_model.bin").exists():
        state = torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    else:
        raise ModelLoadError(f"{path} has no model.safetensors or pytorch_model.bin")
    return {k: v for k, v in state.items() if not _IGNORED.search(k)}

