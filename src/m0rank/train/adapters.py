"""What trains: LoRA adapters via peft (head in full), or every weight; and how it is saved.

LoRA goes on the linears the family names in :meth:`lora_targets` (jina-m0: the language
model's attention and MLP projections, never the vision tower unless asked); the head is
peft's ``modules_to_save``, trained and saved in full. Full fine-tuning (``lora_r=0``) trains
every weight except a vision tower.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path
from typing import Any

from m0rank.errors import MissingDependencyError
from m0rank.model.base import RerankerArchitecture

__all__ = ["attach_lora", "prepare_full_finetuning", "save_merged", "save_adapter",
           "count_parameters"]

logger = logging.getLogger(__name__)

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def attach_lora(model: RerankerArchitecture, r: int, alpha: int, include_vision: bool) -> Any:
    """Wrap ``model.trainable_module()`` in peft LoRA in place and return the peft model
    (the family keeps scoring through its own module, now with adapter layers)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise MissingDependencyError("LoRA training needs peft: pip install 'm0rank[train]'"
                                     ) from None
    targets = model.lora_targets(include_vision)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, bias="none",
                        target_modules=targets.linear_pattern,
                        modules_to_save=list(targets.head_modules))
    with warnings.catch_warnings():  # peft notes that a custom module has no hub config
        warnings.filterwarnings("ignore")
        return get_peft_model(model.trainable_module(), config)


def prepare_full_finetuning(model: RerankerArchitecture, include_vision: bool) -> Any:
    """Every weight trains, except a vision tower (``visual``) unless ``include_vision``."""
    module = model.trainable_module()
    for name, parameter in module.named_parameters():
        parameter.requires_grad_(include_vision or ".visual." not in f".{name}")
    return module


def count_parameters(module: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(module.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def save_merged(model: RerankerArchitecture, peft_model: Any, output: Path,
                dtype: str = "float32") -> None:
    """Merge LoRA (if any) into the weights, cast them to ``dtype`` and write the family's
    released layout. The cast stays in memory, so what is evaluated after saving is what
    was saved."""
    import torch

    if peft_model is not None:
        peft_model.merge_and_unload()
    module = model.trainable_module().eval()
    module.to(getattr(torch, dtype))
    model.save_pretrained(output)


def save_adapter(model: RerankerArchitecture, peft_model: Any, output: Path,
                 base_reference: str) -> None:
    """Write peft's adapter (LoRA + head) naming ``base_reference``, plus the family's
    ``config.json`` and tokenizer files; then merge in memory (no full weights written)."""
    peft_model.peft_config["default"].base_model_name_or_path = base_reference
    output.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(str(output))
    staging = output / ".merged-side-files"
    save_merged(model, peft_model, staging)
    for path in staging.iterdir():
        if path.name not in _WEIGHT_FILES and not path.name.startswith("model-"):
            shutil.copy(path, output / path.name)
    shutil.rmtree(staging)
