"""Fixtures for the second-generation offline model: one shared default instance."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def offline_v2():  # noqa: ANN201 - Reranker, imported lazily
    """``Reranker.from_pretrained()`` with no name: ``m0rank-offline`` v2 (shared, read-only)."""
    from m0rank import Reranker

    return Reranker.from_pretrained()


@pytest.fixture(scope="session")
def zh_eiffel_page():  # noqa: ANN201 - PIL image
    """A Chinese page about the Eiffel Tower's height, rendered with Noto Sans CJK."""
    from m0rank.testing.checkset import render_passage

    return render_passage("埃菲尔铁塔位于法国巴黎，塔高三百三十米，是巴黎最著名的地标。")
