"""Finding a checkpoint (local folder, Hugging Face cache, hub) and reading its files.

Resolution order for ``name_or_path``:

1. an existing local directory;
2. a hub id already in the Hugging Face cache (no network needed);
3. a hub id downloaded through ``huggingface_hub`` (unless ``local_files_only``).

When none works the error says how to provide the weights instead of a stack trace from deep
inside ``huggingface_hub``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from m0rank.errors import ModelLoadError, ModelNotFoundError

__all__ = [
    "empty_init",
    "resolve_checkpoint_dir",
    "read_config",
    "read_safetensors",
    "load_exact",
    "WEIGHT_FILE_PATTERNS",
]

logger = logging.getLogger(__name__)

WEIGHT_FILE_PATTERNS = ("*.json", "*.safetensors", "*.txt", "*.tiktoken", "*.model")
_SINGLE_FILE = "model.safetensors"
_INDEX_FILE = "model.safetensors.index.json"


def resolve_checkpoint_dir(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
) -> Path:
    """Return a local directory holding the checkpoint's files.

    Raises:
        ModelNotFoundError: Not a local directory, not cached, and not downloadable.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"{path} is a directory but has no config.json")
        return path
    text = str(name_or_path)
    if _looks_like_local_path(text):
        raise ModelNotFoundError(f"model path {text!r} does not exist")
    return _from_hub(text, revision=revision, cache_dir=cache_dir,
                     local_files_only=local_files_only)


def read_config(path: Path) -> dict[str, Any]:
    """Parse ``config.json`` of a resolved checkpoint directory."""
    try:
        config = json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        raise ModelNotFoundError(f"{path} has no config.json") from None
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path / 'config.json'} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path / 'config.json'} must hold a JSON object")
    return config


def read_safetensors(path: Path) -> dict[str, Any]:
    """All tensors of a checkpoint: ``model.safetensors`` or the shards an index names."""
    from safetensors.torch import load_file

    if (path / _SINGLE_FILE).exists():
        return load_file(str(path / _SINGLE_FILE))
    if not (path / _INDEX_FILE).exists():
        raise ModelLoadError(f"{path} has neither {_SINGLE_FILE} nor {_INDEX_FILE}")
    try:
        weight_map = json.loads((path / _INDEX_FILE).read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError) as exc:
        raise ModelLoadError(f"{path / _INDEX_FILE} is malformed: {exc!r}") from None
    state: dict[str, Any] = {}
    for shard in sorted(set(weight_map.values())):
        if not (path / shard).exists():
            raise ModelLoadError(f"{path / _INDEX_FILE} names missing shard {shard}")
        state.update(load_file(str(path / shard)))
    return state


def _looks_like_local_path(text: str) -> bool:
    """Hub ids are ``org/name``; anything else (``./m0``, ``/models/m0``, ``m0``) is a path."""
    return text.startswith((".", "/", "~")) or text.count("/") != 1


def _from_hub(repo_id: str, *, revision: str | None, cache_dir: str | os.PathLike[str] | None,
              local_files_only: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    kwargs: dict[str, Any] = dict(repo_id=repo_id, revision=revision, cache_dir=cache_dir,
                  allow_patterns=list(WEIGHT_FILE_PATTERNS))
    try:
        return Path(snapshot_download(local_files_only=True, **kwargs))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
        if local_files_only:
            message = _not_found_message(repo_id, "it is not in the cache")
            raise ModelNotFoundError(message) from None
    logger.info("downloading %s from the Hugging Face hub", repo_id)
    try:
        return Path(snapshot_download(**kwargs))
    except Exception as exc:  # noqa: BLE001 - network, auth and offline errors all end here
        reason = f"the hub could not be reached or refused it ({type(exc).__name__})"
        raise ModelNotFoundError(_not_found_message(repo_id, reason)) from None


def _not_found_message(repo_id: str, reason: str) -> str:
    return (
        f"model {repo_id!r} was not found: {reason}. Provide the weights one of these ways: "
        f"pass a local directory holding config.json and *.safetensors "
        f"(e.g. `huggingface-cli download {repo_id} --local-dir ./m0` on a machine with "
        f"internet, then copy it here), or populate the Hugging Face cache (HF_HOME) with it"
    )


def load_exact(module: Any, state: dict[str, Any], source: str, layout: str,
               expected: set[str] | None = None) -> None:
    """Load ``state`` into ``module``, failing on missing or unexpected tensors (never random
    weights) and on shape mismatches, with messages that name the checkpoint and the layout.

    Args:
        expected: Names that must be present (default: all of ``module.state_dict()``).
    """
    expected = set(module.state_dict()) if expected is None else expected
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise ModelLoadError(
            f"{source}: checkpoint does not match the {layout} layout; "
            f"missing {len(missing)} tensors (e.g. {missing[:3]}), "
            f"unexpected {len(unexpected)} (e.g. {unexpected[:3]})"
        )
    try:
        module.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ModelLoadError(f"{source}: tensor shapes do not match config.json: "
                             f"{str(exc)[:300]}") from None


# transformers' no_init_weights() swaps torch's init functions process-wide and puts back what
# it found: two threads loading models at once (m0rank batch --workers, a server warming up
# while a test builds a checkpoint) could leave the no-op in place for good, and every model
# built afterwards would hold uninitialised memory (NaN scores). One lock serialises our uses,
# and the genuine functions, captured on first use, are put back unconditionally.
_INIT_LOCK = threading.RLock()
_GENUINE_INIT: dict[str, dict[str, Any]] = {}


@contextmanager
def empty_init(device: Any, dtype: Any = None) -> Iterator[None]:
    """Build a module's parameters on ``device`` (in ``dtype``) without random initialisation,
    because the checkpoint's weights overwrite them at once.

    Thread-safe, and leaves torch's init functions and default dtype as they were even when
    another library misbehaves (see the comment above).
    """
    import torch
    from transformers.initialization import (
        TORCH_INIT_FUNCTIONS,
        TORCH_MODULES_TO_PATCH,
        no_init_weights,
    )

    with _INIT_LOCK:
        if not _GENUINE_INIT:
            for module_name in TORCH_MODULES_TO_PATCH:
                module = sys.modules.get(module_name)
                if module is not None:
                    _GENUINE_INIT[module_name] = {
                        name: getattr(module, name) for name in TORCH_INIT_FUNCTIONS
                        if hasattr(module, name)}
        previous = torch.get_default_dtype()
        if dtype is not None:
            torch.set_default_dtype(dtype)
        try:
            with no_init_weights(), device:
                yield
        finally:
            torch.set_default_dtype(previous)
            for module_name, functions in _GENUINE_INIT.items():
                module = sys.modules[module_name]
                for name, function in functions.items():
                    setattr(module, name, function)
