"""Choosing and running an explanation method for one (query, document) pair."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from m0rank.config import ImageSizing, ScoreOptions
from m0rank.errors import InvalidInputError, UnsupportedOperationError
from m0rank.explain.explanation import Explanation
from m0rank.explain.occlusion import assemble_occlusion, plan_occlusion
from m0rank.types import Document

__all__ = ["METHODS", "check_method", "explain_pair"]

METHODS = ("occlusion", "attention", "gradient")
ScoreFn = Callable[[Sequence[Document]], list[float]]


def check_method(method: object) -> str:
    """``method`` if it is one of :data:`METHODS`.

    Raises:
        InvalidInputError: Anything else, naming the value.
    """
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {list(METHODS)}, got {method!r}")
    return str(method)


def explain_pair(model: Any, score: ScoreFn, query: Document, document: Document, *,
                 method: str = "occlusion", options: ScoreOptions | None = None,
                 block: int | None = None, layers: Sequence[int] | None = None,
                 heads: Sequence[int] | None = None,
                 sizing: ImageSizing | None = None) -> Explanation:
    """Explain ``document``'s score for ``query`` (both resolved: images are PIL).

    Args:
        model: The loaded family (attention and gradient need jina-reranker-m0).
        score: Scores documents against ``query`` the way the service does (batched).
        method: ``"occlusion"`` (every family), ``"attention"`` or ``"gradient"``.
        options: Truncation settings of the served call.
        block: Occlusion block: cells per side (images) or words (text).
        layers: Attention layers to average (default all; negative indices count back).
        heads: Attention heads to average (default all).
        sizing: The model's resize budget, which decides the cell grid.

    Raises:
        InvalidInputError: Unknown method or bad option.
        UnsupportedOperationError: The family cannot run the method.
    """
    method = check_method(method)
    options = options or ScoreOptions()
    if method == "occlusion":
        plan = plan_occlusion(document, block=block, sizing=sizing)
        scores = score(plan.documents)
        return assemble_occlusion(plan, scores, scores[0])
    from m0rank.explain import jina_m0

    if not jina_m0.is_jina_m0(model):
        raise UnsupportedOperationError(
            f"method {method!r} needs jina-reranker-m0; {type(model).__name__} supports "
            f"method='occlusion'")
    served = score([document])[0]
    if method == "attention":
        return jina_m0.attention_explanation(model, query, document, options, served,
                                             layers=layers, heads=heads)
    return jina_m0.gradient_explanation(model, query, document, options, served)
