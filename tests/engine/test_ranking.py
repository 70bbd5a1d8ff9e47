"""The one ranking helper: order, ties, top_n and its validation."""

from __future__ import annotations

import pytest

from m0rank.engine.ranking import check_top_n, rank_order
from m0rank.errors import InvalidInputError


def test_most_relevant_first_and_ties_keep_input_order() -> None:
    assert rank_order([0.2, 0.9, 0.2, 0.5]) == [1, 3, 0, 2]


def test_top_n_cuts_and_may_exceed_the_count() -> None:
    assert rank_order([0.2, 0.9, 0.5], top_n=2) == [1, 2]
    assert rank_order([0.2, 0.9], top_n=5) == [1, 0]


@pytest.mark.parametrize("top_n", [0, -1, 1.5, True, "3"])
def test_bad_top_n_names_the_value(top_n: object) -> None:
    with pytest.raises(InvalidInputError, match=f"top_n must be a positive integer or None, "
                                                f"got {top_n!r}"):
        check_top_n(top_n)
