"""Rendering text onto page images with real fonts, for tests, benchmarks and check sets.

Noto fonts (Debian ``fonts-noto-core`` and ``fonts-noto-cjk``) cover Latin with umlauts and
Chinese. When they are missing, DejaVu (Latin only) is used for Latin text and Chinese text
raises, so a test never silently renders tofu boxes.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

__all__ = ["find_font", "render_page", "has_cjk"]

_LATIN_FONTS = (
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)
_CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
)


def has_cjk(text: str) -> bool:
    """True when ``text`` holds CJK ideographs (needs a CJK font)."""
    return any("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text)


def find_font(cjk: bool = False) -> Path:
    """Path of the first installed font for Latin or CJK text.

    Raises:
        FileNotFoundError: No suitable font is installed.
    """
    for candidate in _CJK_FONTS if cjk else _LATIN_FONTS:
        if Path(candidate).exists():
            return Path(candidate)
    need = "fonts-noto-cjk" if cjk else "fonts-noto-core"
    raise FileNotFoundError(f"no font for {'CJK' if cjk else 'Latin'} text; apt-get install {need}")


def render_page(
    lines: list[str], *, width: int = 800, font_size: int = 28, margin: int = 40,
    background: str = "white", color: str = "black",
) -> Image.Image:
    """Render ``lines`` top to bottom on a white page, one text line per entry.

    Long lines are wrapped at word boundaries (or characters, for CJK) to fit ``width``; a
    newline inside an entry starts a new line (Pillow's text layout cannot measure one).
    """
    lines = [part for line in lines for part in line.split("\n")]
    text = "\n".join(lines)
    font = ImageFont.truetype(str(find_font(cjk=has_cjk(text))), font_size)
    wrapped = [part for line in lines for part in _wrap(line, font, width - 2 * margin)]
    line_height = int(font_size * 1.5)
    height = max(2 * margin + line_height * len(wrapped), 2 * margin + line_height)
    page = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(page)
    for row, line in enumerate(wrapped):
        draw.text((margin, margin + row * line_height), line, font=font, fill=color)
    return page


def _wrap(line: str, font: ImageFont.FreeTypeFont, max_width: int) -> list[str]:
    units = list(line) if has_cjk(line) else line.split(" ")
    joiner = "" if has_cjk(line) else " "
    out: list[str] = []
    current = ""
    for unit in units:
        candidate = unit if not current else current + joiner + unit
        if font.getlength(candidate) <= max_width or not current:
            current = candidate
        else:
            out.append(current)
            current = unit
    return [*out, current] if current else out or [""]
