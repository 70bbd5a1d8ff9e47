"""Cells of a page (one per image token group) and covering them like the page's background.

A cell is what one merged Qwen2-VL image token sees: 28 x 28 pixels of the page after the
model's resize (``smart_resize`` to the ``ImageSizing`` budget). Every method reports its
heatmap on this grid, so occlusion, attention and gradients can be compared cell by cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from m0rank.config import ImageSizing

__all__ = ["CellGrid", "cell_grid", "background_colour", "occlude"]

CELL = 28  # model pixels per merged image token side (14-pixel patches, 2 x 2 merge)


@dataclass(frozen=True)
class CellGrid:
    """``rows x cols`` cells over an image of ``size`` (width, height) pixels."""

    rows: int
    cols: int
    size: tuple[int, int]

    def box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """Pixel box ``(left, top, right, bottom)`` of a cell in the original image."""
        width, height = self.size
        return (math.floor(col * width / self.cols), math.floor(row * height / self.rows),
                math.ceil((col + 1) * width / self.cols), math.ceil((row + 1) * height / self.rows))


def cell_grid(size: tuple[int, int], sizing: ImageSizing | None = None) -> CellGrid:
    """The grid of an image of ``size`` under the model's resize (Qwen2-VL ``smart_resize``:
    sides rounded to multiples of 28, area brought within ``min_pixels..max_pixels``)."""
    sizing = sizing or ImageSizing()
    width, height = size
    rows, cols = max(1, round(height / CELL)), max(1, round(width / CELL))
    area = rows * cols * CELL * CELL
    if area > sizing.max_pixels:
        scale = math.sqrt(height * width / sizing.max_pixels)
        rows = max(1, math.floor(height / scale / CELL))
        cols = max(1, math.floor(width / scale / CELL))
    elif area < sizing.min_pixels:
        scale = math.sqrt(sizing.min_pixels / (height * width))
        rows, cols = math.ceil(height * scale / CELL), math.ceil(width * scale / CELL)
    return CellGrid(rows=rows, cols=cols, size=size)


def background_colour(image: Image.Image) -> tuple[int, int, int]:
    """The page's background: the most common colour of its border (quantised to 16 levels,
    then the mean of the pixels in that bin), so a covered block reads as empty paper."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int64)
    border = np.concatenate([pixels[:4].reshape(-1, 3), pixels[-4:].reshape(-1, 3),
                             pixels[:, :4].reshape(-1, 3), pixels[:, -4:].reshape(-1, 3)])
    bins = border // 16
    keys = bins[:, 0] * 256 + bins[:, 1] * 16 + bins[:, 2]
    common = np.bincount(keys).argmax()
    mean = border[keys == common].mean(axis=0)
    return (int(round(mean[0])), int(round(mean[1])), int(round(mean[2])))


def occlude(image: Image.Image, grid: CellGrid, cells: Iterable[tuple[int, int]],
            fill: tuple[int, int, int]) -> Image.Image:
    """A copy of ``image`` with ``cells`` painted in ``fill``."""
    covered = image.convert("RGB").copy()
    draw = ImageDraw.Draw(covered)
    for row, col in cells:
        left, top, right, bottom = grid.box(row, col)
        draw.rectangle([left, top, right - 1, bottom - 1], fill=fill)
    return covered
