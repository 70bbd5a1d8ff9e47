"""Padding-free packing of many Qwen2-VL prompts into one sequence, reusing transformers' layers.

A padded micro-batch spends ``rows x longest_row`` tokens of compute, and causal attention
over a row costs ``O(row_length^2)``. Packing the pairs of a micro-batch back to back into
one ``(1, total_tokens)`` sequence spends exactly the real tokens on the matmuls and, with a
per-pair (block-diagonal causal) attention, ``sum(length_i^2)`` on attention. What has to
change for that, and nothing else:

- attention: each pair attends only to itself, causally. We register one attention function
  with transformers' ``AttentionInterface`` (``"m0rank_packed"``) that, when given the pair
  boundaries (:class:`PackedSegments`), runs ``torch.nn.attention.varlen.varlen_attn`` on CUDA
  (flash kernels over ``cu_seqlens``, causal via ``window_size=(-1, 0)``) or one causal SDPA
  call per pair elsewhere; without boundaries it *is* transformers' SDPA function, so the
  ordinary padded forward is untouched;
- positions: M-RoPE positions restart at 0 for every pair (computed per pair by the model's
  own ``get_rope_index``), exactly what each pair would get alone;
- the head: only the last position of each pair goes through the final RMSNorm and the score
  head; no stack of per-layer hidden states is kept.

The decoder layers, rotary embedding, norm and vision tower are transformers' own modules.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "ATTENTION_NAME",
    "SEGMENTS_KWARG",
    "PackedSegments",
    "packed_attention",
    "enable_packed_attention",
    "pair_positions",
    "decode_packed",
    "to_device",
]

logger = logging.getLogger(__name__)

ATTENTION_NAME = "m0rank_packed"
_FLASH_DTYPES = (torch.float16, torch.bfloat16)  # varlen_attn runs flash kernels only
SEGMENTS_KWARG = "m0rank_segments"


@dataclass(frozen=True)
class PackedSegments:
    """Where each pair starts and ends in a packed sequence.

    Attributes:
        lengths: Tokens of each pair, in packed order (Python ints: no device sync to read).
        cu_seqlens: ``(pairs + 1,)`` int32 cumulative boundaries on the model's device.
        max_length: Longest pair.
    """

    lengths: tuple[int, ...]
    cu_seqlens: torch.Tensor
    max_length: int

    @classmethod
    def from_lengths(cls, lengths: list[int], device: torch.device) -> PackedSegments:
        """Boundaries for pairs of these lengths, packed in this order."""
        bounds = torch.zeros(len(lengths) + 1, dtype=torch.int32)
        bounds[1:] = torch.tensor(lengths, dtype=torch.int32).cumsum(0)
        return cls(tuple(lengths), to_device(bounds, device), max(lengths))

    @property
    def last_positions(self) -> list[int]:
        """Index of each pair's last token (the score token) in the packed sequence."""
        ends, total = [], 0
        for length in self.lengths:
            total += length
            ends.append(total - 1)
        return ends


def packed_attention(
    module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
    attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers attention-interface function: per-pair causal attention when packed.

    Args:
        module: The calling ``Qwen2VLAttention`` (for ``num_key_value_groups``).
        query: ``(1, heads, tokens, head_dim)``; key, value: ``(1, kv_heads, tokens, head_dim)``.
        attention_mask: Used only on the unpacked path (transformers' SDPA semantics).
        scaling: Softmax scale.
        dropout: Attention dropout (0 at inference).
        **kwargs: ``m0rank_segments`` selects the packed path; the rest go to SDPA.

    Returns:
        ``(1, tokens, heads, head_dim)`` attention output and ``None`` (no weights).
    """
    segments: PackedSegments | None = kwargs.pop(SEGMENTS_KWARG, None)
    if segments is None:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask,
                                      dropout=dropout, scaling=scaling, **kwargs)
    if query.is_cuda and query.dtype in _FLASH_DTYPES and varlen_signature() is not None:
        return _varlen_attention(query, key, value, segments, scaling), None
    return _per_pair_attention(query, key, value, segments, scaling), None


def _per_pair_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                        segments: PackedSegments, scaling: float | None) -> torch.Tensor:
    """One causal SDPA call per pair: no mask tensor, ``sum(length^2)`` attention work.

    Each result is written straight into the ``(1, T, H, D)`` output the layer reshapes,
    which on CPUs is several times faster than concatenating per-pair outputs.
    """
    _, heads, total, head_dim = query.shape
    out = query.new_empty(1, total, heads, head_dim)
    gqa = key.shape[1] != heads
    start = 0
    for length in segments.lengths:
        end = start + length
        out[:, start:end] = F.scaled_dot_product_attention(
            query[:, :, start:end], key[:, :, start:end], value[:, :, start:end],
            is_causal=True, scale=scaling, enable_gqa=gqa,
        ).transpose(1, 2)
        start = end
    return out


def _varlen_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      segments: PackedSegments, scaling: float | None) -> torch.Tensor:
    """``varlen_attn`` over ``cu_seqlens`` (flash kernels, CUDA only)."""
    from torch.nn.attention.varlen import varlen_attn

    params = varlen_signature() or frozenset()
    q = query[0].transpose(0, 1).contiguous()  # (T, H, D)
    k = key[0].transpose(0, 1).contiguous()  # (T, H_kv, D)
    v = value[0].transpose(0, 1).contiguous()
    options: dict[str, Any] = {"scale": scaling} if "scale" in params else {}
    if k.shape[1] != q.shape[1]:
        if "enable_gqa" in params:
            options["enable_gqa"] = True
        else:  # older torch: repeat kv heads the way transformers' repeat_kv orders them
            groups = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    if "is_causal" in params:
        options["is_causal"] = True
    else:
        options["window_size"] = (-1, 0)  # causal in torch >= 2.10
    cu, longest = segments.cu_seqlens, segments.max_length
    out = varlen_attn(q, k, v, cu, cu, longest, longest, **options)
    return out.unsqueeze(0)  # (1, T, H, D)


@lru_cache(maxsize=1)
def varlen_signature() -> frozenset[str] | None:
    """Parameter names of ``varlen_attn`` in this torch, or ``None`` when it is missing."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return frozenset(inspect.signature(varlen_attn).parameters)


def enable_packed_attention(text_model: Any) -> None:
    """Register :func:`packed_attention` and switch the decoder's layers to it.

    The registration is idempotent and namespaced (``"m0rank_packed"``); masks for the
    unpacked path are built exactly as for ``"sdpa"``.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, packed_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    text_model.set_attn_implementation(ATTENTION_NAME)


def pair_positions(backbone: Any, input_ids: list[int], grids: list[tuple[int, int, int]],
                   image_token_id: int) -> torch.Tensor:
    """``(3, tokens)`` M-RoPE positions of one pair on its own (CPU).

    Text-only pairs get ``0..n-1`` on all three axes; pairs with images get transformers'
    ``get_rope_index`` (image tokens take (t, h, w) grid positions).
    """
    if not grids:
        return torch.arange(len(input_ids)).expand(3, -1)
    ids = torch.tensor([input_ids])
    mm_token_type_ids = (ids == image_token_id).to(torch.int32)
    positions, _ = backbone.get_rope_index(ids, mm_token_type_ids=mm_token_type_ids,
                                           image_grid_thw=torch.tensor(grids))
    return positions[:, 0]


def decode_packed(text_model: Any, embeds: torch.Tensor, positions: torch.Tensor,
                  segments: PackedSegments, last_index: torch.Tensor) -> torch.Tensor:
    """Run the decoder over one packed sequence; only each pair's last token leaves it.

    Every layer but the last runs on all tokens (transformers' own layer). In the last layer
    only the last tokens are read afterwards, so after its attention (which still needs every
    token's keys and values) the MLP, the final RMSNorm and the head see the last tokens only.

    Args:
        text_model: transformers' ``Qwen2VLTextModel`` (layers, rotary embedding, norm).
        embeds: ``(tokens, hidden)`` input embeddings, images already scattered in.
        positions: ``(3, tokens)`` M-RoPE positions, restarted per pair.
        segments: Pair boundaries.
        last_index: ``(pairs,)`` long indices of the pairs' last tokens, on the device.

    Returns:
        ``(pairs, hidden)`` normed hidden states of the last tokens.
    """
    hidden = embeds.unsqueeze(0)  # (1, T, H)
    position_embeddings = text_model.rotary_emb(hidden, positions.unsqueeze(1))  # (3, 1, T)
    *layers, final = text_model.layers
    for layer in layers:
        hidden = layer(hidden, attention_mask=None, position_embeddings=position_embeddings,
                       **{SEGMENTS_KWARG: segments})
    # The last layer's steps (Qwen2VLDecoderLayer.forward), keeping only the last tokens.
    attended, _ = final.self_attn(final.input_layernorm(hidden), attention_mask=None,
                                  position_embeddings=position_embeddings,
                                  **{SEGMENTS_KWARG: segments})
    last = (hidden + attended)[0].index_select(0, last_index)  # (pairs, H)
    last = last + final.mlp(final.post_attention_layernorm(last))
    return text_model.norm(last)


def to_device(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None,
              ) -> torch.Tensor:
    """Host -> device copy; on CUDA from pinned memory and without blocking the host, so
    the next micro-batch is collated while the GPU still runs this one."""
    if device.type != "cuda":
        return tensor.to(device, dtype) if dtype is not None else tensor.to(device)
    moved = tensor.pin_memory().to(device, non_blocking=True)
    return moved.to(dtype) if dtype is not None else moved
