"""``m0rank train`` end to end on a tiny BERT cross-encoder, and its input errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from m0rank import Reranker
from m0rank.cli.main import EXIT_INPUT_ERROR, main


def test_train_then_load(family_checkpoints: dict, train_file: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["train", "--model", str(family_checkpoints["bert"]), "--data", str(train_file),
                 "--output", str(out), "--loss", "pairwise", "--group-size", "3",
                 "--epochs", "1", "--lr", "1e-3", "--lora-r", "4", "--lora-alpha", "8",
                 "--max-length", "64", "--device", "cpu", "--no-progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 1 and summary["output"] == str(out)
    assert len(Reranker.from_pretrained(out, device="cpu").score("q", ["a", "b"])) == 2


def test_input_errors_exit_2(family_checkpoints: dict, train_file: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--model", str(family_checkpoints["bert"]), "--data", str(train_file),
                 "--output", str(tmp_path / "out"), "--lora-r", "0", "--save", "adapter"])
    assert code == EXIT_INPUT_ERROR
    assert "save='adapter' needs LoRA (lora_r > 0)" in capsys.readouterr().err


def test_help_does_not_import_torch() -> None:
    code = ("import sys; from m0rank.cli.main import main\n"
            "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    for flag in ("--eval-data", "--negatives", "--save", "--max-pixels", "--bf16",
                 "--gradient-checkpointing", "--resume", "--lora-alpha", "--group-size"):
        assert flag in done.stdout
