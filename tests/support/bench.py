"""Small helpers shared by the performance-path tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from PIL import Image


def page(color: tuple[int, int, int], size: tuple[int, int]) -> Image.Image:
    """A flat page with a diagonal pattern, so different pages give different features."""
    image = Image.new("RGB", size, color)
    for x in range(0, size[0], 5):
        image.putpixel((x, (x * 7) % size[1]), (255 - color[0], 40, 180))
    return image


def load_bench() -> ModuleType:
    """``bench/throughput.py`` as a module (it is a script, not part of the package)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "throughput.py"
    name = "m0rank_bench_throughput"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while being built
        spec.loader.exec_module(module)
    return sys.modules[name]
