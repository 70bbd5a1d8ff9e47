"""Tiny random MonoQwen2-VL checkpoints in the released layout: base model + LoRA adapter.

``lightonai/MonoQwen2-VL-v0.1`` is a PEFT LoRA adapter on ``Qwen/Qwen2-VL-2B-Instruct``:
``adapter_config.json`` (``peft_type: LORA``, ``base_model_name_or_path``) and
``adapter_model.safetensors`` with peft's names in the pre-4.52 transformers layout
(``base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight``), plus a Qwen2-VL
``config.json``. The base is Qwen2-VL-2B-Instruct's layout: flat weight names (``model.*``,
``visual.*``), tied word embeddings (no ``lm_head.weight``), the Qwen2-VL tokenizer and
``preprocessor_config.json``.

Weights come straight from ``transformers`` / ``torch`` (no m0rank model code), so tests
compare independent code paths.
"""

from __future__ import annotations

import json
from pathlib import Path

from m0rank.testing.checkpoints import (
    TINY_SIZES,
    m0_config_dict,
    to_flat_name,
    write_qwen2vl_side_files,
)

__all__ = ["qwen2vl_base_config", "write_qwen2vl_base", "write_monoqwen_adapter",
           "LORA_TARGETS"]

LORA_TARGETS = ("q_proj", "v_proj")


def qwen2vl_base_config() -> dict:
    """A tiny Qwen2-VL-2B-Instruct ``config.json`` (tied embeddings, as the 2B model)."""
    config = m0_config_dict(TINY_SIZES)
    config.pop("auto_map")
    config["architectures"] = ["Qwen2VLForConditionalGeneration"]
    config["tie_word_embeddings"] = True
    return config


def write_qwen2vl_base(out_dir: Path, *, seed: int = 0) -> Path:
    """Random Qwen2-VL base with the Instruct checkpoint's flat names and tokenizer."""
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    out_dir.mkdir(parents=True, exist_ok=True)
    config = qwen2vl_base_config()
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(Qwen2VLConfig(**config))
    # lm_head is tied to the input embeddings, so it is not stored.
    state = {to_flat_name(name): tensor.detach().clone().contiguous()
             for name, tensor in model.state_dict().items() if name != "lm_head.weight"}
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    write_qwen2vl_side_files(out_dir, config)
    return out_dir


def write_monoqwen_adapter(out_dir: Path, base: str | Path, *, seed: int = 0, r: int = 4,
                           alpha: int = 8) -> Path:
    """A random LoRA adapter on ``q_proj``/``v_proj`` of every language-model layer."""
    import torch
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    config = qwen2vl_base_config()
    hidden = config["hidden_size"]
    head_dim = hidden // config["num_attention_heads"]
    outputs = {"q_proj": hidden, "v_proj": config["num_key_value_heads"] * head_dim}
    g = torch.Generator().manual_seed(seed)
    state = {}
    for layer in range(config["num_hidden_layers"]):
        for target in LORA_TARGETS:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{target}"
            state[f"{prefix}.lora_A.weight"] = torch.randn(r, hidden, generator=g) * 0.3
            state[f"{prefix}.lora_B.weight"] = torch.randn(outputs[target], r, generator=g) * 0.3
    save_file(state, str(out_dir / "adapter_model.safetensors"), metadata={"format": "pt"})
    adapter = {
        "base_model_name_or_path": str(base), "peft_type": "LORA", "task_type": "CAUSAL_LM",
        "r": r, "lora_alpha": alpha, "lora_dropout": 0.0, "bias": "none",
        "target_modules": list(LORA_TARGETS), "fan_in_fan_out": False, "inference_mode": True,
        "init_lora_weights": True, "modules_to_save": None, "use_rslora": False,
    }
    (out_dir / "adapter_config.json").write_text(json.dumps(adapter, indent=2))
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    return out_dir
