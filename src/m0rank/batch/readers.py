"""Input readers: jsonl or parquet rows, or a BEIR folder plus a TREC run file.

Every row becomes a :class:`PairRow`. A missing column is an :class:`InvalidInputError` naming
the file, the row and the field; a row whose *content* is unusable (empty text, unreadable image)
is only found when it is scored, and goes to the error file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m0rank.errors import InvalidInputError

__all__ = ["PairRow", "read_pairs", "REQUIRED_FIELDS"]

REQUIRED_FIELDS = ("query_id", "query", "doc_id", "document")


@dataclass(frozen=True, kw_only=True)
class PairRow:
    """One pair to score; ``row`` is its position in the input (what shards are cut from)."""

    row: int
    query_id: str
    query: Any
    doc_id: str
    document: Any


def read_pairs(path: str | Path, *, run: str | Path | None = None) -> list[PairRow]:
    """All pairs of ``path``: a ``.jsonl``/``.parquet`` file, or a BEIR folder with ``run``.

    Raises:
        InvalidInputError: Unknown format, malformed line, or a missing field.
    """
    source = Path(path)
    if source.is_dir():
        if run is None:
            raise InvalidInputError(f"--input {source} is a folder: pass --run FILE (TREC run)")
        return _beir_pairs(source, Path(run))
    if source.suffix == ".jsonl":
        return [_pair(record, source, i) for i, record in enumerate(_json_lines(source))]
    if source.suffix == ".parquet":
        import pyarrow.parquet as pq

        records = pq.read_table(source).to_pylist()
        return [_pair(record, source, i) for i, record in enumerate(records)]
    raise InvalidInputError(f"--input must be .jsonl, .parquet or a BEIR folder, got {source}")


def _json_lines(path: Path) -> list[dict[str, Any]]:
    records = []
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path}: line {line_no} is not JSON: {exc.msg}") from None
            if not isinstance(record, dict):
                raise InvalidInputError(f"{path}: line {line_no} must be a JSON object")
            records.append(record)
    return records


def _pair(record: dict[str, Any], path: Path, index: int) -> PairRow:
    for field in REQUIRED_FIELDS:
        if field not in record or record[field] is None:
            if field == "document" and record.get("image") is not None:
                continue
            raise InvalidInputError(f"{path}: row {index}: missing field {field!r}")
    return PairRow(row=index, query_id=str(record["query_id"]), query=record["query"],
                   doc_id=str(record["doc_id"]), document=_document(record))


def _document(record: dict[str, Any]) -> Any:
    """``document`` (text or a ``{"text","image"}`` dict) with an optional ``image`` column."""
    document = record.get("document")
    image = record.get("image")
    if image is None:
        return document
    if isinstance(document, dict):
        return {**document, "image": image}
    return {"text": document, "image": image} if document is not None else {"image": image}


def _beir_pairs(root: Path, run_path: Path) -> list[PairRow]:
    from m0rank.eval.first_stage import read_trec_run

    corpus = _beir_items(root / "corpus.jsonl", root)
    queries = _beir_items(root / "queries.jsonl", root)
    run = read_trec_run(run_path)
    pairs: list[PairRow] = []
    for query_id, candidates in run.items():
        if query_id not in queries:
            raise InvalidInputError(f"{run_path}: query {query_id!r} is not in queries.jsonl")
        ranked = sorted(candidates.items(), key=lambda kv: (-kv[1], kv[0]))
        for doc_id, _ in ranked:
            if doc_id not in corpus:
                raise InvalidInputError(f"{run_path}: document {doc_id!r} is not in corpus.jsonl")
            pairs.append(PairRow(row=len(pairs), query_id=query_id, query=queries[query_id],
                                 doc_id=doc_id, document=corpus[doc_id]))
    return pairs


def _beir_items(path: Path, root: Path) -> dict[str, Any]:
    if not path.exists():
        raise InvalidInputError(f"{path} not found (a BEIR folder has corpus.jsonl and "
                                f"queries.jsonl)")
    items: dict[str, Any] = {}
    for index, record in enumerate(_json_lines(path)):
        if "_id" not in record:
            raise InvalidInputError(f"{path}: row {index}: missing field '_id'")
        text = " ".join(filter(None, (record.get("title"), record.get("text")))) or None
        image = record.get("image")
        if image is not None and not str(image).startswith(("http://", "https://", "data:")):
            image = str(root / image)
        items[str(record["_id"])] = text if image is None else \
            {k: v for k, v in (("text", text), ("image", image)) if v is not None}
    return items
