"""The training loop: groups packed into micro-batches, the family's own scoring path with
gradients, accumulation into one optimizer step, logs, evaluation, checkpoints, output.

One step takes ``groups_per_step`` query groups. Each group is preprocessed by the family's
``preprocess`` (as when scoring) and the groups are planned into micro-batches of whole groups
by the engine's packing planner (``max_batch_tokens`` real tokens each), so a group's listwise
loss always sees all of its logits. Each micro-batch runs ``train_logits`` (the code path of
``forward``: packed, padding-free attention for jina-m0) and back-propagates its share of the
step's loss; the optimizer steps once per step.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from m0rank.api import BUILTIN_MODELS, Reranker
from m0rank.config import ImageLimits, ScoreOptions
from m0rank.engine.batching import plan_packed_batches
from m0rank.errors import InvalidInputError, UnsupportedOperationError
from m0rank.eval import load_beir
from m0rank.train.adapters import (
    attach_lora,
    count_parameters,
    prepare_full_finetuning,
    save_adapter,
    save_merged,
)
from m0rank.train.args import TrainArgs
from m0rank.train.card import write_model_card
from m0rank.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from m0rank.train.data import TrainExample, read_train_jsonl
from m0rank.train.evaluation import EvalSet, evaluate, load_eval_set
from m0rank.train.groups import Group, epoch_order, prepare_group, sample_group
from m0rank.train.losses import combined_loss
from m0rank.train.mining import mine_negatives

__all__ = ["Trainer", "TrainResult", "train", "load_examples"]

logger = logging.getLogger(__name__)

LOG_FILE = "train_log.csv"
EVAL_LOG_FILE = "eval_log.csv"
SUMMARY_FILE = "train_summary.json"
_LOG_FIELDS = ("step", "epoch", "loss", "lr", "groups", "pairs", "tokens", "seconds",
               "pairs_per_s", "tokens_per_s")


@dataclass(frozen=True)
class TrainResult:
    """What a run produced.

    Attributes:
        output: Folder of the saved model.
        steps: Optimizer steps taken in total.
        losses: Training loss of every step (resumed runs include the earlier steps).
        eval_before: Metrics before training (``None`` without ``eval_data``).
        eval_after: Metrics of the saved model.
        eval_bm25: BM25's metrics on the evaluation set.
        seconds: Wall time of this invocation.
    """

    output: Path
    steps: int
    losses: tuple[float, ...]
    eval_before: dict[str, float] | None = None
    eval_after: dict[str, float] | None = None
    eval_bm25: dict[str, float] | None = None
    seconds: float = 0.0
    history: tuple[dict[str, Any], ...] = field(default=())


def train(args: TrainArgs, *, examples: Sequence[TrainExample] | None = None) -> TrainResult:
    """Fine-tune ``args.model`` and save it to ``args.output`` (see :class:`TrainArgs`).

    Args:
        args: The run's settings.
        examples: Training examples given in memory instead of reading ``args.data``.

    Raises:
        InvalidInputError: Bad settings or data (file, line and field named).
        UnsupportedOperationError: The model's family cannot be fine-tuned.
    """
    return Trainer(args, examples=examples).run()


class Trainer:
    """One run: built from :class:`TrainArgs`, executed by :meth:`run`."""

    def __init__(self, args: TrainArgs, *, examples: Sequence[TrainExample] | None = None,
                 ) -> None:
        self.args = args
        self.output = Path(args.output)
        _check_output(self.output, args.resume)
        self.started = time.perf_counter()
        torch.manual_seed(args.seed)
        self.reranker = Reranker.from_pretrained(args.model, device=args.device, dtype="fp32",
                                                 max_pixels=args.max_pixels, vision_cache_bytes=0)
        self.model = self.reranker.model
        self.module = self.model.trainable_module()  # fails early for families that cannot train
        self.device = next(self.module.parameters()).device  # where from_pretrained put it
        self.bf16 = _use_bf16(args.bf16, self.device)
        self.examples = list(examples) if examples is not None else load_examples(
            args, self.reranker)
        _check_teacher_scores(self.examples, args.loss)
        self.eval_set: EvalSet | None = (load_eval_set(args.eval_data, args.eval_k)
                                         if args.eval_data else None)
        if args.gradient_checkpointing:
            _enable_gradient_checkpointing(self.module)
        self.peft_model = (attach_lora(self.model, args.lora_r, args.lora_alpha, args.train_vision)
                           if args.lora_r else None)
        if self.peft_model is None:
            prepare_full_finetuning(self.model, args.train_vision)
        self.parameter_counts = count_parameters(self.module)
        self.optimizer = torch.optim.AdamW([p for p in self.module.parameters()
                                            if p.requires_grad],
                                           lr=args.learning_rate, weight_decay=args.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.examples) / args.groups_per_step)
        self.total_steps = self.steps_per_epoch * args.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _warmup_then_linear(self.total_steps, args.warmup_ratio))
        self.options = ScoreOptions(max_length=args.max_length,
                                    max_query_length=min(512, max(1, args.max_length // 2)))
        self.limits = ImageLimits()

    def run(self) -> TrainResult:
        """Train (or resume), evaluate, save the model and its card; return the result."""
        state = self._resume_state()
        step = int(state["step"])
        if self.eval_set is not None and state.get("eval_before") is None:
            state["eval_before"] = evaluate(self.reranker, self.eval_set, self.module, "before")
        self.module.train()
        from tqdm.auto import tqdm

        with tqdm(total=self.total_steps, initial=step, desc="training", unit="step",
                  disable=not self.args.show_progress) as bar:
            while step < self.total_steps:
                row = self._step(step)
                step += 1
                state["losses"].append(row["loss"])
                self._log(LOG_FILE, _LOG_FIELDS, row)
                bar.set_postfix(loss=f"{row['loss']:.4f}", pairs_s=f"{row['pairs_per_s']:.1f}")
                bar.update(1)
                self._periodic(step, state)
        return self._finish(state)

    def validation_loss(self, examples: Sequence[TrainExample] | None = None) -> float:
        """The run's loss over one group per example (epoch 0's draw), without gradients and
        with dropout off: a deterministic measure to compare before and after training.

        Args:
            examples: Held-out examples (default: the training examples).
        """
        examples = list(examples) if examples is not None else self.examples
        was_training = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                groups = [sample_group(examples, i, self.args.group_size, self.args.seed, 0)
                          for i in range(len(examples))]
                pairs = [pair for g in groups
                         for pair in prepare_group(self.model, g, self.options, self.limits)]
                return float(self._loss(pairs, groups))
        finally:
            self.module.train(was_training)

    def _step(self, step: int) -> dict[str, Any]:
        """One optimizer step over ``groups_per_step`` groups, accumulated by micro-batch."""
        start = time.perf_counter()
        epoch, position = divmod(step, self.steps_per_epoch)
        order = epoch_order(len(self.examples), self.args.seed, epoch)
        size = self.args.groups_per_step
        groups = [sample_group(self.examples, i, self.args.group_size, self.args.seed, epoch)
                  for i in order[position * size:(position + 1) * size]]
        prepared = [prepare_group(self.model, g, self.options, self.limits) for g in groups]
        lengths = [sum(pair.num_tokens for pair in pairs) for pairs in prepared]
        total = 0.0
        for micro in plan_packed_batches(lengths, self.args.max_batch_tokens, len(groups)):
            pairs = [pair for g in micro for pair in prepared[g]]
            loss = self._loss(pairs, [groups[g] for g in micro]) * (len(micro) / len(groups))
            loss.backward()
            total += float(loss.detach())
        if self.args.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([p for p in self.module.parameters()
                                            if p.requires_grad], self.args.max_grad_norm)
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
        pairs_done, tokens = len(groups) * self.args.group_size, sum(lengths)
        return {"step": step + 1, "epoch": epoch, "loss": total, "lr": lr,
                "groups": len(groups), "pairs": pairs_done, "tokens": tokens,
                "seconds": round(seconds, 4), "pairs_per_s": round(pairs_done / seconds, 2),
                "tokens_per_s": round(tokens / seconds, 1)}

    def _loss(self, pairs: list[Any], groups: list[Group]) -> torch.Tensor:
        """The run's loss over whole groups, logits from the family's scoring path."""
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if self.bf16
                    else contextlib.nullcontext())
        with autocast:
            logits = self.model.train_logits(pairs)
        logits = logits.float().view(len(groups), self.args.group_size)
        teacher = None
        if self.args.loss == "distill":
            teacher = torch.tensor([g.teacher for g in groups], device=logits.device)
        args = self.args
        return combined_loss(logits, loss=args.loss, teacher=teacher,
                             pairwise_kind=args.pairwise_kind, distill_kind=args.distill_kind,
                             bce_weight=args.bce_weight, offset=self.model.score_logit_offset,
                             temperature=args.temperature, margin=args.margin)

    def _periodic(self, step: int, state: dict[str, Any]) -> None:
        """Evaluation every ``eval_every`` steps; a checkpoint every ``save_every`` steps (or
        at each epoch's end)."""
        every = self.args.eval_every
        if self.eval_set is not None and every and step % every == 0 and step < self.total_steps:
            metrics = evaluate(self.reranker, self.eval_set, self.module, f"step {step}")
            state["history"].append({"step": step, **metrics})
            self._log(EVAL_LOG_FILE, ("step", *metrics), {"step": step, **metrics})
        save_every = self.args.save_every or self.steps_per_epoch
        if step % save_every == 0 or step == self.total_steps:
            save_checkpoint(self.output, step, self.module, self.optimizer, self.scheduler,
                            {"losses": state["losses"], "history": state["history"],
                             "eval_before": state.get("eval_before")},
                            keep=self.args.keep_checkpoints)

    def _resume_state(self) -> dict[str, Any]:
        checkpoint = latest_checkpoint(self.output) if self.args.resume else None
        if checkpoint is None:
            if self.args.resume:
                logger.warning("no checkpoint in %s: starting from step 0", self.output)
            self.output.mkdir(parents=True, exist_ok=True)
            return {"step": 0, "losses": [], "history": [], "eval_before": None}
        state = load_checkpoint(checkpoint, self.module, self.optimizer, self.scheduler)
        _truncate_log(self.output / LOG_FILE, int(state["step"]))
        _truncate_log(self.output / EVAL_LOG_FILE, int(state["step"]))
        logger.info("resumed from %s", checkpoint)
        return state

    def _finish(self, state: dict[str, Any]) -> TrainResult:
        """Save the model (merged or adapter), evaluate what was saved, write the card."""
        self.module.eval()
        if self.args.save == "adapter":
            save_adapter(self.model, self.peft_model, self.output, _base_reference(self.args.model))
        else:
            save_merged(self.model, self.peft_model, self.output, self.args.save_dtype)
        after = bm25 = None
        if self.eval_set is not None:
            after = evaluate(self.reranker, self.eval_set, self.module, "after")
            bm25 = self.eval_set.bm25
        result = TrainResult(self.output, self.total_steps, tuple(state["losses"]),
                             state.get("eval_before"), after, bm25,
                             time.perf_counter() - self.started, tuple(state["history"]))
        self._write_summary(result)
        return result

    def _write_summary(self, result: TrainResult) -> None:
        trainable, total = self.parameter_counts
        summary = {
            "family": type(self.model).__name__, "examples": len(self.examples),
            "negatives": self.args.negatives or ("bm25" if Path(self.args.data).is_dir()
                                                 else "file"),
            "steps": result.steps, "final_loss": result.losses[-1] if result.losses else 0.0,
            "losses": list(result.losses), "seconds": result.seconds, "device": str(self.device),
            "trainable_parameters": trainable, "total_parameters": total,
            "eval_before": result.eval_before, "eval_after": result.eval_after,
            "eval_bm25": result.eval_bm25, "history": list(result.history),
        }
        (self.output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
        write_model_card(self.output, self.args, summary)

    def _log(self, name: str, fields: Sequence[str], row: dict[str, Any]) -> None:
        path = self.output / name
        new = not path.exists()
        with path.open("a", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(fields))
            if new:
                writer.writeheader()
            writer.writerow(row)


def load_examples(args: TrainArgs, reranker: Any) -> list[TrainExample]:
    """``args.data`` as examples: a JSONL file read as is, or a BEIR folder mined for
    negatives (BM25 or a model, see :func:`m0rank.train.mine_negatives`).

    Raises:
        InvalidInputError: The data and ``negatives`` do not fit together, or bad data.
    """
    path = Path(args.data)
    negatives = args.negatives or ("bm25" if path.is_dir() else "file")
    if not path.is_dir():
        if negatives != "file":
            raise InvalidInputError(f"negatives={negatives!r} mines from a BEIR folder, but "
                                    f"{path} is not a folder (a JSONL file brings its own 'neg')")
        return read_train_jsonl(path, need_scores=args.loss == "distill")
    if negatives == "file":
        raise InvalidInputError(f"negatives='file' needs a JSONL file as data, {path} is a folder")
    if args.loss == "distill":
        raise InvalidInputError("loss 'distill' needs teacher scores: give a JSONL file with "
                                "pos_scores/neg_scores as data")
    split = "train" if (path / "qrels" / "train.tsv").exists() else "test"
    miner = None
    if negatives == "model":
        miner = (reranker if args.negatives_model is None else
                 Reranker.from_pretrained(args.negatives_model, device=args.device))
    return mine_negatives(load_beir(path, split=split), method=negatives,
                          num_negatives=args.num_negatives, depth=args.mine_depth,
                          reranker=miner)


def _check_output(output: Path, resume: bool) -> None:
    if not resume and ((output / LOG_FILE).exists() or (output / "checkpoints").exists()):
        raise InvalidInputError(f"{output} already holds a training run; pass resume "
                                f"(--resume) to continue it or choose another output")


def _check_teacher_scores(examples: Sequence[TrainExample], loss: str) -> None:
    if not examples:
        raise InvalidInputError("no training examples")
    if loss == "distill":
        for example in examples:
            if not example.has_teacher_scores:
                raise InvalidInputError(f"{example.source}: loss 'distill' needs 'pos_scores' "
                                        f"and 'neg_scores'")


def _use_bf16(requested: bool | None, device: torch.device) -> bool:
    if requested is None:
        return device.type == "cuda"
    if requested and device.type != "cuda":
        raise InvalidInputError(f"bf16 needs a CUDA device; on {device.type} training runs in "
                                f"fp32 (leave bf16 unset)")
    return requested


def _enable_gradient_checkpointing(module: torch.nn.Module) -> None:
    """transformers' own checkpointing of the backbone's layers (non-reentrant)."""
    for sub in module.modules():
        if getattr(sub, "supports_gradient_checkpointing", False):
            kwargs = {"use_reentrant": False}
            if hasattr(sub, "activation_checkpointing_enable"):  # transformers >= 5.x name
                sub.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                sub.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
            return
    raise UnsupportedOperationError(f"{type(module).__name__} has no layers to checkpoint")


def _warmup_then_linear(total: int, warmup_ratio: float) -> Any:
    warmup = int(total * warmup_ratio)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def _base_reference(model: str) -> str:
    """Where an adapter's base is found: an absolute folder, a built-in's folder, a hub id."""
    if model in BUILTIN_MODELS:
        return str(BUILTIN_MODELS[model])
    path = Path(model)
    return str(path.resolve()) if path.is_dir() else model


def _truncate_log(path: Path, step: int) -> None:
    """Drop rows written after ``step`` (they belong to the interrupted run's lost steps)."""
    if not path.exists():
        return
    with path.open(newline="") as source:
        rows = list(csv.DictReader(source))
        fields = rows[0].keys() if rows else None
    if fields is None:
        return
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(r for r in rows if int(r["step"]) <= step)
