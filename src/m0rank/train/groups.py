"""Groups: a query with one positive and ``group_size - 1`` negatives, sampled reproducibly.

The sample of step ``s`` depends only on the seed, the epoch and the example's index, never
on what ran before, so a resumed run draws exactly the groups an uninterrupted one draws.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from m0rank.config import ImageLimits, ScoreOptions
from m0rank.model.base import PreparedPair, RerankerArchitecture
from m0rank.preprocessing.inputs import resolve_document
from m0rank.train.data import TrainExample
from m0rank.types import Document

__all__ = ["Group", "epoch_order", "sample_group", "prepare_group"]


@dataclass(frozen=True)
class Group:
    """One query's documents for a step, the positive first.

    Attributes:
        example: Index of the example in the training data.
        query: The query.
        documents: Positive, then negatives.
        fields: Names of the documents in error messages.
        teacher: Teacher scores in the same order, or ``None``.
    """

    example: int
    query: Document
    documents: tuple[Document, ...]
    fields: tuple[str, ...]
    teacher: tuple[float, ...] | None


def epoch_order(num_examples: int, seed: int, epoch: int) -> list[int]:
    """The examples' order in ``epoch`` (a seeded shuffle)."""
    order = list(range(num_examples))
    random.Random(f"order/{seed}/{epoch}").shuffle(order)
    return order


def sample_group(examples: Sequence[TrainExample], index: int, group_size: int, seed: int,
                 epoch: int) -> Group:
    """One positive and ``group_size - 1`` negatives of example ``index`` (negatives drawn
    without replacement while there are enough, then repeated)."""
    example = examples[index]
    rng = random.Random(f"group/{seed}/{epoch}/{index}")
    p = rng.randrange(len(example.pos))
    wanted = group_size - 1
    if len(example.neg) >= wanted:
        negs = rng.sample(range(len(example.neg)), wanted)
    else:
        negs = [rng.randrange(len(example.neg)) for _ in range(wanted)]
    documents = (example.pos[p], *(example.neg[n] for n in negs))
    fields = (f"{example.source}: field 'pos[{p}]'",
              *(f"{example.source}: field 'neg[{n}]'" for n in negs))
    teacher = None
    if example.pos_scores is not None and example.neg_scores is not None:
        teacher = (example.pos_scores[p], *(example.neg_scores[n] for n in negs))
    return Group(index, example.query, documents, fields, teacher)


def prepare_group(model: RerankerArchitecture, group: Group, options: ScoreOptions,
                  limits: ImageLimits) -> list[PreparedPair]:
    """The family's own ``preprocess`` of every pair (images read first), as when scoring."""
    source = group.fields[0].split(": field")[0]
    query = resolve_document(group.query, f"{source}: field 'query'", limits=limits)
    return [model.preprocess(query, resolve_document(doc, field, limits=limits), options, field)
            for doc, field in zip(group.documents, group.fields, strict=True)]
