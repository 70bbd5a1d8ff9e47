"""Occlusion, the model-agnostic method: cover a block, score again, the drop is its weight.

Works for every family because it only scores documents (Zeiler & Fergus 2014). Images: the
page's cells (``grid``) are covered ``block x block`` at a time with the page's background
colour, so a covered block looks like empty paper rather than a black box the model has never
seen. Text: ``block`` consecutive words are removed at a time. All variants of one
explanation are scored together, so the engine batches them like any request.

The split into :func:`plan_occlusion` (variants to score) and :func:`assemble_occlusion`
(weights from their scores) lets the server score the variants through its shared batcher.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from m0rank.config import ImageSizing
from m0rank.errors import InvalidInputError
from m0rank.explain.explanation import Explanation, TextSpan
from m0rank.explain.grid import CellGrid, background_colour, cell_grid, occlude
from m0rank.types import Document

__all__ = ["OcclusionPlan", "plan_occlusion", "assemble_occlusion", "MAX_VARIANTS"]

MAX_VARIANTS = 64  # default block size keeps one explanation within this many forwards
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class OcclusionPlan:
    """Documents to score (``documents[0]`` is the untouched one) and what each covers.

    Attributes:
        documents: The original, then one variant per block.
        blocks: Per variant, the covered cells ``(row, col)`` (images) or the removed
            ``(start, end)`` character span (text).
        block: Block side in cells, or words per block.
        grid: The page's cells (images), else ``None``.
        image: The page (images), else ``None``.
        fill: The colour covering a block (images).
    """

    documents: list[Document]
    blocks: list[list[tuple[int, int]]]
    block: int
    grid: CellGrid | None = None
    image: Image.Image | None = None
    fill: tuple[int, int, int] | None = None


def plan_occlusion(document: Document, *, block: int | None = None,
                   sizing: ImageSizing | None = None) -> OcclusionPlan:
    """The variants to score for ``document`` (its first image if it has one, else its
    text); ``block`` defaults to the smallest that needs at most :data:`MAX_VARIANTS`."""
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
        raise InvalidInputError(f"block must be a positive integer, got {block!r}")
    if document.images:
        return _plan_image(document, block, sizing)
    if document.text is None or not document.text.strip():
        raise InvalidInputError("document has neither an image nor text to explain")
    return _plan_text(document.text, block)


def assemble_occlusion(plan: OcclusionPlan, scores: Sequence[float], served: float,
                       ) -> Explanation:
    """Weights from the variants' scores: ``score(original) - score(without the block)``."""
    base = float(scores[0])
    drops = [base - float(s) for s in scores[1:]]
    details: dict[str, Any] = {"block": plan.block, "variants": len(drops)}
    if plan.grid is not None:
        heat = np.zeros((plan.grid.rows, plan.grid.cols))
        for cells, drop in zip(plan.blocks, drops, strict=True):
            for row, col in cells:
                heat[row, col] = drop
        details["fill"] = list(plan.fill or ())
        return Explanation(method="occlusion", score=served, method_score=base, heatmap=heat,
                           image=plan.image, details=details)
    text = plan.documents[0].text or ""
    spans = tuple(TextSpan(start=s, end=e, text=text[s:e], weight=drop)
                  for [(s, e)], drop in zip(plan.blocks, drops, strict=True))
    return Explanation(method="occlusion", score=served, method_score=base, spans=spans,
                       details=details)


def _plan_image(document: Document, block: int | None,
                sizing: ImageSizing | None) -> OcclusionPlan:
    image, *others = document.images
    grid = cell_grid(image.size, sizing)
    side = block or max(1, math.ceil(math.sqrt(grid.rows * grid.cols / MAX_VARIANTS)))
    fill = background_colour(image)
    blocks = [[(r, c) for r in range(top, min(top + side, grid.rows))
               for c in range(left, min(left + side, grid.cols))]
              for top in range(0, grid.rows, side) for left in range(0, grid.cols, side)]
    variants = [Document(text=document.text, images=(occlude(image, grid, cells, fill), *others))
                for cells in blocks]
    return OcclusionPlan(documents=[document, *variants], blocks=blocks, block=side, grid=grid,
                         image=image, fill=fill)


def _plan_text(text: str, block: int | None) -> OcclusionPlan:
    words = [match.span() for match in _WORD.finditer(text)]
    size = block or max(1, math.ceil(len(words) / MAX_VARIANTS))
    spans = [(words[i][0], words[min(i + size, len(words)) - 1][1])
             for i in range(0, len(words), size)]
    variants = [Document(text=(text[:start] + " " + text[end:]).strip() or " ")
                for start, end in spans]
    return OcclusionPlan(documents=[Document(text=text), *variants],
                         blocks=[[span] for span in spans], block=size)
