"""The HTTP server over m0rank-offline v2: cross-lingual text and page-image documents."""

from __future__ import annotations

import asyncio
import base64
import io

import httpx
from PIL import Image
from v2_helpers import BERLIN_DE, EIFFEL_ZH


def _png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def _rerank(reranker, body: dict) -> httpx.Response:  # noqa: ANN001
    from m0rank.server.app import create_app
    from m0rank.server.settings import ServerSettings

    app = create_app(ServerSettings(), reranker)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://m0rank.test") as client:
            for _ in range(500):
                if (await client.get("/ready")).status_code == 200:
                    break
                await asyncio.sleep(0.02)
            return await client.post("/v1/rerank", json=body)


def test_server_ranks_cross_lingual_text_and_pages(offline_v2, zh_eiffel_page) -> None:
    body = {"model": "m0rank-offline", "query": "How tall is the Eiffel Tower?",
            "documents": [BERLIN_DE, EIFFEL_ZH, {"image": _png_base64(zh_eiffel_page)}]}
    response = asyncio.run(_rerank(offline_v2, body))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert results[-1]["index"] == 0  # the irrelevant German text is last
    assert {r["index"] for r in results[:2]} == {1, 2}
    assert all(0.0 <= r["relevance_score"] <= 1.0 for r in results)
