"""The model card (``README.md``) written beside a trained model."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from m0rank.train.args import TrainArgs

__all__ = ["write_model_card"]

_LOSS_TEXT = {
    "listwise": "listwise softmax cross-entropy over each group (InfoNCE)",
    "pairwise": "pairwise ({kind})",
    "bce": "pointwise binary cross-entropy",
    "distill": "distillation from teacher scores ({kind})",
}


def write_model_card(output: Path, args: TrainArgs, summary: dict[str, Any]) -> Path:
    """Write ``README.md``: data, loss, settings, evaluation before and after, how to load."""
    kind = args.pairwise_kind if args.loss == "pairwise" else args.distill_kind
    loss = _LOSS_TEXT[args.loss].format(kind=kind)
    if args.loss != "bce" and args.bce_weight:
        loss += f" + {args.bce_weight} x BCE calibration term"
    lines = [
        f"# {output.name}", "",
        f"Fine-tuned from `{args.model}` with `m0rank train` ({summary['family']}).", "",
        "## Training", "",
        f"- data: `{args.data}` ({summary['examples']} queries, negatives: "
        f"{summary['negatives']})",
        f"- loss: {loss}",
        f"- adaptation: {_adaptation(args)}; trainable parameters "
        f"{summary['trainable_parameters']:,} of {summary['total_parameters']:,}",
        f"- steps: {summary['steps']} ({args.epochs} epoch(s), {args.groups_per_step} groups "
        f"of {args.group_size} per step), learning rate {args.learning_rate:g}, seed "
        f"{args.seed}",
        f"- final training loss: {summary['final_loss']:.4f}; time {summary['seconds']:.0f} s "
        f"on {summary['device']}",
        f"- saved as: {args.save}", "",
        "## Evaluation", "",
    ]
    lines += _evaluation(args, summary)
    lines += ["", "## Use", "", "```python", "from m0rank import Reranker", "",
              f'reranker = Reranker.from_pretrained("{output}")',
              'reranker.rank("query", ["document one", {"image": "page.png"}])', "```", "",
              f"or `m0rank serve --model {output}`.", "", "## Settings", "", "```"]
    lines += [f"{f.name} = {getattr(args, f.name)!r}" for f in dataclasses.fields(args)]
    lines += ["```", ""]
    path = output / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _adaptation(args: TrainArgs) -> str:
    if not args.lora_r:
        return "full fine-tuning"
    return f"LoRA r={args.lora_r}, alpha={args.lora_alpha}, head trained in full"


def _evaluation(args: TrainArgs, summary: dict[str, Any]) -> list[str]:
    before, after = summary.get("eval_before"), summary.get("eval_after")
    if not before or not after:
        return ["No evaluation set was given (`--eval-data`)."]
    rows = [f"On `{args.eval_data}` (BM25 top {args.eval_k} reranked):", "",
            "| metric | BM25 | before | after |", "|---|---|---|---|"]
    bm25 = summary.get("eval_bm25", {})
    for metric in after:
        rows.append(f"| {metric} | {bm25.get(metric, float('nan')):.4f} | "
                    f"{before[metric]:.4f} | {after[metric]:.4f} |")
    return rows
