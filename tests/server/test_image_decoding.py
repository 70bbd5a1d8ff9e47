"""Images cheap to send but expensive to decode: a pixel limit that passes 4K and refuses
bombs, JPEGs decoded reduced when the model downsizes anyway, and a bound on decode memory."""

from __future__ import annotations

import asyncio
import base64
import io
import re

import pytest
from image_helpers import resolve_all
from PIL import Image

from m0rank.config import ImageLimits
from m0rank.errors import InputTooLargeError
from m0rank.preprocessing.images import decode_image_bytes
from m0rank.server.images import DecodeBudget, ImageFetchSettings

MODEL_PIXELS = 602112


def encoded(size: tuple[int, int], kind: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (240, 240, 235)).save(buffer, format=kind)
    return buffer.getvalue()


def test_4k_passes_and_a_62_megapixel_png_is_413() -> None:
    four_k = base64.b64encode(encoded((3840, 2160))).decode()
    (image,), _ = resolve_all(ImageFetchSettings(), four_k)
    assert image.size == (3840, 2160)
    bomb = encoded((9000, 6900))  # 62 MP of one colour: a few hundred KB of PNG
    assert len(bomb) < 500_000
    with pytest.raises(InputTooLargeError, match=re.escape(
            "documents[0].image is 9000x6900 = 62100000 pixels; the limit is 16777216")):
        resolve_all(ImageFetchSettings(), base64.b64encode(bomb).decode())


def test_large_jpegs_are_decoded_reduced_keeping_twice_the_model_size() -> None:
    data = encoded((4000, 3000), "JPEG")  # 12 MP, 20x the model's 602,112-pixel budget
    full = decode_image_bytes(data, "img")
    reduced = decode_image_bytes(data, "img", draft_pixels=MODEL_PIXELS)
    assert full.size == (4000, 3000)
    assert reduced.size == (2000, 1500)  # 1/2 per side: still >= 4x the model's area
    assert reduced.width * reduced.height >= 4 * MODEL_PIXELS
    small = encoded((800, 600), "JPEG")
    assert decode_image_bytes(small, "img", draft_pixels=MODEL_PIXELS).size == (800, 600)
    png = encoded((4000, 3000))
    assert decode_image_bytes(png, "img", ImageLimits(), draft_pixels=MODEL_PIXELS).size == (
        4000, 3000)  # only JPEG has a reduced decode


def test_the_server_decodes_jpegs_reduced() -> None:
    source = base64.b64encode(encoded((4000, 3000), "JPEG")).decode()
    (image,), _ = resolve_all(ImageFetchSettings(draft_pixels=MODEL_PIXELS), source)
    assert image.size == (2000, 1500)


def test_decode_budget_holds_concurrent_decodes_within_its_bytes() -> None:
    async def scenario() -> list[int]:
        budget = DecodeBudget(100)
        peaks: list[int] = []

        async def decode(amount: int) -> None:
            async with budget.hold(amount):
                peaks.append(budget.in_use)
                await asyncio.sleep(0.01)

        await asyncio.gather(*[decode(40) for _ in range(6)], decode(500))
        assert budget.in_use == 0
        return peaks

    peaks = asyncio.run(scenario())
    assert len(peaks) == 7 and max(peaks) <= 100  # the oversized one ran alone at the cap
