"""Fine-tuning: ``m0rank train`` and its Python API.

Example:
    >>> from m0rank.train import TrainArgs, train
    >>> result = train(TrainArgs(model="jinaai/jina-reranker-m0", data="train.jsonl",
    ...                          output="my-reranker", eval_data="beir/my-docs"))
    >>> result.eval_before["ndcg@10"], result.eval_after["ndcg@10"]

The trained folder loads wherever the starting model loads: ``Reranker.from_pretrained(OUT)``,
``m0rank serve --model OUT``. See docs/train.md for the recipe, losses and data format.
"""

from m0rank.train.args import TrainArgs
from m0rank.train.data import TrainExample, read_train_jsonl, write_train_jsonl
from m0rank.train.losses import (
    bce_loss,
    combined_loss,
    kl_distill_loss,
    listwise_loss,
    margin_loss,
    margin_mse_loss,
    ranknet_loss,
)
from m0rank.train.mining import mine_negatives
from m0rank.train.trainer import Trainer, TrainResult, load_examples, train

__all__ = [
    "TrainArgs", "TrainExample", "TrainResult", "Trainer", "train", "load_examples",
    "read_train_jsonl", "write_train_jsonl", "mine_negatives", "bce_loss", "ranknet_loss",
    "margin_loss", "listwise_loss", "margin_mse_loss", "kl_distill_loss", "combined_loss",
]
