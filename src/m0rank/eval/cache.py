"""A small SQLite file of (query, document) scores, so long runs resume and reruns are free.

A score is keyed by the model (its name plus a fingerprint of its files), the dataset, the
scoring options, the query id and the document id. Rows are committed after every query, so
an interrupted run keeps what it scored; a rerun with the same key reads instead of scoring.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["ScoreCache", "model_fingerprint"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    model TEXT NOT NULL, dataset TEXT NOT NULL, options TEXT NOT NULL,
    query_id TEXT NOT NULL, doc_id TEXT NOT NULL, score REAL NOT NULL,
    PRIMARY KEY (model, dataset, options, query_id, doc_id)
)
"""
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".json", ".pt")


class ScoreCache:
    """Scores of one (model, dataset, options) key in a SQLite file.

    Args:
        path: The SQLite file (created with its folder when missing); ``":memory:"`` works.
        model: Model key, from :func:`model_fingerprint`.
        dataset: Dataset name.
        options: Scoring options that change scores (``max_length`` ...), stored as JSON.
    """

    def __init__(self, path: str | Path, *, model: str, dataset: str,
                 options: dict[str, Any] | None = None) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path))
        self._db.execute(_SCHEMA)
        self._key = (model, dataset, json.dumps(options or {}, sort_keys=True))

    def get(self, query_id: str, doc_ids: Iterable[str]) -> dict[str, float]:
        """Cached scores of ``doc_ids`` for ``query_id`` (missing ids are absent)."""
        wanted = set(doc_ids)
        rows = self._db.execute(
            "SELECT doc_id, score FROM scores WHERE model=? AND dataset=? AND options=? "
            "AND query_id=?", (*self._key, query_id))
        return {doc: score for doc, score in rows if doc in wanted}

    def put(self, query_id: str, scores: dict[str, float]) -> None:
        """Store and commit the scores of one query."""
        self._db.executemany(
            "INSERT OR REPLACE INTO scores VALUES (?, ?, ?, ?, ?, ?)",
            [(*self._key, query_id, doc, float(s)) for doc, s in scores.items()])
        self._db.commit()

    def count(self) -> int:
        """Number of scores stored under this key."""
        row = self._db.execute(
            "SELECT COUNT(*) FROM scores WHERE model=? AND dataset=? AND options=?", self._key)
        return int(row.fetchone()[0])

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    def __enter__(self) -> ScoreCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def model_fingerprint(name_or_path: str | None) -> str:
    """``name@digest`` where the digest covers the model folder's config and weight files.

    For a local or built-in folder, the digest hashes every config/weight file's name, size
    and first MiB, so retrained weights under the same path get a fresh cache. A hub id is
    keyed by the id alone (its revision is fixed by the Hugging Face cache).
    """
    # Imported here: m0rank.api costs ~0.5 s, and `m0rank --help` imports this module.
    from m0rank.api import BUILTIN_MODELS

    name = "m0rank-offline" if name_or_path is None else str(name_or_path)
    folder = BUILTIN_MODELS.get(name) or Path(name).expanduser()
    if not folder.is_dir():
        return name
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in _WEIGHT_SUFFIXES:
            digest.update(f"{path.relative_to(folder)}:{path.stat().st_size}".encode())
            with path.open("rb") as handle:
                digest.update(handle.read(1 << 20))
    return f"{name}@{digest.hexdigest()[:16]}"
