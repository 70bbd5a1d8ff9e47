"""Tiny random XLM-RoBERTa cross-encoder checkpoints in the two released layouts.

- ``write_bge_checkpoint``: ``BAAI/bge-reranker-v2-m3``'s layout: ``config.json`` with
  ``architectures: ["XLMRobertaForSequenceClassification"]``, ``model_type: "xlm-roberta"``,
  ``num_labels: 1`` (``id2label`` with one label) and ``model.safetensors`` with transformers'
  own parameter names.
- ``write_jina_v2_checkpoint``: ``jinaai/jina-reranker-v2-base-multilingual``'s layout: the
  remote-code ``config.json`` (``auto_map`` into ``modeling_xlm_roberta``, no ``model_type``,
  ``use_flash_attn``) and weights named as the flash implementation names them
  (``roberta.emb_ln``, ``roberta.encoder.layers.N.mixer.Wqkv``, ``norm1``, ``mlp.fc1``...).

Both carry a small XLM-R style tokenizer (SentencePiece-Unigram ``tokenizer.json`` with
``<s> A </s></s> B </s>`` pairs), trained here on a few sentences. Weights are drawn directly
with ``torch`` (no m0rank code is involved), so tests compare independent code paths.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["TINY_XLMR", "write_xlmr_tokenizer", "write_bge_checkpoint",
           "write_jina_v2_checkpoint", "random_xlmr_state"]

TINY_XLMR = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
             "intermediate_size": 64, "max_position_embeddings": 130}

_SENTENCES = (
    "what is panda", "the giant panda is a bear species endemic to china",
    "solar panel sales grew forty percent in the last quarter", "rye bread recipe with sourdough",
    "die neuen Fahrpläne der Bahnstrecke München Berlin gelten ab Dezember",
    "上海明天有大雨 气温十五度", "el programa de lavado en frío dura treinta minutos",
    "le musée du Louvre est fermé le mardi",
)


def write_xlmr_tokenizer(out_dir: Path, vocab_size: int = 200) -> int:
    """Write ``tokenizer.json`` and its config files; return the vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, unk_token="<unk>",
                                      special_tokens=["<s>", "<pad>", "</s>", "<unk>"])
    tokenizer.train_from_iterator(list(_SENTENCES) * 4, trainer)
    tokenizer.add_special_tokens(["<mask>"])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)])
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"))
    specials = {"bos_token": "<s>", "eos_token": "</s>", "sep_token": "</s>",
                "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>",
                "mask_token": "<mask>"}
    (out_dir / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))
    config = {"tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 8192, **specials}
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return tokenizer.get_vocab_size()


def random_xlmr_state(vocab_size: int, seed: int, sizes: dict[str, int] = TINY_XLMR) -> dict:
    """Random weights with transformers' ``XLMRobertaForSequenceClassification`` names."""
    import torch

    g = torch.Generator().manual_seed(seed)
    h, inter = sizes["hidden_size"], sizes["intermediate_size"]

    def rnd(*shape: int, scale: float = 0.2) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    state = {
        "roberta.embeddings.word_embeddings.weight": rnd(vocab_size, h),
        "roberta.embeddings.position_embeddings.weight": rnd(sizes["max_position_embeddings"], h),
        "roberta.embeddings.token_type_embeddings.weight": rnd(1, h),
        "roberta.embeddings.LayerNorm.weight": 1 + rnd(h, scale=0.1),
        "roberta.embeddings.LayerNorm.bias": rnd(h, scale=0.1),
        "classifier.dense.weight": rnd(h, h), "classifier.dense.bias": rnd(h),
        "classifier.out_proj.weight": rnd(1, h, scale=1.0), "classifier.out_proj.bias": rnd(1),
    }
    for i in range(sizes["num_hidden_layers"]):
        p = f"roberta.encoder.layer.{i}."
        for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            state[p + name + ".weight"], state[p + name + ".bias"] = rnd(h, h), rnd(h)
        state[p + "intermediate.dense.weight"] = rnd(inter, h)
        state[p + "intermediate.dense.bias"] = rnd(inter)
        state[p + "output.dense.weight"], state[p + "output.dense.bias"] = rnd(h, inter), rnd(h)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            state[p + norm + ".weight"], state[p + norm + ".bias"] = 1 + rnd(h, scale=0.1), rnd(h)
    return state


def write_bge_checkpoint(out_dir: Path, *, seed: int = 0) -> Path:
    """A random cross-encoder in bge-reranker-v2-m3's layout."""
    from safetensors.torch import save_file

    vocab = write_xlmr_tokenizer(out_dir)
    config = {
        "architectures": ["XLMRobertaForSequenceClassification"], "model_type": "xlm-roberta",
        "attention_probs_dropout_prob": 0.1, "bos_token_id": 0, "eos_token_id": 2,
        "pad_token_id": 1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
        "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}, "initializer_range": 0.02,
        "layer_norm_eps": 1e-05, "position_embedding_type": "absolute", "type_vocab_size": 1,
        "torch_dtype": "float32", "vocab_size": vocab, **TINY_XLMR,
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    save_file(random_xlmr_state(vocab, seed), str(out_dir / "model.safetensors"),
              metadata={"format": "pt"})
    return out_dir


def write_jina_v2_checkpoint(out_dir: Path, *, seed: int = 0) -> Path:
    """A random cross-encoder in jina-reranker-v2-base-multilingual's remote-code layout."""
    import torch
    from safetensors.torch import save_file

    vocab = write_xlmr_tokenizer(out_dir)
    config = {
        "_name_or_path": "jina-reranker-v2-base-multilingual",
        "architectures": ["XLMRobertaForSequenceClassification"],
        "attention_probs_dropout_prob": 0.1,
        "auto_map": {
            "AutoConfig": "configuration_xlm_roberta.XLMRobertaFlashConfig",
            "AutoModel": "modeling_xlm_roberta.XLMRobertaModel",
            "AutoModelForSequenceClassification":
                "modeling_xlm_roberta.XLMRobertaForSequenceClassification",
        },
        "bos_token_id": 0, "classifier_dropout": None, "emb_pooler": None, "eos_token_id": 2,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "num_labels": 1,
        "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}, "initializer_range": 0.02,
        "layer_norm_eps": 1e-05, "output_past": True, "pad_token_id": 1,
        "position_embedding_type": "absolute", "torch_dtype": "float32", "type_vocab_size": 1,
        "use_cache": False, "use_flash_attn": True, "vocab_size": vocab, **TINY_XLMR,
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    hf = random_xlmr_state(vocab, seed)
    state = {k: v for k, v in hf.items() if not k.startswith("roberta.encoder.")
             and not k.startswith("roberta.embeddings.LayerNorm")}
    state["roberta.emb_ln.weight"] = hf["roberta.embeddings.LayerNorm.weight"]
    state["roberta.emb_ln.bias"] = hf["roberta.embeddings.LayerNorm.bias"]
    for i in range(TINY_XLMR["num_hidden_layers"]):
        src, dst = f"roberta.encoder.layer.{i}.", f"roberta.encoder.layers.{i}."
        for kind in ("weight", "bias"):
            state[dst + f"mixer.Wqkv.{kind}"] = torch.cat(
                [hf[src + f"attention.self.{p}.{kind}"] for p in ("query", "key", "value")])
            for jina, ours in (("mixer.out_proj", "attention.output.dense"),
                               ("norm1", "attention.output.LayerNorm"),
                               ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense"),
                               ("norm2", "output.LayerNorm")):
                state[dst + f"{jina}.{kind}"] = hf[src + f"{ours}.{kind}"]
    save_file({k: v.contiguous() for k, v in state.items()}, str(out_dir / "model.safetensors"),
              metadata={"format": "pt"})
    return out_dir
