"""Left-padded rows for the Qwen2-VL families' padded path (the reference's layout).

The reference pads on the left so that every row's last token is the one scored.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["QWEN2_PAD_TOKEN_ID", "left_pad"]

# "<|endoftext|>", the Qwen2 tokenizer's pad token; used when a tokenizer names none.
QWEN2_PAD_TOKEN_ID = 151643


def left_pad(rows: Sequence[Sequence[int]], pad_token_id: int = QWEN2_PAD_TOKEN_ID,
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows -> ``(ids, attention_mask)``, both ``(rows, longest)``, padded on the left."""
    longest = max(len(row) for row in rows)
    ids = torch.full((len(rows), longest), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for index, row in enumerate(rows):
        ids[index, longest - len(row):] = torch.tensor(list(row), dtype=torch.long)
        mask[index, longest - len(row):] = 1
    return ids, mask
