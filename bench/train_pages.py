"""Rendered-page task on a tiny random jina-m0: held-out accuracy before and after training.

Task (``m0rank.testing.train_tasks``): 6 words, each alone on a 112 x 56 page; the query is
the word as text, the candidates are the 6 pages of one rendering, so chance is 1/6. Training
pages are drawn at even font sizes and random offsets; held-out pages at odd font sizes and
their own random offsets, never trained on. The model is the tiny random jina-m0 checkpoint
(``m0rank.testing.checkpoints``, real Qwen2 tokenizer), trained through ``m0rank.train.train``
(listwise + 0.1 BCE, full fine-tuning including the vision tower) in two stages:

1. ``--warm-steps`` on the first two renderings only. The listwise loss first drives a random
   model onto a plateau where every page scores the same; fitting few pages helps it off
   (seed 0 without this stage stayed there for all 1600 steps; docs/train.md).
2. ``--steps`` on ``--renderings`` renderings, from stage 1's output: the reading generalises
   to held-out renderings.

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_pages.py --out bench/results/train_pages.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--renderings", type=int, default=200)
    parser.add_argument("--warm-steps", type=int, default=150)
    parser.add_argument("--steps", type=int, default=1600)
    parser.add_argument("--heldout", type=int, default=20, help="held-out renderings")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    document = run(args, Path(tempfile.mkdtemp(prefix="m0rank-pages-")))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))


STAGES = {"warm": {"renderings": 2, "lr": 1e-3}, "main": {"lr": 5e-4}}


def run(args: argparse.Namespace, work: Path) -> dict:
    from m0rank import Reranker
    from m0rank.testing.checkpoints import write_m0_checkpoint
    from m0rank.testing.train_tasks import (
        HELDOUT_SIZES,
        TRAIN_SIZES,
        WORDS,
        chance,
        renderings,
        train_word_pages,
        word_page_accuracy,
    )

    start = time.perf_counter()
    checkpoint = write_m0_checkpoint(work / "tiny-m0", seed=args.seed)
    train_sets = renderings(args.renderings, TRAIN_SIZES, seed=args.seed)
    heldout_sets = renderings(args.heldout, HELDOUT_SIZES, seed=args.seed + 1000)

    def accuracy(model: Path) -> dict[str, float]:
        reranker = Reranker.from_pretrained(model, device="cpu")
        return {"heldout": word_page_accuracy(reranker, heldout_sets),
                "train": word_page_accuracy(reranker, train_sets[:args.heldout])}

    before = accuracy(checkpoint)
    warm = train_word_pages(checkpoint, work / "warm", train_sets[:STAGES["warm"]["renderings"]],
                            args.warm_steps, STAGES["warm"]["lr"], seed=args.seed)
    after_warm = accuracy(work / "warm")
    main = train_word_pages(work / "warm", work / "trained", train_sets, args.steps,
                            STAGES["main"]["lr"], seed=args.seed)
    after = accuracy(work / "trained")
    return {
        "benchmark": "tiny random jina-m0 learns which rendered page carries the queried word",
        "machine": "2-core AMD EPYC CPU (shared with other jobs), no GPU, 1 torch thread",
        "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
        "seed": args.seed, "words": list(WORDS), "candidates_per_query": len(WORDS),
        "chance": chance(),
        "pages": "112 x 56 px, one word in black at a random offset (x 0-8, y 0-6 px)",
        "train": f"{args.renderings} renderings x {len(WORDS)} words, font sizes {TRAIN_SIZES}",
        "heldout": f"{args.heldout} renderings x {len(WORDS)} words = "
                   f"{args.heldout * len(WORDS)} queries, font sizes {HELDOUT_SIZES} "
                   f"(never in training)",
        "train_accuracy_on": f"the first {args.heldout} training renderings",
        "settings": {"loss": "listwise + 0.1 BCE", "group_size": len(WORDS),
                     "groups_per_step": len(WORDS),
                     "adaptation": "full fine-tuning incl. vision tower",
                     "stage_1": {**STAGES["warm"], "steps": warm.steps},
                     "stage_2": {"renderings": args.renderings, **STAGES["main"],
                                 "steps": main.steps}},
        "top1_accuracy": {"before": before, "after_stage_1": after_warm, "after": after},
        "losses": {"stage_1_last": list(warm.losses[-3:]), "stage_2_first": list(main.losses[:3]),
                   "stage_2_last": list(main.losses[-3:])},
        "seconds": round(time.perf_counter() - start, 1),
    }


if __name__ == "__main__":
    main()
