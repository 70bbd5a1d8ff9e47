"""jina-reranker-m0's own explanations: last-token attention and gradient x input.

Both read the pair the way the score does (document first, score token last) on one
left-padded row, and return a heatmap on the merged image-token grid of the document's first
image, the same cells occlusion uses.

- ``attention``: the attention of the last (score) token to each image token, averaged over
  the selected layers and heads (default: all). Fused kernels (SDPA, the packed attention)
  do not return weights, so this forward runs with transformers' eager attention, switched on
  for this call only; its score is reported as ``method_score`` next to the served one.
- ``gradient``: ``d logit / d feature * feature`` summed over the hidden size, per image token
  (Shrikumar et al. 2016); one backward pass through the language model, the vision tower
  frozen: cheap next to occlusion's dozens of forwards.

Callers serialise these with other forwards of the same model (the server runs them on its
device thread): the eager switch is a setting of the shared module.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from m0rank.config import ScoreOptions
from m0rank.errors import InvalidInputError, UnsupportedOperationError
from m0rank.explain.explanation import Explanation
from m0rank.types import Document

__all__ = ["attention_explanation", "gradient_explanation", "is_jina_m0"]


def is_jina_m0(model: Any) -> bool:
    """True for the jina-reranker-m0 family (imported lazily: it needs torch)."""
    from m0rank.model.jina_m0.reranker import JinaM0Reranker

    return isinstance(model, JinaM0Reranker)


def attention_explanation(model: Any, query: Document, document: Document,
                          options: ScoreOptions, served: float, *,
                          layers: Sequence[int] | None = None,
                          heads: Sequence[int] | None = None) -> Explanation:
    """Last-token attention over the first document image's tokens (see module docstring).

    Raises:
        UnsupportedOperationError: The document has no image.
        InvalidInputError: A layer or head index out of range.
    """
    import torch

    row = _row(model, query, document, options)
    text_model = model.module.model.language_model
    with torch.inference_mode(), _eager_attention(text_model):
        out = text_model(inputs_embeds=row.embeds, attention_mask=row.inputs.attention_mask,
                         position_ids=row.inputs.positions, use_cache=False,
                         output_attentions=True)
        logit = model.module.score(out.last_hidden_state[:, -1]).squeeze(-1).float()
    chosen_layers = _indices(layers, len(out.attentions), "layers")
    chosen_heads = _indices(heads, out.attentions[0].shape[1], "heads")
    last = torch.stack([out.attentions[i][0, :, -1, :].float() for i in chosen_layers])
    weights = last[:, chosen_heads].mean(dim=(0, 1))  # (L,)
    heat = weights[row.image_positions].reshape(row.rows, row.cols).cpu().numpy()
    return Explanation(method="attention", score=served, method_score=_score(model, logit),
                       heatmap=heat.astype(np.float64), image=document.images[0],
                       details={"layers": chosen_layers, "heads": chosen_heads,
                                "attention": "eager"})


def gradient_explanation(model: Any, query: Document, document: Document,
                         options: ScoreOptions, served: float) -> Explanation:
    """Gradient x input over the first document image's tokens (see module docstring)."""
    import torch

    row = _row(model, query, document, options)
    text_model = model.module.model.language_model
    features = row.embeds.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = text_model(inputs_embeds=features, attention_mask=row.inputs.attention_mask,
                         position_ids=row.inputs.positions, use_cache=False)
        logit = model.module.score(out.last_hidden_state[:, -1]).squeeze()
        (grad,) = torch.autograd.grad(logit, features)
    contribution = (grad * features).detach().float().sum(-1)[0]  # (L,)
    heat = contribution[row.image_positions].reshape(row.rows, row.cols).cpu().numpy()
    return Explanation(method="gradient", score=served,
                       method_score=_score(model, logit.detach().float().reshape(1)),
                       heatmap=heat.astype(np.float64), image=document.images[0],
                       details={"target": "logit", "input": "image token embeddings"})


class _Row:
    """One pair as a left-padded row: inputs, embeddings with image features placed, and
    where the first document image's tokens are."""

    def __init__(self, inputs: Any, embeds: Any, image_positions: Any, rows: int,
                 cols: int) -> None:
        self.inputs, self.embeds = inputs, embeds
        self.image_positions, self.rows, self.cols = image_positions, rows, cols


def _row(model: Any, query: Document, document: Document, options: ScoreOptions) -> _Row:
    import torch

    from m0rank.model.jina_m0.inputs import pad, resolve_image_features

    if not document.images:
        raise UnsupportedOperationError("attention and gradient explain image documents; use "
                                        "method='occlusion' for text")
    prompt = model.preprocess(query, document, options, "document").payload
    backbone = model.module.model
    with torch.inference_mode():
        features = resolve_image_features([prompt], model.vision_cache,
                                          model.module.encode_images)
        assert features is not None  # the document has an image (checked above)
        inputs = pad([prompt], backbone, model.image_token_id, model.pad_token_id, model.device)
        embeds = backbone.language_model.embed_tokens(inputs.input_ids)
        flat = embeds.flatten(0, 1).index_copy(0, inputs.image_index, features.to(embeds.dtype))
    embeds = flat.view_as(embeds).clone()  # leave inference mode: gradients may follow
    _, height, width = prompt.images[0].grid
    merge = backbone.visual.spatial_merge_size
    rows, cols = height // merge, width // merge
    positions = (inputs.input_ids[0] == model.image_token_id).nonzero().squeeze(1)[: rows * cols]
    return _Row(inputs, embeds, positions, rows, cols)


@contextmanager
def _eager_attention(text_model: Any) -> Iterator[None]:
    """transformers' eager attention (which returns weights) for the duration of a call."""
    previous = text_model.config._attn_implementation
    text_model.set_attn_implementation("eager")
    try:
        yield
    finally:
        text_model.set_attn_implementation(previous)


def _indices(chosen: Sequence[int] | None, count: int, name: str) -> list[int]:
    if chosen is None:
        return list(range(count))
    picked = [int(i) for i in chosen]
    if not picked or any(not -count <= i < count for i in picked):
        raise InvalidInputError(f"{name} must be indices in [-{count}, {count}), got "
                                f"{list(chosen)!r}")
    return [i % count for i in picked]


def _score(model: Any, logit: Any) -> float:
    return float(model.postprocess(logit.cpu())[0])
