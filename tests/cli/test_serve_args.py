"""``m0rank serve`` loads its model from ServerSettings (flag > env > default for every option)."""

from __future__ import annotations

from typing import Any

import pytest

from m0rank.api import Reranker
from m0rank.cli.main import build_parser
from m0rank.config import EngineConfig, ImageLimits, ImageSizing


class Loaded(Exception):
    """Stops ``run`` once the model options are known (before any port opens)."""


def serve_load_kwargs(monkeypatch: pytest.MonkeyPatch, *argv: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake_from_pretrained(name: Any = None, **kwargs: Any) -> Reranker:
        seen.update(kwargs, name=name)
        raise Loaded

    monkeypatch.setattr(Reranker, "from_pretrained", staticmethod(fake_from_pretrained))
    args = build_parser().parse_args(["serve", *argv])
    with pytest.raises(Loaded):
        args.run(args)
    return seen


def test_defaults_are_the_config_dataclasses(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = serve_load_kwargs(monkeypatch)
    assert seen["name"] is None
    assert (seen["min_pixels"], seen["max_pixels"]) == (ImageSizing.min_pixels,
                                                        ImageSizing.max_pixels)
    assert (seen["max_batch_tokens"], seen["max_batch_size"]) == (
        EngineConfig.max_batch_tokens, EngineConfig.max_batch_size)
    assert (seen["device"], seen["dtype"], seen["local_files_only"]) == (None, None, False)
    assert seen["image_limits"] == ImageLimits()


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("M0RANK_MODEL", "env-model")
    monkeypatch.setenv("M0RANK_DEVICE", "cuda")
    monkeypatch.setenv("M0RANK_MAX_BATCH_TOKENS", "2048")
    monkeypatch.setenv("M0RANK_LOCAL_FILES_ONLY", "1")
    seen = serve_load_kwargs(monkeypatch, "--device", "cpu", "--max-pixels", "50000",
                             "--image-max-bytes", "1000")
    assert (seen["name"], seen["device"], seen["max_batch_tokens"]) == ("env-model", "cpu", 2048)
    assert (seen["max_pixels"], seen["local_files_only"]) == (50_000, True)
    assert seen["image_limits"] == ImageLimits(max_bytes=1000)


def test_other_subcommands_keep_their_flag_defaults() -> None:
    args = build_parser().parse_args(["rerank", "--query", "q", "--doc", "d"])
    assert (args.min_pixels, args.max_pixels) == (ImageSizing.min_pixels, ImageSizing.max_pixels)
    assert args.local_files_only is False
    evaluation = build_parser().parse_args(["eval", "--data", "x", "--model", "a",
                                            "--model", "b"])
    assert evaluation.model == ["a", "b"] and evaluation.max_pixels == ImageSizing.max_pixels
