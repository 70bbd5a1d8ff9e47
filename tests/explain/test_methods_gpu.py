"""Explanations on CUDA in bf16 (skipped without CUDA): the eager attention forward's score
sits next to the served (packed, fused) one and differs only slightly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from m0rank import Reranker
from m0rank.testing.checkset import render_passage

pytestmark = pytest.mark.gpu
QUERY = "wind turbine blade fatigue"


def test_attention_and_gradient_in_bf16_on_cuda(m0_checkpoint: Path) -> None:
    reranker = Reranker.from_pretrained(m0_checkpoint, device="cuda", dtype="bf16")
    page = render_passage("Wind turbine blades fail by fatigue after many load cycles.")
    served = reranker.score(QUERY, [{"image": page}])[0].score
    attention = reranker.explain(QUERY, {"image": page}, method="attention")
    assert attention.score == pytest.approx(served)
    assert attention.method_score == pytest.approx(served, abs=0.02)  # eager vs fused, bf16
    assert np.isfinite(attention.heatmap).all() and attention.heatmap.sum() > 0
    gradient = reranker.explain(QUERY, {"image": page}, method="gradient")
    assert gradient.heatmap.shape == attention.heatmap.shape
    occlusion = reranker.explain(QUERY, {"image": page}, block=4)
    assert occlusion.method_score == pytest.approx(served, abs=1e-3)
