"""``m0rank`` command line end to end (in-process ``main`` and one real subprocess)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from m0rank._version import __version__
from m0rank.cli.main import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_output_ranks_text_and_image_documents(
        capsys, m0_checkpoint: Path, tmp_path: Path, reranker) -> None:
    page = tmp_path / "page.png"
    Image.new("RGB", (200, 120), (30, 60, 90)).save(page)
    code, out, _ = _run(capsys, "rerank", "--model", str(m0_checkpoint), "--query", "slm markdown",
                        "--doc", "first text", "--doc-image", str(page), "--doc", "third", "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["model"] == m0_checkpoint.name
    expected = reranker.rank("slm markdown", ["first text", {"image": str(page)}, "third"])
    assert [r["index"] for r in payload["results"]] == [r.index for r in expected]
    assert [r["relevance_score"] for r in payload["results"]] == pytest.approx(
        [r.score for r in expected], abs=1e-6)
    assert payload["results"][[r["index"] for r in payload["results"]].index(1)]["document"] == {
        "image": str(page)}


def test_table_output_top_n_and_docs_file(capsys, m0_checkpoint: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text('"from file one"\n\n{"text": "from file two"}\n')
    code, out, _ = _run(capsys, "rerank", "--model", str(m0_checkpoint), "--query", "q",
                        "--doc", "inline", "--docs-file", str(docs), "--top-n", "2")
    assert code == 0
    assert "rank" in out and "score" in out
    assert sum(1 for line in out.splitlines() if re.match(r"^│\s+\d\s+│", line)) == 2


def test_image_query(capsys, m0_checkpoint: Path, tmp_path: Path) -> None:
    page = tmp_path / "q.png"
    Image.new("RGB", (64, 64), (200, 0, 0)).save(page)
    code, out, _ = _run(capsys, "rerank", "--model", str(m0_checkpoint), "--query-image",
                        str(page), "--doc", "red", "--doc", "blue", "--json")
    assert code == 0 and len(json.loads(out)["results"]) == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--query", "q"], "m0rank: error: no documents: give --doc, --doc-image, --doc-pdf or --docs-file"),
    (["--query", "", "--doc", "d"], "m0rank: error: query must not be empty or only whitespace"),
    (["--query", "q", "--doc-image", "/no/such.png"],
     "m0rank: error: documents[0].image: cannot read file '/no/such.png' (No such file or directory)"),
    (["--query", "q", "--doc", "d", "--top-n", "0"],
     "m0rank: error: top_n must be a positive integer or None, got 0"),
])
def test_input_errors_exit_2_with_a_message(capsys, m0_checkpoint: Path, args, message) -> None:
    code, _, err = _run(capsys, "rerank", "--model", str(m0_checkpoint), *args)
    assert code == 2
    assert err.strip() == message


def test_bad_docs_file_names_file_and_line(capsys, m0_checkpoint: Path, tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text('"ok"\n{broken\n')
    code, _, err = _run(capsys, "rerank", "--model", str(m0_checkpoint), "--query", "q",
                        "--docs-file", str(docs))
    assert code == 2
    assert err.strip().startswith(f"m0rank: error: {docs}:2: not valid JSON")


def test_missing_model_exits_1(capsys, tmp_path: Path) -> None:
    code, _, err = _run(capsys, "rerank", "--model", str(tmp_path / "none"), "--query", "q",
                        "--doc", "d")
    assert code == 1
    assert "does not exist" in err


def test_console_script_version_and_lazy_help() -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    version = subprocess.run([sys.executable, "-m", "m0rank.cli.main", "--version"],
                             capture_output=True, text=True, env=env, check=True)
    assert version.stdout.strip() == f"m0rank {__version__}"
    probe = ("import sys; from m0rank.cli.main import build_parser; build_parser(); "
             "print('torch' in sys.modules)")
    lazy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                          check=True)
    assert lazy.stdout.strip() == "False", "building the CLI parser must not import torch"
