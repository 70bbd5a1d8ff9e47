"""Rendered-page task on a tiny random jina-m0: held-out accuracy before and after training.

Status: tried without success so far (accuracy stayed at chance; docs/train.md, Measured).

Task and held-out pages: ``m0rank.testing.train_tasks`` (6 words; training pages at two
renderings, held-out pages at a third, never trained on). The model is the tiny random
jina-m0 checkpoint (``m0rank.testing.checkpoints``, real Qwen2 tokenizer), trained through
``m0rank.train.train`` with the listwise loss, full fine-tuning including the vision tower.

    .venv/bin/python bench/train_pages.py --out bench/results/train_pages.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    document = run(args.epochs, args.seed, Path(tempfile.mkdtemp(prefix="m0rank-pages-")))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))


def run(epochs: int, seed: int, work: Path) -> dict:
    from m0rank import Reranker
    from m0rank.testing.checkpoints import write_m0_checkpoint
    from m0rank.testing.train_tasks import WORDS, word_page_accuracy, word_page_examples
    from m0rank.train import TrainArgs, train

    start = time.perf_counter()
    checkpoint = write_m0_checkpoint(work / "tiny-m0", seed=seed)
    before = word_page_accuracy(Reranker.from_pretrained(checkpoint, device="cpu"))
    args = TrainArgs(model=str(checkpoint), data="(in memory)", output=str(work / "trained"),
                     loss="listwise", group_size=4, groups_per_step=4, epochs=epochs, lr=2e-3,
                     lora_r=0, train_vision=True, max_length=512, max_pixels=224 * 112,
                     seed=seed, device="cpu", show_progress=False)
    result = train(args, examples=word_page_examples())
    after = word_page_accuracy(Reranker.from_pretrained(work / "trained", device="cpu"))
    return {
        "benchmark": "tiny random jina-m0 on which rendered page carries the queried word",
        "machine": "2-core AMD EPYC CPU (shared with other jobs), no GPU",
        "cpus": os.cpu_count(), "python": platform.python_version(), "seed": seed,
        "words": list(WORDS), "chance": 1 / len(WORDS),
        "heldout": "pages re-rendered at font 40 / margin 10 (training: 36/8 and 44/12)",
        "settings": {"loss": "listwise + 0.1 BCE", "group_size": 4, "epochs": epochs,
                     "lr": 2e-3, "adaptation": "full fine-tuning incl. vision tower",
                     "steps": result.steps},
        "heldout_top1_accuracy": {"before": before, "after": after},
        "first_losses": list(result.losses[:3]), "last_losses": list(result.losses[-3:]),
        "seconds": round(time.perf_counter() - start, 1),
    }


if __name__ == "__main__":
    main()
