"""The server over the built-in model: a photo document comes back with score 0 and a warning."""

from __future__ import annotations

import asyncio
import base64
import io

import httpx
from PIL import Image


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


def test_server_reports_the_photo_warning(offline, photo) -> None:
    body = {"model": "m0rank-offline", "query": "electric car battery in winter",
            "documents": [{"image": _png_base64(photo)},
                          {"text": "An electric car battery loses range in winter."}]}
    response = asyncio.run(_rerank(offline, body))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == [1, 0]
    assert results[1]["relevance_score"] == 0.0
    assert results[1]["warnings"][0].startswith("documents[0]: its image has no readable text")
    assert not results[0].get("warnings")
