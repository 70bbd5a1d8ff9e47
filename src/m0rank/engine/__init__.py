"""Batching and scheduling of prepared pairs over a model family."""

from m0rank.engine.batching import plan_micro_batches, plan_packed_batches
from m0rank.engine.engine import Engine

__all__ = ["Engine", "plan_micro_batches", "plan_packed_batches"]
