"""``m0rank train``: fine-tune a reranker and save it where every loader reads it.

Example::

    m0rank train --model jinaai/jina-reranker-m0 --data train.jsonl --output my-m0 \\
        --eval-data beir/my-docs --loss listwise --group-size 8 --epochs 1 --bf16

writes ``my-m0/`` in the family's released layout (``--save adapter``: a peft adapter that
m0rank merges into its base at load time), a model card, ``train_log.csv`` and checkpoints
(``--resume`` continues from the newest).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``m0rank train`` (no heavy imports: ``--help`` stays fast)."""
    io = parser.add_argument_group("model and data")
    io.add_argument("--model", required=True, metavar="PATH_OR_ID",
                    help="starting checkpoint: folder, hub id or built-in name")
    io.add_argument("--data", required=True, metavar="TRAIN",
                    help='JSONL file ({"query", "pos": [...], "neg": [...]} per line) or a '
                         "BEIR-layout folder (negatives mined)")
    io.add_argument("--output", required=True, metavar="OUT", help="folder to write")
    io.add_argument("--eval-data", default=None, metavar="BEIR_DIR",
                    help="BEIR folder evaluated before, during and after training")
    io.add_argument("--negatives", choices=("bm25", "model", "file"), default=None,
                    help="file: the JSONL's 'neg' lists; bm25/model: mined from a BEIR folder "
                         "(default: file for a file, bm25 for a folder)")
    io.add_argument("--negatives-model", default=None, metavar="PATH_OR_ID",
                    help="model that mines --negatives model (default: --model)")
    io.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: auto)")
    opt = parser.add_argument_group("training")
    opt.add_argument("--loss", choices=("listwise", "pairwise", "bce", "distill"),
                     default="listwise", help="ranking loss (default: listwise InfoNCE)")
    opt.add_argument("--pairwise-kind", choices=("ranknet", "margin"), default="ranknet")
    opt.add_argument("--distill-kind", choices=("margin-mse", "kl"), default="margin-mse")
    opt.add_argument("--bce-weight", type=float, default=0.1,
                     help="calibration BCE term added to non-BCE losses (0: off)")
    opt.add_argument("--group-size", type=int, default=8, help="1 positive + negatives")
    opt.add_argument("--groups-per-step", type=int, default=4, help="groups per optimizer step")
    opt.add_argument("--epochs", type=int, default=1)
    opt.add_argument("--lr", type=float, default=None,
                     help="peak learning rate (default: 1e-4 LoRA, 2e-5 full)")
    opt.add_argument("--lora-r", type=int, default=16, help="LoRA rank; 0: full fine-tuning")
    opt.add_argument("--lora-alpha", type=int, default=32)
    opt.add_argument("--train-vision", action="store_true",
                     help="LoRA on the vision tower too (jina-m0)")
    opt.add_argument("--max-length", type=int, default=10240, help="longest prompt in tokens")
    opt.add_argument("--max-pixels", type=int, default=602112, help="largest image area")
    opt.add_argument("--max-batch-tokens", type=int, default=16384,
                     help="tokens per micro-batch (whole groups, accumulated)")
    opt.add_argument("--bf16", action="store_true", default=None,
                     help="bf16 mixed precision (CUDA; default there)")
    opt.add_argument("--gradient-checkpointing", action="store_true")
    opt.add_argument("--seed", type=int, default=0)
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--save", choices=("merged", "adapter"), default="merged")
    run_group.add_argument("--save-dtype", choices=("float32", "bfloat16", "float16"),
                           default="float32",
                           help="dtype of the saved weights (bfloat16: the released m0's)")
    run_group.add_argument("--resume", action="store_true",
                           help="continue from the newest checkpoint in OUT/checkpoints")
    run_group.add_argument("--eval-every", type=int, default=0, metavar="STEPS")
    run_group.add_argument("--save-every", type=int, default=0, metavar="STEPS",
                           help="checkpoint interval (default: every epoch)")
    run_group.add_argument("--keep-checkpoints", type=int, default=2,
                           help="newest checkpoints kept (0: all)")
    run_group.add_argument("--eval-k", type=int, default=100,
                           help="BM25 candidates reranked per evaluation query")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Build :class:`m0rank.train.TrainArgs` from the options and train."""
    from m0rank.train import TrainArgs, train

    result = train(TrainArgs(**_train_kwargs(args)))
    summary = {"output": str(result.output), "steps": result.steps,
               "final_loss": result.losses[-1] if result.losses else None,
               "eval_before": result.eval_before, "eval_after": result.eval_after,
               "seconds": round(result.seconds, 1)}
    print(json.dumps(summary, indent=2), file=sys.stdout)
    return 0


def _train_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    names = ("model", "data", "output", "eval_data", "loss", "group_size", "epochs", "lr",
             "lora_r", "lora_alpha", "negatives", "save", "save_dtype", "max_length",
             "max_pixels", "bf16", "gradient_checkpointing", "resume", "seed", "groups_per_step",
             "max_batch_tokens", "pairwise_kind", "distill_kind", "bce_weight", "eval_every",
             "save_every", "eval_k", "keep_checkpoints", "negatives_model", "train_vision",
             "device")
    return {**{name: getattr(args, name) for name in names},
            "show_progress": not args.no_progress}
