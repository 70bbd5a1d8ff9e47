"""Small helpers shared by the performance-path tests."""

from __future__ import annotations

from PIL import Image


def page(color: tuple[int, int, int], size: tuple[int, int]) -> Image.Image:
    """A flat page with a diagonal pattern, so different pages give different features."""
    image = Image.new("RGB", size, color)
    for x in range(0, size[0], 5):
        image.putpixel((x, (x * 7) % size[1]), (255 - color[0], 40, 180))
    return image
