"""Training files: exact errors naming file, line and field; round trip; image paths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from m0rank.errors import InvalidInputError
from m0rank.train import read_train_jsonl, write_train_jsonl

GOOD = {"query": "q", "pos": ["p"], "neg": ["n1", "n2"]}


def _file(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("line", "message"), [
    ('{"query": "q", "pos": ["p"]', "not valid JSON (Expecting ',' delimiter at column 28)"),
    ('["q", ["p"]]', "a line must be a JSON object, got ['q', ['p']] (list)"),
    ('{"query": "q", "neg": ["n"]}', "field 'pos' is missing"),
    ('{"query": "q", "pos": [], "neg": ["n"]}',
     "field 'pos' must be a non-empty list of documents, got [] (list)"),
    ('{"query": "q", "pos": ["p"], "neg": "n"}',
     "field 'neg' must be a non-empty list of documents, got 'n' (str)"),
    ('{"query": 3, "pos": ["p"], "neg": ["n"]}',
     "field 'query' must be a string, a PIL image, a dict with 'text'/'image' keys or a "
     "Document, got 3 (int)"),
    ('{"query": "q", "pos": ["p"], "neg": ["n", {"txt": "x"}]}',
     "field 'neg[1]' must have a 'text' or an 'image' key, got keys ['txt']"),
    ('{"query": "q", "pos": ["p"], "neg": ["n"], "neg_scores": [1, "x"]}',
     "field 'neg_scores' must be a list of numbers, got [1, 'x'] (list)"),
    ('{"query": "q", "pos": ["p"], "neg": ["n"], "pos_scores": [1, 2]}',
     "field 'pos_scores' has 2 scores for 1 'pos' documents"),
])
def test_bad_lines_name_file_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = _file(tmp_path, json.dumps(GOOD), "", line)
    with pytest.raises(InvalidInputError) as info:
        read_train_jsonl(path)
    assert str(info.value) == f"{path}:3: {message}"


def test_distillation_needs_teacher_scores(tmp_path: Path) -> None:
    path = _file(tmp_path, json.dumps(GOOD))
    with pytest.raises(InvalidInputError, match=re.escape(
            f"{path}:1: field 'pos_scores' is missing (loss 'distill' needs teacher scores "
            f"for every document)")):
        read_train_jsonl(path, need_scores=True)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(
            f"{tmp_path / 'nope.jsonl'}: training data file not found")):
        read_train_jsonl(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(InvalidInputError, match="no training examples"):
        read_train_jsonl(tmp_path / "empty.jsonl")


def test_round_trip_and_relative_image_paths(tmp_path: Path) -> None:
    Image.new("RGB", (40, 30), "white").save(tmp_path / "page.png")
    row = {"query": {"text": "q", "image": "page.png"}, "pos": [{"image": "page.png"}],
           "neg": ["n"], "pos_scores": [1.5], "neg_scores": [0]}
    examples = read_train_jsonl(_file(tmp_path, json.dumps(row)))
    assert examples[0].pos[0].images == (str(tmp_path / "page.png"),)
    assert examples[0].source == f"{tmp_path / 'train.jsonl'}:1"
    again = read_train_jsonl(write_train_jsonl(examples, tmp_path / "copy" / "out.jsonl"))
    assert again[0].query == examples[0].query and again[0].pos == examples[0].pos
    assert again[0].neg_scores == (0.0,) and again[0].has_teacher_scores
