"""Evaluation collections read from local folders (no hub access; see docs/eval.md for fetching).

Two layouts:

- **BEIR** (BEIR, MIRACL, MLDR, MKQA, CoIR, and with images ViDoRe / M-BEIR)::

      corpus.jsonl      {"_id", "title"?, "text"?, "image"?}     one document per line
      queries.jsonl     {"_id", "text"?, "image"?}               one query per line
      qrels/{split}.tsv query-id <TAB> corpus-id <TAB> score     optional header line

  ``image`` is a file path relative to the folder (or absolute). A row may carry text, an
  image, or both. Document text is ``title + " " + text`` as BEIR's reranking code builds it.

- **Winoground**::

      examples.jsonl    {"id", "caption_0", "caption_1", "image_0", "image_1"}

Every malformed file raises :class:`InvalidInputError` naming the file and the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m0rank import InvalidInputError

__all__ = ["Item", "Collection", "WinogroundExample", "load_beir", "load_winoground",
           "is_winoground"]

WINOGROUND_FILE = "examples.jsonl"


@dataclass(frozen=True)
class Item:
    """A query or a document: text, an image path, or both."""

    text: str | None = None
    image: str | None = None

    @property
    def is_empty(self) -> bool:
        """No image and no (non-blank) text: nothing a model could judge."""
        return self.image is None and not (self.text or "").strip()

    def to_input(self) -> dict[str, Any]:
        """The ``{"text"}`` / ``{"image"}`` dict that ``Reranker.score`` accepts."""
        out: dict[str, Any] = {}
        if self.text is not None:
            out["text"] = self.text
        if self.image is not None:
            out["image"] = self.image
        return out


@dataclass(frozen=True)
class Collection:
    """A BEIR-layout collection: corpus, queries and graded judgments."""

    name: str
    corpus: dict[str, Item]
    queries: dict[str, Item]
    qrels: dict[str, dict[str, int]]


@dataclass(frozen=True)
class WinogroundExample:
    """Two captions and two images; caption ``i`` belongs to image ``i``."""

    id: str
    captions: tuple[str, str]
    images: tuple[str, str]


def load_beir(folder: str | Path, split: str = "test", name: str | None = None) -> Collection:
    """Read a BEIR-layout folder.

    Only judged queries are kept (the others cannot be scored).

    Raises:
        InvalidInputError: A file is missing or a line is malformed (file and line named).
    """
    root = Path(folder)
    corpus = {doc_id: _beir_doc(row, root, where)
              for doc_id, row, where in _rows(root / "corpus.jsonl")}
    queries = {qid: _beir_query(row, root, where)
               for qid, row, where in _rows(root / "queries.jsonl")}
    qrels = _read_qrels(root / "qrels" / f"{split}.tsv", corpus, queries)
    return Collection(name=name or root.name, corpus=corpus,
                      queries={q: queries[q] for q in qrels}, qrels=qrels)


def load_winoground(folder: str | Path) -> list[WinogroundExample]:
    """Read ``examples.jsonl`` of a Winoground-layout folder (images resolved to paths).

    Raises:
        InvalidInputError: Missing file, field or image (file and line named).
    """
    root = Path(folder)
    path = root / WINOGROUND_FILE
    examples = []
    for number, row in _json_lines(path):
        where = f"{path}:{number}"
        captions = tuple(_string(row, f"caption_{i}", where) for i in (0, 1))
        images = tuple(_image_path(_string(row, f"image_{i}", where), root, where)
                       for i in (0, 1))
        examples.append(WinogroundExample(id=str(row.get("id", number)),
                                          captions=captions, images=images))  # type: ignore[arg-type]
    if not examples:
        raise InvalidInputError(f"{path}: no examples")
    return examples


def is_winoground(folder: str | Path) -> bool:
    """True for a Winoground-layout folder (it holds ``examples.jsonl``)."""
    return (Path(folder) / WINOGROUND_FILE).is_file()


def _rows(path: Path) -> Iterator[tuple[str, dict[str, Any], str]]:
    seen: set[str] = set()
    for number, row in _json_lines(path):
        where = f"{path}:{number}"
        row_id = row.get("_id")
        if not isinstance(row_id, (str, int)) or str(row_id) == "":
            raise InvalidInputError(f"{where}: missing '_id' (got {row_id!r})")
        if str(row_id) in seen:
            raise InvalidInputError(f"{where}: duplicate _id {str(row_id)!r}")
        seen.add(str(row_id))
        yield str(row_id), row, where


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read ({exc.strerror})") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInputError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise InvalidInputError(
                    f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
            yield number, row


def _beir_doc(row: dict[str, Any], root: Path, where: str) -> Item:
    title = _optional_string(row, "title", where) or ""
    text = _optional_string(row, "text", where)
    joined = (title + " " + (text or "")).strip() if title else text
    return _item(joined, row, root, where)


def _beir_query(row: dict[str, Any], root: Path, where: str) -> Item:
    return _item(_optional_string(row, "text", where), row, root, where)


def _item(text: str | None, row: dict[str, Any], root: Path, where: str) -> Item:
    """A row needs a "text" or an "image" key; an empty text is kept (real corpora, e.g.
    Cranfield, have empty documents) and scores 0 without reaching the model."""
    image = _optional_string(row, "image", where)
    if text is None and image is None:
        raise InvalidInputError(f"{where}: row has neither 'text' nor 'image'")
    return Item(text=text, image=_image_path(image, root, where) if image else None)


def _image_path(value: str, root: Path, where: str) -> str:
    path = Path(value) if Path(value).is_absolute() else root / value
    if not path.is_file():
        raise InvalidInputError(f"{where}: image file {value!r} not found under {root}")
    return str(path)


def _optional_string(row: dict[str, Any], key: str, where: str) -> str | None:
    value = row.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(f"{where}: '{key}' must be a string, got {type(value).__name__}")
    return value


def _string(row: dict[str, Any], key: str, where: str) -> str:
    value = _optional_string(row, key, where)
    if not value:
        raise InvalidInputError(f"{where}: missing '{key}'")
    return value


def _read_qrels(path: Path, corpus: dict[str, Item],
                queries: dict[str, Item]) -> dict[str, dict[str, int]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read ({exc.strerror})") from None
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate(lines, start=1):
        fields = line.strip().split("\t") if "\t" in line else line.split()
        if not fields or (number == 1 and fields[0] == "query-id"):
            continue
        qid, doc_id, grade = _qrels_fields(fields, f"{path}:{number}", corpus, queries)
        qrels.setdefault(qid, {})[doc_id] = grade
    if not qrels:
        raise InvalidInputError(f"{path}: no judgments")
    return qrels


def _qrels_fields(fields: list[str], where: str, corpus: dict[str, Item],
                  queries: dict[str, Item]) -> tuple[str, str, int]:
    if len(fields) == 4:  # TREC qrels: qid iteration docid grade
        fields = [fields[0], fields[2], fields[3]]
    if len(fields) != 3:
        raise InvalidInputError(f"{where}: expected 'query-id corpus-id score', got {fields!r}")
    qid, doc_id, grade = fields
    try:
        value = int(grade)
    except ValueError:
        raise InvalidInputError(f"{where}: score must be an integer, got {grade!r}") from None
    if qid not in queries:
        raise InvalidInputError(f"{where}: query-id {qid!r} is not in queries.jsonl")
    if doc_id not in corpus:
        raise InvalidInputError(f"{where}: corpus-id {doc_id!r} is not in corpus.jsonl")
    return qid, doc_id, value
