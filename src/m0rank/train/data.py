"""Training data: one query per JSONL line with positives, negatives and optional teacher scores.

A line is ``{"query": Q, "pos": [D, ...], "neg": [D, ...]}`` with optional ``"pos_scores"`` /
``"neg_scores"`` (one number per document, a teacher's scores for distillation). ``Q`` and
``D`` are anything :meth:`m0rank.Reranker.rank` accepts: a string, ``{"image": path_or_url}``,
``{"text": ..., "image": ...}``; relative image paths are read from the file's folder. Every
error names the file, the line and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m0rank.errors import InvalidInputError, describe_value
from m0rank.preprocessing.images import is_url
from m0rank.preprocessing.inputs import to_document
from m0rank.types import Document

__all__ = ["TrainExample", "read_train_jsonl", "write_train_jsonl", "document_to_json"]


@dataclass(frozen=True)
class TrainExample:
    """One training query.

    Attributes:
        query: The query.
        pos: Relevant documents (at least one).
        neg: Non-relevant documents, hard negatives first (at least one).
        pos_scores: Teacher scores of ``pos`` (distillation), or ``None``.
        neg_scores: Teacher scores of ``neg``, or ``None``.
        source: Where it came from (``"train.jsonl:3"``), for error messages.
    """

    query: Document
    pos: tuple[Document, ...]
    neg: tuple[Document, ...]
    pos_scores: tuple[float, ...] | None = None
    neg_scores: tuple[float, ...] | None = None
    source: str = "example"

    def __post_init__(self) -> None:
        if not self.pos:
            raise InvalidInputError(f"{self.source}: field 'pos' must not be empty")
        if not self.neg:
            raise InvalidInputError(f"{self.source}: field 'neg' must not be empty")
        for name, docs in (("pos", self.pos), ("neg", self.neg)):
            scores = getattr(self, f"{name}_scores")
            if scores is not None and len(scores) != len(docs):
                raise InvalidInputError(
                    f"{self.source}: field '{name}_scores' has {len(scores)} scores for "
                    f"{len(docs)} '{name}' documents")

    @property
    def has_teacher_scores(self) -> bool:
        """Both ``pos_scores`` and ``neg_scores`` are given."""
        return self.pos_scores is not None and self.neg_scores is not None


def read_train_jsonl(path: str | Path, *, need_scores: bool = False) -> list[TrainExample]:
    """Read and validate a training JSONL file.

    Args:
        path: The file.
        need_scores: Require ``pos_scores`` and ``neg_scores`` on every line (distillation).

    Raises:
        InvalidInputError: Missing or unreadable file, malformed JSON, a missing, empty or
            ill-typed field; the message starts with ``FILE:LINE:`` and names the field.
    """
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"{file}: training data file not found")
    examples = []
    with file.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                examples.append(_parse_line(line, file, number, need_scores))
    if not examples:
        raise InvalidInputError(f"{file}: no training examples (the file is empty)")
    return examples


def write_train_jsonl(examples: Iterable[TrainExample], path: str | Path) -> Path:
    """Write examples in the format :func:`read_train_jsonl` reads (images as paths)."""
    file = Path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("w", encoding="utf-8") as out:
        for example in examples:
            row: dict[str, Any] = {"query": document_to_json(example.query),
                                   "pos": [document_to_json(d) for d in example.pos],
                                   "neg": [document_to_json(d) for d in example.neg]}
            if example.pos_scores is not None:
                row["pos_scores"] = list(example.pos_scores)
            if example.neg_scores is not None:
                row["neg_scores"] = list(example.neg_scores)
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return file


def document_to_json(document: Document) -> Any:
    """A text document as its string, otherwise ``{"text", "image"}`` with image sources."""
    if not document.images:
        return document.text
    images = [str(image) for image in document.images]
    row: dict[str, Any] = {"image": images[0] if len(images) == 1 else images}
    if document.text is not None:
        row["text"] = document.text
    return row


def _parse_line(line: str, file: Path, number: int, need_scores: bool) -> TrainExample:
    where = f"{file}:{number}"
    try:
        row = json.loads(line.strip())
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})"
                                ) from None
    if not isinstance(row, dict):
        raise InvalidInputError(f"{where}: a line must be a JSON object, got "
                                f"{describe_value(row)}")
    for name in ("query", "pos", "neg"):
        if name not in row:
            raise InvalidInputError(f"{where}: field '{name}' is missing")
    query = _document(row["query"], file, f"{where}: field 'query'")
    pos = _documents(row, "pos", file, where)
    neg = _documents(row, "neg", file, where)
    scores = {name: _scores(row, name, where, need_scores) for name in ("pos_scores",
                                                                        "neg_scores")}
    return TrainExample(query=query, pos=pos, neg=neg, source=where, **scores)


def _documents(row: dict[str, Any], name: str, file: Path, where: str) -> tuple[Document, ...]:
    values = row[name]
    if not isinstance(values, list) or not values:
        raise InvalidInputError(f"{where}: field '{name}' must be a non-empty list of "
                                f"documents, got {describe_value(values)}")
    return tuple(_document(v, file, f"{where}: field '{name}[{i}]'")
                 for i, v in enumerate(values))


def _document(value: Any, file: Path, field: str) -> Document:
    if isinstance(value, dict) and isinstance(value.get("image"), (str, list)):
        value = {**value, "image": _relative_images(value["image"], file.parent)}
    return to_document(value, field)


def _relative_images(image: str | list[Any], folder: Path) -> str | list[Any]:
    """Image paths relative to the data file's folder made absolute (URLs, base64 kept)."""
    if isinstance(image, list):
        return [_relative_images(item, folder) if isinstance(item, str) else item
                for item in image]
    if is_url(image) or Path(image).is_absolute() or len(image) > 4096:
        return image
    candidate = folder / image
    return str(candidate) if candidate.exists() else image


def _scores(row: dict[str, Any], name: str, where: str, required: bool,
            ) -> tuple[float, ...] | None:
    values = row.get(name)
    if values is None:
        if required:
            raise InvalidInputError(f"{where}: field '{name}' is missing (loss 'distill' needs "
                                    f"teacher scores for every document)")
        return None
    if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise InvalidInputError(f"{where}: field '{name}' must be a list of numbers, got "
                                f"{describe_value(values)}")
    return tuple(float(v) for v in values)
