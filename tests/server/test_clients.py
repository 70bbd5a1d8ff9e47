"""Real third-party clients against a real ``m0rank serve`` on 127.0.0.1 (tiny checkpoint).

Each client must get exactly the ranking the library gives for the same input: the official
``cohere`` SDK (v1 ``Client`` and ``ClientV2``), LlamaIndex's ``JinaRerank``, LangChain's
``CohereRerank`` and the ``rerankers`` library's API ranker, all pointed at our server by
their own base-URL option. Plain httpx covers image sources through the server and their
error answers. One server process is shared by the whole module.

The ``no_network`` fixture blocks any non-loopback connection, so a client that ignored its
base URL would fail here instead of calling the vendor's API.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cli_server import serve_cli
from PIL import Image

QUERY = "small language model for markdown"
DOCS = [
    "ReaderLM-v2 converts raw HTML into clean markdown.",
    "A recipe for sourdough bread with a long fermentation.",
    "Markdown tables and lists, rendered from web pages.",
    "The Eiffel Tower is in Paris.",
]
SERVED = "jina-reranker-m0"


@pytest.fixture(scope="module")
def server_url(m0_checkpoint: Path) -> Iterator[str]:
    """``m0rank serve`` over the tiny checkpoint; image URLs may reach 127.0.0.1 only."""
    with serve_cli(m0_checkpoint, "--served-model-name", SERVED,
                   "--allow-host", "127.0.0.1/32") as url:
        yield url


@pytest.fixture(scope="module")
def expected(reranker) -> list[tuple[int, float]]:  # noqa: ANN001 - Reranker
    """The library's ranking of DOCS for QUERY: (index, score), best first."""
    return [(r.index, r.score) for r in reranker.rank(QUERY, DOCS)]


def assert_same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in want]
    assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)


# --- real clients ---------------------------------------------------------------------------

def test_cohere_sdk_v1_client(server_url: str, expected: list, no_network: None) -> None:
    cohere = pytest.importorskip("cohere")
    client = cohere.Client(api_key="any-key", base_url=server_url)
    response = client.rerank(model=SERVED, query=QUERY, documents=DOCS, top_n=3,
                             return_documents=True)
    assert_same([(r.index, r.relevance_score) for r in response.results], expected[:3])
    assert [r.document.text for r in response.results] == [DOCS[i] for i, _ in expected[:3]]
    assert response.id


def test_cohere_sdk_v2_client(server_url: str, expected: list, no_network: None) -> None:
    cohere = pytest.importorskip("cohere")
    client = cohere.ClientV2(api_key="any-key", base_url=server_url)
    response = client.rerank(model=SERVED, query=QUERY, documents=DOCS)
    assert_same([(r.index, r.relevance_score) for r in response.results], expected)
    assert response.meta.billed_units.search_units == 1


def test_llamaindex_jina_rerank(server_url: str, expected: list, no_network: None) -> None:
    jina = pytest.importorskip("llama_index.postprocessor.jinaai_rerank")
    from llama_index.core.schema import NodeWithScore, TextNode

    reranker = jina.JinaRerank(api_key="any-key", base_url=f"{server_url}/v1", model=SERVED,
                               top_n=2)
    nodes = [NodeWithScore(node=TextNode(text=text, id_=str(i))) for i, text in enumerate(DOCS)]
    ranked = reranker.postprocess_nodes(nodes, query_str=QUERY)
    assert_same([(int(n.node.node_id), n.score) for n in ranked], expected[:2])


def test_langchain_cohere_rerank(server_url: str, expected: list, no_network: None) -> None:
    langchain_cohere = pytest.importorskip("langchain_cohere")
    from langchain_core.documents import Document

    compressor = langchain_cohere.CohereRerank(cohere_api_key="any-key", base_url=server_url,
                                               model=SERVED, top_n=3)
    raw = compressor.rerank(documents=DOCS, query=QUERY, top_n=None)
    assert_same([(r["index"], r["relevance_score"]) for r in raw], expected)
    compressed = compressor.compress_documents([Document(page_content=d) for d in DOCS], QUERY)
    assert [d.page_content for d in compressed] == [DOCS[i] for i, _ in expected[:3]]
    assert [d.metadata["relevance_score"] for d in compressed] == pytest.approx(
        [s for _, s in expected[:3]], abs=1e-5)


def test_rerankers_api_ranker(server_url: str, expected: list, no_network: None) -> None:
    rerankers = pytest.importorskip("rerankers")
    ranker = rerankers.Reranker("jina", api_key="any-key", url=f"{server_url}/v1/rerank",
                                verbose=0)
    results = ranker.rank(query=QUERY, docs=DOCS, doc_ids=list(range(len(DOCS))))
    assert_same([(r.doc_id, r.score) for r in results.results], expected)
    assert results.top_k(1)[0].text == DOCS[expected[0][0]]


# --- image sources through the server (plain httpx) ----------------------------------------

def png(size: tuple[int, int], color: tuple[int, int, int], mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color if mode == "RGB" else 1).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image_host() -> Iterator[tuple[str, dict[str, int]]]:
    """A loopback HTTP server with a few images; yields its root and a per-path hit count."""
    files = {"/red.png": (png((64, 48), (220, 20, 20)), "image/png"),
             "/blue.png": (png((48, 64), (20, 20, 220)), "image/png"),
             "/huge.png": (png((9000, 8000), (0, 0, 0), mode="1"), "image/png"),
             "/page.html": (b"<html></html>", "text/html")}
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            hits[self.path] = hits.get(self.path, 0) + 1
            body, kind = files.get(self.path, (b"missing", "text/plain"))
            self.send_response(200 if self.path in files else 404)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def rerank(server_url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server_url}/v1/rerank", json=body, timeout=60)


def test_image_urls_rank_like_the_library_and_download_once(
        server_url: str, image_host: tuple[str, dict[str, int]], reranker) -> None:  # noqa: ANN001
    root, hits = image_host
    documents = [{"image": f"{root}/red.png"}, {"image": f"{root}/blue.png"}, "a red square"]
    for _ in range(2):
        response = rerank(server_url, {"query": "red", "documents": documents,
                                       "return_documents": False})
        assert response.status_code == 200, response.text
    assert hits["/red.png"] == 1 and hits["/blue.png"] == 1  # the second request hit the cache
    library = reranker.rank("red", [Image.open(io.BytesIO(png((64, 48), (220, 20, 20)))),
                                    Image.open(io.BytesIO(png((48, 64), (20, 20, 220)))),
                                    "a red square"])
    got = [(r["index"], r["relevance_score"]) for r in response.json()["results"]]
    assert_same(got, [(r.index, r.score) for r in library])


@pytest.mark.parametrize(("source", "status", "kind", "message"), [
    ("http://127.0.0.2:9/x.png", 400, "image_fetch_error",
     "documents[0].image: refusing to fetch 'http://127.0.0.2:9/x.png': 127.0.0.2 is a "
     "loopback address (not in the server's allowed hosts)"),
    ("http://10.1.2.3/x.png", 400, "image_fetch_error",
     "documents[0].image: refusing to fetch 'http://10.1.2.3/x.png': 10.1.2.3 is a private "
     "address (not in the server's allowed hosts)"),
    ("/etc/passwd", 400, "invalid_image",
     "documents[0].image: local file paths are not accepted by this server (got "
     "'/etc/passwd'); send a URL or base64 data"),
    ("{root}/missing.png", 400, "image_fetch_error",
     "documents[0].image: fetching '{root}/missing.png' returned HTTP 404"),
    ("{root}/page.html", 400, "image_fetch_error",
     "documents[0].image: '{root}/page.html' is not an image (content-type 'text/html')"),
    ("{root}/huge.png", 413, "input_too_large",
     "documents[0].image is 9000x8000 = 72000000 pixels; the limit is 16777216"),
])
def test_image_errors_over_http(server_url: str, image_host: tuple[str, dict[str, int]],
                                source: str, status: int, kind: str, message: str) -> None:
    root, _ = image_host
    response = rerank(server_url, {"query": "q", "documents": [{"image": source.format(root=root)},
                                                              "text"]})
    assert response.status_code == status
    body = response.json()
    assert body["error"]["type"] == kind
    assert body["detail"] == message.format(root=root)
