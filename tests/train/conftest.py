"""Tiny checkpoints of every trainable family and small data files for the training tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from m0rank.testing.bert_checkpoints import write_bert_cross_encoder
from m0rank.testing.cross_encoder_checkpoints import write_bge_checkpoint

# One fixed group per query: 1 positive and 3 negatives (group_size 4 draws all of them).
ROWS = [
    {"query": "what is panda", "pos": ["the giant panda is a bear species endemic to china"],
     "neg": ["solar panel sales grew forty percent in the last quarter",
             "rye bread recipe with sourdough", "le musée du Louvre est fermé le mardi"]},
    {"query": "rye bread recipe", "pos": ["rye bread recipe with sourdough"],
     "neg": ["the giant panda is a bear species endemic to china",
             "el programa de lavado en frío dura treinta minutos",
             "solar panel sales grew forty percent in the last quarter"]},
]
TEACHER = {"pos_scores": [3.0], "neg_scores": [-1.0, 0.5, -2.0]}
FAMILIES = ("jina_m0", "bert", "xlmr")


@pytest.fixture(scope="session")
def family_checkpoints(tmp_path_factory: pytest.TempPathFactory, m0_checkpoint: Path,
                       ) -> dict[str, Path]:
    """Folder of a tiny checkpoint per trainable family, in each released layout."""
    return {
        "jina_m0": m0_checkpoint,
        "bert": write_bert_cross_encoder(tmp_path_factory.mktemp("bert"), seed=0),
        "xlmr": write_bge_checkpoint(tmp_path_factory.mktemp("bge"), seed=0),
    }


def write_rows(path: Path, rows: list[dict], teacher: bool = False) -> Path:
    """Write ``rows`` as JSONL (with the same teacher scores on every row when asked)."""
    lines = [json.dumps({**row, **(TEACHER if teacher else {})}) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture()
def train_file(tmp_path: Path) -> Path:
    return write_rows(tmp_path / "train.jsonl", ROWS, teacher=True)


@pytest.fixture(scope="session")
def beir_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A six-document BEIR folder with two judged queries (evaluation and mining)."""
    root = tmp_path_factory.mktemp("beir")
    docs = {"d1": "the giant panda is a bear species endemic to china",
            "d2": "solar panel sales grew forty percent in the last quarter",
            "d3": "rye bread recipe with sourdough",
            "d4": "panda bears eat bamboo in china",
            "d5": "bread and panel prices fell in a bear market last quarter",
            "d6": "le musée du Louvre est fermé le mardi"}
    queries = {"q1": "what is a panda bear", "q2": "sourdough rye bread recipe"}
    (root / "corpus.jsonl").write_text("\n".join(
        json.dumps({"_id": k, "title": "", "text": v}) for k, v in docs.items()) + "\n")
    (root / "queries.jsonl").write_text("\n".join(
        json.dumps({"_id": k, "text": v}) for k, v in queries.items()) + "\n")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td4\t1\nq2\td3\t1\n")
    return root
