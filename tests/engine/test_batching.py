"""Micro-batch planning invariants (sorted by length, under a padded-token budget)."""

from __future__ import annotations

import random

import pytest

from m0rank.engine.batching import plan_micro_batches


@pytest.mark.parametrize("seed", range(20))
def test_every_item_once_and_budgets_respected(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(1, 900) for _ in range(rng.randint(1, 120))]
    max_tokens, max_size = rng.choice([256, 1024, 4096]), rng.choice([1, 4, 32])
    batches = plan_micro_batches(lengths, max_tokens, max_size)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(lengths)))
    for batch in batches:
        assert 1 <= len(batch) <= max_size
        padded = len(batch) * max(lengths[i] for i in batch)
        assert padded <= max_tokens or len(batch) == 1


def test_similar_lengths_share_batches() -> None:
    lengths = [10, 500, 12, 480, 11, 490]
    batches = plan_micro_batches(lengths, max_tokens=1500, max_size=8)
    assert [sorted(b) for b in batches] == [[1, 3, 5], [0, 2, 4]]


def test_empty_input() -> None:
    assert plan_micro_batches([], 100, 4) == []
