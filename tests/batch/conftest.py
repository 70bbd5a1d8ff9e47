"""Pairs files for the batch tests: three queries, mixed text and image documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pairs.jsonl`` with 9 good pairs over 3 queries and one image document."""
    root = tmp_path_factory.mktemp("pairs")
    Image.new("RGB", (64, 48), (200, 30, 30)).save(root / "red.png")
    rows = []
    for q in range(3):
        for d in range(3):
            document = {"text": f"page {d}", "image": str(root / "red.png")} if d == 2 \
                else f"document {d} about topic {q}"
            rows.append({"query_id": f"q{q}", "query": f"what is topic {q}?",
                         "doc_id": f"d{d}", "document": document})
    path = root / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
