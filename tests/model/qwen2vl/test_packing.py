"""Packed forward (pairs back to back, per-pair attention) equals the padded forward.

The padded path is the straightforward one (checked against an independent transformers
computation in ``tests/model/jina_m0/test_parity.py``); packing must not change any score beyond fp32
rounding, whatever the mix of lengths and modalities in a micro-batch.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tests.support.bench import page

from m0rank.config import ScoreOptions
from m0rank.model.qwen2vl.packing import PackedSegments, packed_attention, pair_positions
from m0rank.types import Document


def _pairs() -> list[tuple[Document, Document]]:
    long_text = " ".join(f"word{i} alpha beta" for i in range(120))
    return [
        (Document(text="slm markdown"), Document(text="ReaderLM-v2 turns HTML into Markdown.")),
        (Document(text="slm markdown"), Document(text=long_text)),
        (Document(text="red page"), Document(images=(page((200, 30, 30), (300, 200)),))),
        (Document(images=(page((10, 150, 10), (224, 224)),)), Document(text="a green square")),
        (Document(text="chart"), Document(text="Quarterly revenue",
                                          images=(page((240, 240, 240), (280, 140)),
                                                  page((1, 2, 3), (56, 56))))),
        (Document(text="数据提取么？"), Document(text="Goldrausch in Kalifornien")),
    ]


def _logits(model, prepared, packing: bool) -> np.ndarray:  # noqa: ANN001
    model.packing = packing
    try:
        return model.forward(prepared).numpy()
    finally:
        model.packing = True


def test_packed_equals_padded_on_mixed_batch(m0_model) -> None:  # noqa: ANN001
    prepared = [m0_model.preprocess(q, d, ScoreOptions(), f"pairs[{i}]")
                for i, (q, d) in enumerate(_pairs())]
    packed = _logits(m0_model, prepared, packing=True)
    padded = _logits(m0_model, prepared, packing=False)
    np.testing.assert_allclose(packed, padded, atol=1e-5, rtol=0)
    assert np.ptp(packed) > 1e-3  # not a degenerate constant model


def test_pair_scores_the_same_alone_and_packed(m0_model) -> None:  # noqa: ANN001
    prepared = [m0_model.preprocess(q, d, ScoreOptions(), "p") for q, d in _pairs()]
    together = m0_model.forward(prepared).numpy()
    alone = np.array([m0_model.forward([pair]).item() for pair in prepared])
    np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)


def test_packed_attention_equals_block_diagonal_causal_mask() -> None:
    torch.manual_seed(0)
    lengths = [5, 1, 9, 3]
    total, heads, kv_heads, dim = sum(lengths), 4, 2, 8
    query = torch.randn(1, heads, total, dim)
    key, value = torch.randn(1, kv_heads, total, dim), torch.randn(1, kv_heads, total, dim)
    segments = PackedSegments.from_lengths(lengths, torch.device("cpu"))
    module = torch.nn.Module()
    module.num_key_value_groups = heads // kv_heads
    out, weights = packed_attention(module, query, key, value, None, scaling=0.3,
                                    m0rank_segments=segments)
    pair = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    allowed = (pair[:, None] == pair[None, :]) & torch.ones(total, total, dtype=torch.bool).tril()
    expected = F.scaled_dot_product_attention(
        query, key.repeat_interleave(2, dim=1), value.repeat_interleave(2, dim=1),
        attn_mask=allowed, scale=0.3)
    assert weights is None
    torch.testing.assert_close(out, expected.transpose(1, 2), atol=1e-6, rtol=0)


def test_unpacked_calls_are_plain_sdpa() -> None:
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    torch.manual_seed(1)
    query, key, value = (torch.randn(2, 2, 6, 4) for _ in range(3))
    mask = torch.ones(2, 1, 6, 6, dtype=torch.bool).tril()
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 1, True
    ours, _ = packed_attention(module, query, key, value, mask, scaling=0.5)
    theirs, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.5)
    torch.testing.assert_close(ours, theirs, atol=0, rtol=0)


def test_segments_and_last_positions() -> None:
    segments = PackedSegments.from_lengths([3, 1, 4], torch.device("cpu"))
    assert segments.cu_seqlens.tolist() == [0, 3, 4, 8]
    assert segments.cu_seqlens.dtype == torch.int32
    assert segments.last_positions == [2, 3, 7]
    assert segments.max_length == 4


def test_positions_restart_per_pair(m0_model) -> None:  # noqa: ANN001
    backbone = m0_model.module.model
    text = pair_positions(backbone, [11, 12, 13, 14], [], m0_model.image_token_id)
    assert text.tolist() == [[0, 1, 2, 3]] * 3
    prepared = m0_model.preprocess(Document(text="q"), Document(images=(page((9, 9, 9), (56, 84)),)),
                                   ScoreOptions(), "p")
    prompt = prepared.payload
    grids = [image.grid for image in prompt.images]
    positions = pair_positions(backbone, prompt.input_ids, grids, m0_model.image_token_id)
    ids = torch.tensor([prompt.input_ids])
    expected, _ = backbone.get_rope_index(
        ids, mm_token_type_ids=(ids == m0_model.image_token_id).int(),
        image_grid_thw=torch.tensor(grids))
    assert torch.equal(positions, expected[:, 0])
    assert positions[0, 0] == 0  # restarted, not continuing a previous pair


@pytest.mark.parametrize("packing", [True, False])
def test_packs_sequences_follows_packing_flag(m0_model, packing: bool) -> None:  # noqa: ANN001
    m0_model.packing = packing
    try:
        assert m0_model.packs_sequences is packing
    finally:
        m0_model.packing = True


def _reference_varlen(query, key, value, cu_q, cu_k, max_q, max_k, *, scale=None,  # noqa: ANN001, ANN202
                      causal=False, gqa=False):
    """varlen_attn's documented semantics in plain torch: (T, H, D) layout, cu_seqlens."""
    assert query.is_contiguous() and key.is_contiguous() and cu_q.dtype == torch.int32
    assert max_q == max(int(b - a) for a, b in zip(cu_q[:-1], cu_q[1:], strict=True))
    if key.shape[1] != query.shape[1]:
        assert gqa, "GQA without enable_gqa"
    out = torch.empty_like(query)
    bounds = cu_q.tolist()
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        q, k, v = (t[start:end].transpose(0, 1)[None] for t in (query, key, value))
        out[start:end] = F.scaled_dot_product_attention(
            q, k, v, is_causal=causal, scale=scale, enable_gqa=gqa)[0].transpose(0, 1)
    return out


def _varlen_new(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, return_aux=None,  # noqa: ANN001, ANN202
                scale=None, window_size=(-1, -1), enable_gqa=False):
    return _reference_varlen(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, scale=scale,
                             causal=window_size == (-1, 0), gqa=enable_gqa)


def _varlen_old(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, *, is_causal=False,  # noqa: ANN001, ANN202
                return_aux=None, scale=None):
    return _reference_varlen(query, key, value, cu_seq_q, cu_seq_k, max_q, max_k, scale=scale,
                             causal=is_causal)


@pytest.mark.parametrize("fake", [_varlen_new, _varlen_old], ids=["window_size+gqa", "is_causal"])
def test_varlen_wiring_matches_per_pair_attention(monkeypatch: pytest.MonkeyPatch, fake) -> None:  # noqa: ANN001
    """The CUDA path's layout, causality and GQA handling, with varlen_attn's semantics
    emulated on the CPU for both signatures torch has shipped."""
    import torch.nn.attention.varlen as varlen

    from m0rank.model.qwen2vl import packing as qwen2vl_packing

    monkeypatch.setattr(varlen, "varlen_attn", fake)
    qwen2vl_packing.varlen_signature.cache_clear()
    try:
        torch.manual_seed(2)
        lengths = [4, 1, 7]
        total = sum(lengths)
        query = torch.randn(1, 6, total, 8)
        key, value = torch.randn(1, 2, total, 8), torch.randn(1, 2, total, 8)
        segments = PackedSegments.from_lengths(lengths, torch.device("cpu"))
        fast = qwen2vl_packing._varlen_attention(query, key, value, segments, 0.25)
        loop = qwen2vl_packing._per_pair_attention(query, key, value, segments, 0.25)
        torch.testing.assert_close(fast, loop, atol=1e-6, rtol=0)
    finally:
        qwen2vl_packing.varlen_signature.cache_clear()


def test_identical_pairs_in_a_batch_get_identical_scores(m0_model) -> None:  # noqa: ANN001
    doc = Document(text="same text")
    prepared = [m0_model.preprocess(Document(text="q"), d, ScoreOptions(), "p")
                for d in (doc, Document(text="other"), doc)]
    logits = m0_model.forward(prepared).tolist()
    assert logits[0] == logits[2] != logits[1]
    assert len(logits) == 3
