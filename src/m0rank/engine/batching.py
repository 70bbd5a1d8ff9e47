"""Planning micro-batches: sort by length, fill each batch up to a token budget.

A padded micro-batch costs ``rows * longest_row`` tokens. Sorting by length first makes rows
in a batch similar, so little compute goes to padding; the budget bounds memory; results are
put back in input order by the caller. (The reference runs fixed batches of 8 in input order.)
A packed micro-batch (pairs back to back, no padding) costs the sum of its rows, so it is
planned by :func:`plan_packed_batches` against the same budget.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["plan_micro_batches", "plan_packed_batches"]


def plan_micro_batches(lengths: Sequence[int], max_tokens: int, max_size: int) -> list[list[int]]:
    """Group item indices into micro-batches, longest first.

    Each batch holds at most ``max_size`` items and at most ``max_tokens`` padded tokens; an
    item longer than ``max_tokens`` on its own still gets a batch of one (the model's own
    ``max_length`` bounds it).

    Example:
        >>> plan_micro_batches([5, 100, 7, 98], max_tokens=200, max_size=8)
        [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Longest first: the first item of a batch sets its padded row length.
        row_length = lengths[current[0]] if current else lengths[index]
        if current and (len(current) >= max_size or (len(current) + 1) * row_length > max_tokens):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def plan_packed_batches(lengths: Sequence[int], max_tokens: int, max_size: int) -> list[list[int]]:
    """Group item indices into packed micro-batches of at most ``max_tokens`` real tokens.

    First-fit decreasing: longest first, each item into the first batch that still has room
    for it (tokens and ``max_size`` items), so few batches are left half empty. An item
    longer than ``max_tokens`` gets a batch of its own.

    Example:
        >>> plan_packed_batches([60, 50, 40, 30], max_tokens=100, max_size=8)
        [[0, 2], [1, 3]]
        >>> plan_packed_batches([5, 100, 7, 98], max_tokens=200, max_size=8)
        [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    shortest = lengths[order[-1]] if order else 0
    batches: list[list[int]] = []
    open_batches: list[tuple[list[int], list[int]]] = []  # (items, [tokens used])
    for index in order:
        length = lengths[index]
        target = next((b for b in open_batches if b[1][0] + length <= max_tokens), None)
        if target is None:
            target = ([], [0])
            batches.append(target[0])
            open_batches.append(target)
        target[0].append(index)
        target[1][0] += length
        if len(target[0]) >= max_size or target[1][0] + shortest > max_tokens:
            open_batches.remove(target)  # full: no later (shorter or equal) item fits
    return batches
