"""The playground in headless Chromium: a dropped PDF ranked per page with thumbnails, and the
"why?" button drawing the explanation overlay that POST /v1/explain returns."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from test_playground import (  # noqa: F401 - fixtures
    QUERY,
    add_texts,
    browser,
    open_page,
    press_enter_and_read,
    site,
    upload,
)

from m0rank.testing.checkset import render_passage
from m0rank.testing.pdfs import text_pdf


def drop(driver: Any, name: str, payload: str) -> None:
    """Drop a PDF file on the inputs, as a user dragging it from their desktop would."""
    driver.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[1]), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], arguments[0], {type: "application/pdf"}));
        document.getElementById("inputs").dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    """, name, payload)


def _wait(driver: Any, predicate: Any, timeout: float = 60) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(predicate)


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("playground-why") / "page.png"
    buffer = io.BytesIO()
    render_passage("ReaderLM-v2 converts HTML into markdown.").save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path, "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_why_button_draws_the_overlay_of_v1_explain(browser: Any, site: str,  # noqa: F811
                                                     page_file: tuple[Path, str]) -> None:
    open_page(browser, site)
    add_texts(browser, ["A recipe for sourdough bread."])
    upload(browser, "doc-files", page_file[0])
    browser.find_element("id", "query").send_keys(QUERY)
    press_enter_and_read(browser)
    card = browser.find_element("css selector", '#results .card[data-index="1"]')
    card.find_element("css selector", "button.why").click()
    overlay = _wait(browser, lambda d: d.find_elements("css selector",
                                                       '#results .card[data-index="1"] '
                                                       "img.overlay"))[0]
    _wait(browser, lambda d: d.execute_script("return arguments[0].naturalWidth;", overlay) > 0)
    expected = httpx.post(f"{site}/v1/explain", timeout=60, json={
        "query": QUERY, "document": {"image": page_file[1]}, "method": "occlusion"}).json()
    assert overlay.get_attribute("src") == expected["overlay"]
    with Image.open(page_file[0]) as original:
        width = browser.execute_script("return arguments[0].naturalWidth;", overlay)
        assert width == original.width
    summary = card.find_element("css selector", ".explained .meta").text
    assert summary.startswith("occlusion: served ")


def test_dropped_pdf_is_ranked_per_page_with_thumbnails(browser: Any, site: str,  # noqa: F811
                                                        tmp_path: Path) -> None:
    path = tmp_path / "report.pdf"
    path.write_bytes(text_pdf([["Cover page"], ["ReaderLM-v2 converts HTML to markdown."],
                               ["Appendix"]]))
    open_page(browser, site)
    drop(browser, path.name, base64.b64encode(path.read_bytes()).decode())
    _wait(browser, lambda d: d.find_elements("css selector", '#docs .doc[data-kind="pdf"]'))
    browser.find_element("id", "query").send_keys(QUERY)
    cards = press_enter_and_read(browser)
    assert len(cards) == 3 and {c["index"] for c in cards} == {"0"}
    assert all(c["thumb"] == "data:image/jpeg;base64" for c in cards)  # first 22 characters
    pages = [card.get_attribute("data-page")
             for card in browser.find_elements("css selector", "#results .card")]
    response = httpx.post(f"{site}/v1/rerank", timeout=60, json={
        "query": QUERY, "documents": [{"pdf": base64.b64encode(path.read_bytes()).decode()}]})
    assert pages == [str(r["page"]) for r in response.json()["results"]]
