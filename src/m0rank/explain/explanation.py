"""The answer of ``Reranker.explain``: a score, and where in the page or text it came from."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["Explanation", "TextSpan"]

_HEAT_RGB = (255, 40, 0)


@dataclass(frozen=True)
class TextSpan:
    """A word or group of words of a text document and its weight.

    Attributes:
        start: First character (in the document's text).
        end: One past the last character.
        text: ``document.text[start:end]``.
        weight: Relevance attributed to the span (occlusion: the score drop without it).
    """

    start: int
    end: int
    text: str
    weight: float


@dataclass(frozen=True)
class Explanation:
    """Why a document scored what it scored, by one method.

    Attributes:
        method: ``"occlusion"``, ``"attention"`` or ``"gradient"``.
        score: The served score (what ``rank`` / ``score`` return for this pair).
        method_score: The score of the forward pass the method ran on (eager attention and
            gradients may differ slightly from the served kernels; occlusion equals ``score``).
        heatmap: For image documents, one weight per cell (``rows x cols``; a cell is one image
            token group of 28 x 28 model pixels), else ``None``.
        image: The page the heatmap covers (for :meth:`overlay`), else ``None``.
        spans: For text documents, one weight per word or span, in text order.
        details: Method settings (block size, layers, heads, ...), for display.
    """

    method: str
    score: float
    method_score: float
    heatmap: np.ndarray | None = None
    image: Image.Image | None = None
    spans: tuple[TextSpan, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def overlay(self, alpha: float = 0.55) -> Image.Image:
        """The page with the heatmap drawn on it: positive weights in red, scaled to the
        largest, cells with no positive weight left as they are.

        Raises:
            ValueError: The explanation is of a text document (no heatmap).
        """
        if self.heatmap is None or self.image is None:
            raise ValueError("overlay needs an image explanation; text explanations carry spans")
        page = self.image.convert("RGB")
        strength = _normalised(self.heatmap)
        mask = Image.fromarray((strength * 255 * alpha).astype(np.uint8), mode="L")
        mask = mask.resize(page.size, Image.Resampling.BILINEAR)
        return Image.composite(Image.new("RGB", page.size, _HEAT_RGB), page, mask)

    def peak(self) -> tuple[int, int] | None:
        """``(row, col)`` of the heaviest cell, or ``None`` for text."""
        if self.heatmap is None:
            return None
        row, col = np.unravel_index(int(np.argmax(self.heatmap)), self.heatmap.shape)
        return int(row), int(col)

    def to_dict(self, *, overlay: bool = True) -> dict[str, Any]:
        """JSON shape of ``POST /v1/explain``: the heatmap as nested lists, the overlay as a
        PNG data URI, spans as objects."""
        out: dict[str, Any] = {"method": self.method, "score": self.score,
                               "method_score": self.method_score, "details": self.details}
        if self.heatmap is not None:
            out["heatmap"] = np.round(self.heatmap, 6).tolist()
            if overlay and self.image is not None:
                out["overlay"] = _png_data_uri(self.overlay())
        if self.spans:
            out["spans"] = [{"start": s.start, "end": s.end, "text": s.text,
                             "weight": s.weight} for s in self.spans]
        return out


def _normalised(heatmap: np.ndarray) -> np.ndarray:
    positive = np.clip(np.nan_to_num(heatmap.astype(np.float64)), 0.0, None)
    top = positive.max() if positive.size else 0.0
    return positive / top if top > 0 else positive


def _png_data_uri(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
