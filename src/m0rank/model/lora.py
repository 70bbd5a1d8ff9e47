"""LoRA adapters of trainable families: an adapter folder is loaded by merging it into its base.

``m0rank train --save adapter`` writes peft's ``adapter_config.json`` +
``adapter_model.safetensors`` (LoRA matrices, and the score head in full as peft's
``modules_to_save``), the family's ``config.json`` and tokenizer files. A family's ``load``
hands such a folder to :func:`load_merged_adapter`: the base named by
``base_model_name_or_path`` (a folder, relative to the adapter or absolute, or a hub id) is
loaded through the family itself, and the adapter is merged into
``trainable_module()`` with peft, so the merged model scores exactly as a merged save.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from m0rank.errors import ModelLoadError
from m0rank.model.base import LoadOptions, RerankerArchitecture
from m0rank.model.loading import read_config, resolve_checkpoint_dir

__all__ = ["ADAPTER_CONFIG", "ADAPTER_WEIGHTS", "read_adapter_config", "load_merged_adapter",
           "merge_adapter", "resolve_adapter_base"]

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
Family = TypeVar("Family", bound=RerankerArchitecture)


def read_adapter_config(path: Path) -> dict[str, Any] | None:
    """``adapter_config.json`` of ``path`` parsed, or ``None`` when ``path`` is no adapter."""
    file = path / ADAPTER_CONFIG
    if not file.exists():
        return None
    try:
        return dict(json.loads(file.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{file} is not readable JSON: {exc}") from None


def load_merged_adapter(cls: type[Family], path: Path, adapter: dict[str, Any],
                        options: LoadOptions) -> Family:
    """Load the adapter's base through ``cls`` and merge the adapter into it.

    Raises:
        ModelLoadError: No base named, or the adapter does not fit the base.
    """
    base = resolve_adapter_base(adapter, path, options)
    model = cls.load(base, read_config(base), options)
    merge_adapter(model.trainable_module(), path)
    model.trainable_module().eval()
    return model


def merge_adapter(module: Any, path: Path, rename: Callable[[str], str] | None = None) -> Any:
    """Attach the adapter in ``path`` to ``module`` with peft, load its tensors, merge in
    place and return the (same) module without adapter layers.

    ``rename`` maps the adapter's tensor names onto ``module``'s (MonoQwen's adapters name
    Qwen2-VL's weights in the flat layout, transformers' module is nested).
    """
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = path / ADAPTER_WEIGHTS
    if not weights.exists():
        raise ModelLoadError(f"{path} has {ADAPTER_CONFIG} but no {ADAPTER_WEIGHTS}")
    lora = LoraConfig.from_pretrained(str(path))
    lora.inference_mode = True
    with warnings.catch_warnings():  # peft warns that our module has no hub config; expected
        warnings.filterwarnings("ignore")
        peft_model = get_peft_model(module, lora)
    state = load_file(str(weights))
    if rename is not None:
        state = {rename(name): tensor for name, tensor in state.items()}
    result = set_peft_model_state_dict(peft_model, state)
    unexpected = list(getattr(result, "unexpected_keys", []))
    missing = [k for k in getattr(result, "missing_keys", []) if "lora_" in k]
    if unexpected or missing:
        raise ModelLoadError(f"{path}: adapter does not fit the base model; unexpected "
                             f"{unexpected[:3]}, missing {missing[:3]}")
    logger.info("merged LoRA adapter %s (r=%s, alpha=%s)", path, lora.r, lora.lora_alpha)
    return peft_model.merge_and_unload()


def resolve_adapter_base(adapter: dict[str, Any], path: Path, options: LoadOptions) -> Path:
    """The folder of the adapter's ``base_model_name_or_path``: relative to the adapter, a
    folder, or a hub id resolved like any checkpoint."""
    name = adapter.get("base_model_name_or_path")
    if not name:
        raise ModelLoadError(f"{path / ADAPTER_CONFIG} names no base_model_name_or_path")
    relative = path / str(name)
    if relative.is_dir():
        return relative.resolve()
    return resolve_checkpoint_dir(str(name), cache_dir=options.cache_dir,
                                  local_files_only=options.local_files_only)
