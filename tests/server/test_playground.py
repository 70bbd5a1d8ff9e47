"""The playground page (``GET /``) in a real headless Chromium against a real server.

Uses Debian's ``chromium`` and ``chromium-driver`` through selenium (browser downloads do not
work here); skipped with a reason when either is missing. The page must show result cards in
exactly the order the API returns for the same request, with the same scores.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_server import serve_app
from PIL import Image

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000")
QUERY = "small language model for markdown"
DOCS = ["ReaderLM-v2 converts raw HTML into clean markdown.",
        "A recipe for sourdough bread.",
        "Markdown tables and lists, rendered from web pages."]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER})")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            yield driver
        finally:
            driver.quit()


@pytest.fixture(scope="module")
def site(reranker: Any) -> Iterator[str]:
    """A real uvicorn server (in a thread) over the tiny checkpoint."""
    from m0rank.server.app import create_app
    from m0rank.server.settings import ServerSettings

    with serve_app(create_app(ServerSettings(served_model_name="jina-reranker-m0"),
                              reranker)) as url:
        yield url


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A PNG file and the data URI the page's FileReader makes of it."""
    path = tmp_path_factory.mktemp("playground") / "red.png"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (220, 30, 30)).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return path, "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def open_page(driver: Any, url: str) -> None:
    """Load the page and remove its example documents."""
    driver.get(url + "/")
    assert driver.title == "m0rank playground"
    for button in driver.find_elements("css selector", "#docs .doc button.remove"):
        button.click()


def add_texts(driver: Any, texts: list[str]) -> None:
    for text in texts:
        driver.find_element("id", "add-text").click()
        driver.find_elements("css selector", "#docs textarea.doc-text")[-1].send_keys(text)


def upload(driver: Any, input_id: str, path: Path) -> None:
    """Choose a file in a hidden file input, as the "Upload"/"File…" buttons would."""
    element = driver.find_element("id", input_id)
    driver.execute_script("arguments[0].hidden = false;", element)
    element.send_keys(str(path))


def press_enter_and_read(driver: Any) -> list[dict[str, str]]:
    """Press Enter in the query box; return the cards (index, score, thumbnail) in order."""
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver.execute_script("document.getElementById('results').replaceChildren();")
    driver.find_element("id", "query").send_keys(Keys.ENTER)
    WebDriverWait(driver, 60).until(
        lambda d: d.find_elements("css selector", "#results .card")
        or d.find_element("id", "error").text)
    assert driver.find_element("id", "error").text == ""
    return [{"index": card.get_attribute("data-index"),
             "score": card.find_element("class name", "score").text,
             "thumb": "".join(img.get_attribute("src")[:22] for img in
                              card.find_elements("css selector", "img.thumb"))}
            for card in driver.find_elements("css selector", "#results .card")]


def api_results(url: str, query: Any, documents: list[Any]) -> list[dict[str, Any]]:
    response = httpx.post(f"{url}/v1/rerank", timeout=60, json={
        "query": query, "documents": documents, "return_documents": False})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def assert_cards_match(cards: list[dict[str, str]], results: list[dict[str, Any]]) -> None:
    assert [int(card["index"]) for card in cards] == [r["index"] for r in results]
    assert [card["score"] for card in cards] == [f"{r['relevance_score']:.4f}" for r in results]


def test_text_query_shows_cards_in_api_order(browser: Any, site: str,
                                             picture: tuple[Path, str]) -> None:
    open_page(browser, site)
    add_texts(browser, DOCS)
    upload(browser, "doc-files", picture[0])
    browser.find_element("id", "query").send_keys(QUERY)
    cards = press_enter_and_read(browser)
    results = api_results(site, QUERY, [*DOCS, {"image": picture[1]}])
    assert_cards_match(cards, results)
    thumbs = {int(card["index"]): card["thumb"] for card in cards}
    assert thumbs == {0: "", 1: "", 2: "", 3: "data:image/png;base64,"}
    raw = json.loads(browser.find_element("id", "raw").get_attribute("textContent"))
    assert raw["results"] == results


def test_query_image_and_top_n(browser: Any, site: str, picture: tuple[Path, str]) -> None:
    open_page(browser, site)
    add_texts(browser, DOCS)
    upload(browser, "query-image-file", picture[0])
    browser.find_element("id", "top-n").send_keys("2")
    cards = press_enter_and_read(browser)
    assert_cards_match(cards, api_results(site, {"image": picture[1]}, DOCS)[:2])


def test_server_errors_are_shown(browser: Any, site: str) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    open_page(browser, site)
    browser.find_element("id", "add-url").click()
    browser.find_element("css selector", "#docs input.doc-url").send_keys("http://10.0.0.7/a.png")
    browser.find_element("id", "query").send_keys("q", Keys.ENTER)
    WebDriverWait(browser, 60).until(lambda d: d.find_element("id", "error").text)
    assert browser.find_element("id", "error").text == (
        "HTTP 400: documents[0].image: refusing to fetch 'http://10.0.0.7/a.png': 10.0.0.7 is "
        "a private address (not in the server's allowed hosts)")
    assert browser.find_elements("css selector", "#results .card") == []
