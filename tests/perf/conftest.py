"""Fixtures for the performance-path tests: fresh jina-m0 models on the tiny checkpoint.

Each test module gets its own model (not the shared ``reranker`` fixture), because these
tests switch packing on and off and fill or clear the vision-feature cache.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def m0_model(m0_checkpoint: Path):  # noqa: ANN201 - JinaM0Reranker, imported lazily
    """A fp32 CPU :class:`JinaM0Reranker` on the tiny checkpoint, packing on, cache on."""
    import torch

    from m0rank.model.base import LoadOptions
    from m0rank.model.jina_m0 import JinaM0Reranker
    from m0rank.model.loading import read_config

    options = LoadOptions(device="cpu", dtype=torch.float32)
    return JinaM0Reranker.load(m0_checkpoint, read_config(m0_checkpoint), options)
