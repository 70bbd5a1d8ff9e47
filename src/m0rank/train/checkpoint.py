"""Training checkpoints: trainable weights, optimizer, schedule, RNG and history, to resume.

``OUT/checkpoints/step-000040/`` holds ``trainable.safetensors`` (only the parameters that
train: LoRA matrices and the head, or every weight in full fine-tuning), ``optimizer.pt``,
``scheduler.pt``, ``rng.pt`` and ``state.json`` (step, losses, evaluations).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from m0rank.errors import InvalidInputError

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "CHECKPOINTS"]

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"


def save_checkpoint(output: Path, step: int, module: torch.nn.Module, optimizer: Any,
                    scheduler: Any, state: dict[str, Any], keep: int = 2) -> Path:
    """Write the checkpoint of ``step`` (atomically: a finished folder is renamed in) and
    keep only the newest ``keep`` checkpoints."""
    from safetensors.torch import save_file

    final = output / CHECKPOINTS / f"step-{step:06d}"
    partial = final.with_name(final.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    weights = {name: p.detach().cpu().contiguous() for name, p in module.named_parameters()
               if p.requires_grad}
    save_file(weights, str(partial / "trainable.safetensors"))
    torch.save(optimizer.state_dict(), partial / "optimizer.pt")
    torch.save(scheduler.state_dict(), partial / "scheduler.pt")
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, partial / "rng.pt")
    (partial / "state.json").write_text(json.dumps({**state, "step": step}, indent=2))
    partial.rename(final)
    logger.info("checkpoint %s", final)
    _prune(output / CHECKPOINTS, keep)
    return final


def _prune(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` finished checkpoints (0 keeps every one)."""
    import shutil

    done = sorted(p for p in folder.glob("step-*") if not p.name.endswith(".partial"))
    for old in done[:-keep] if keep else []:
        shutil.rmtree(old)


def latest_checkpoint(output: Path) -> Path | None:
    """The newest finished checkpoint folder, or ``None``."""
    folder = output / CHECKPOINTS
    done = sorted(p for p in folder.glob("step-*") if (p / "state.json").exists()
                  and not p.name.endswith(".partial")) if folder.is_dir() else []
    return done[-1] if done else None


def load_checkpoint(path: Path, module: torch.nn.Module, optimizer: Any,
                    scheduler: Any) -> dict[str, Any]:
    """Restore weights, optimizer, schedule and RNG from ``path``; return its state.

    Raises:
        InvalidInputError: The checkpoint's parameters do not match the run's (another model,
            LoRA rank or family).
    """
    from safetensors.torch import load_file

    saved = load_file(str(path / "trainable.safetensors"))
    params = {name: p for name, p in module.named_parameters() if p.requires_grad}
    if set(saved) != set(params):
        raise InvalidInputError(f"{path}: the checkpoint's trainable parameters do not match "
                                f"this run's (different model or LoRA settings?)")
    with torch.no_grad():
        for name, tensor in saved.items():
            params[name].copy_(tensor)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    rng = torch.load(path / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return dict(json.loads((path / "state.json").read_text()))
