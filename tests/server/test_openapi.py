"""The committed ``docs/openapi.json`` must equal the live schema.

When an API change is intended, regenerate it with
``python -m m0rank.server.app --write-openapi docs/openapi.json`` and commit the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from server_helpers import make_app

from m0rank.server.app import main

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
REGENERATE = "python -m m0rank.server.app --write-openapi docs/openapi.json"


def test_live_schema_matches_committed_file(reranker):
    app = make_app(reranker)
    with TestClient(app) as client:
        live = client.get("/openapi.json").json()
    assert live == json.loads(COMMITTED.read_text()), f"API schema drifted: run `{REGENERATE}`"


def test_regenerate_command_writes_the_committed_file(tmp_path):
    out = tmp_path / "openapi.json"
    assert main(["--write-openapi", str(out)]) == 0
    assert out.read_text() == COMMITTED.read_text()


def test_schema_documents_the_public_shapes():
    schema = json.loads(COMMITTED.read_text())
    assert set(schema["paths"]) == {"/rerank", "/v1/rerank", "/v2/rerank", "/v1/models",
                                    "/health", "/ready", "/metrics", "/v1/explain",
                                    "/score", "/v1/score", "/invocations"}
    request = schema["components"]["schemas"]["RerankRequest"]["properties"]
    assert {"model", "query", "documents", "top_n", "return_documents", "rank_fields",
            "max_chunks_per_doc", "max_tokens_per_doc"} <= set(request)
    responses = schema["paths"]["/v1/rerank"]["post"]["responses"]
    assert {"200", "400", "401", "413", "422", "429", "500", "503"} <= set(responses)
