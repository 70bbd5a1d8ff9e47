"""m0rank.testing.pages: the page renderer that tests and benchmarks build pages with."""

from __future__ import annotations

import pytest

from m0rank.testing.pages import find_font, render_page


def test_a_newline_inside_an_entry_starts_a_new_line() -> None:
    """XQuAD paragraphs carry newlines inside sentences ("liquid O\\n2"); Pillow's text layout
    cannot measure them, so the renderer splits them into lines instead of crashing."""
    pytest.importorskip("PIL")
    try:
        find_font()
    except FileNotFoundError:
        pytest.skip("no Latin font installed")
    one_line = render_page(["liquid oxygen"], width=400)
    two_lines = render_page(["liquid O\n2"], width=400)
    assert two_lines.height > one_line.height
