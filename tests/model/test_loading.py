"""Checkpoint resolution and loading: namings, shards, HF cache, round trip, failures."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from m0rank import Reranker
from m0rank.errors import (
    InvalidInputError,
    ModelLoadError,
    ModelNotFoundError,
    UnsupportedArchitectureError,
)
from m0rank.testing.checkpoints import write_m0_checkpoint

QUERY = "slm markdown"
DOCS = ["ReaderLM-v2 converts HTML into Markdown.", "Gold rush merchants", "数据提取"]


def _scores(reranker: Reranker) -> list[float]:
    return [s.score for s in reranker.score(QUERY, DOCS)]


def test_both_weight_namings_and_shards_give_identical_scores(
        tmp_path: Path, m0_checkpoint: Path, reranker: Reranker) -> None:
    nested = write_m0_checkpoint(tmp_path / "nested", seed=0, naming="nested")
    sharded = write_m0_checkpoint(tmp_path / "sharded", seed=0, shards=3)
    assert (sharded / "model.safetensors.index.json").exists()
    assert not (sharded / "model.safetensors").exists()
    expected = _scores(reranker)
    for path in (nested, sharded):
        np.testing.assert_array_equal(_scores(Reranker.from_pretrained(path)), expected)


def test_bf16_storage_loads_as_fp32_on_cpu(tmp_path: Path, reranker: Reranker) -> None:
    bf16 = write_m0_checkpoint(tmp_path / "bf16", seed=0, dtype="bfloat16")
    loaded = Reranker.from_pretrained(bf16)
    import torch

    assert {p.dtype for p in loaded.model.module.parameters()} == {torch.float32}
    # Weights rounded to bf16 move scores a little, but not the ranking of clear cases.
    np.testing.assert_allclose(_scores(loaded), _scores(reranker), atol=0.05)


def test_lm_head_is_dropped_without_warnings(m0_checkpoint: Path, caplog) -> None:
    caplog.set_level("WARNING")
    Reranker.from_pretrained(m0_checkpoint)
    assert not [r for r in caplog.records if "lm_head" in r.getMessage()]


def test_save_and_reload_round_trip(tmp_path: Path, reranker: Reranker) -> None:
    reranker.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["architectures"] == ["JinaVLForRanking"]
    np.testing.assert_array_equal(_scores(Reranker.from_pretrained(tmp_path / "saved")),
                                  _scores(reranker))


def test_loads_from_the_hugging_face_cache_offline(
        tmp_path: Path, m0_checkpoint: Path, no_network: None) -> None:
    snapshot = tmp_path / "hub" / "models--jinaai--jina-reranker-m0" / "snapshots" / ("a" * 40)
    shutil.copytree(m0_checkpoint, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("a" * 40)
    loaded = Reranker.from_pretrained("jinaai/jina-reranker-m0", cache_dir=tmp_path / "hub")
    assert loaded.model_name == "jina-reranker-m0"
    assert len(_scores(loaded)) == 3


def test_uncached_hub_id_offline_says_how_to_provide_weights(tmp_path: Path, no_network: None) -> None:
    with pytest.raises(ModelNotFoundError, match=re.escape(
            "model 'jinaai/jina-reranker-m0' was not found: the hub could not be reached or "
            "refused it")) as info:
        Reranker.from_pretrained("jinaai/jina-reranker-m0", cache_dir=tmp_path)
    assert "huggingface-cli download jinaai/jina-reranker-m0 --local-dir" in str(info.value)
    with pytest.raises(ModelNotFoundError, match="it is not in the cache"):
        Reranker.from_pretrained("jinaai/jina-reranker-m0", cache_dir=tmp_path,
                                 local_files_only=True)


def test_missing_local_path() -> None:
    with pytest.raises(ModelNotFoundError, match=re.escape("model path './no/such/dir' does not exist")):
        Reranker.from_pretrained("./no/such/dir")


def test_unknown_architecture_is_refused_by_config_not_name(tmp_path: Path, m0_checkpoint: Path) -> None:
    shutil.copytree(m0_checkpoint, tmp_path / "jina-reranker-m0")
    config_path = tmp_path / "jina-reranker-m0" / "config.json"
    config = json.loads(config_path.read_text())
    config["architectures"] = ["BertForMaskedLM"]
    config_path.write_text(json.dumps(config))
    with pytest.raises(UnsupportedArchitectureError, match=re.escape(
            "config.json architectures ['BertForMaskedLM'] are not supported")):
        Reranker.from_pretrained(tmp_path / "jina-reranker-m0")


def test_missing_or_mismatched_tensors_fail_loudly(tmp_path: Path, m0_checkpoint: Path) -> None:
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    shutil.copytree(m0_checkpoint, broken)
    state = load_file(str(broken / "model.safetensors"))
    del state["score.2.bias"]
    save_file(state, str(broken / "model.safetensors"))
    with pytest.raises(ModelLoadError, match=re.escape(
            "checkpoint does not match the jina-reranker-m0 layout; missing 1 tensors "
            "(e.g. ['score.2.bias'])")):
        Reranker.from_pretrained(broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json is not valid JSON"):
        Reranker.from_pretrained(broken)
    (broken / "config.json").write_text(json.dumps(config))
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="has neither model.safetensors nor model.safetensors.index.json"):
        Reranker.from_pretrained(broken)


def test_device_and_dtype_validation(m0_checkpoint: Path) -> None:
    with pytest.raises(InvalidInputError, match=re.escape("dtype must be one of")):
        Reranker.from_pretrained(m0_checkpoint, dtype="int3")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match=re.escape(
                "device 'cuda' was requested but CUDA is not available")):
            Reranker.from_pretrained(m0_checkpoint, device="cuda")


@pytest.mark.gpu
def test_cuda_bf16_scores_close_to_cpu_fp32(m0_checkpoint: Path, reranker: Reranker) -> None:
    gpu = Reranker.from_pretrained(m0_checkpoint)  # auto: cuda + bf16
    np.testing.assert_allclose(_scores(gpu), _scores(reranker), atol=2e-2)


def test_empty_init_from_many_threads_leaves_torch_init_and_dtype_intact() -> None:
    """transformers' no_init_weights patches torch process-wide; overlapping uses from
    threads once left the no-op in place and every later model held NaN weights."""
    import threading

    import torch

    from m0rank.model.loading import empty_init

    genuine = torch.nn.init.normal_
    barrier = threading.Barrier(4)

    def build() -> None:
        barrier.wait()
        for _ in range(20):
            with empty_init(torch.device("cpu"), torch.bfloat16):
                torch.nn.Linear(4, 4)

    threads = [threading.Thread(target=build) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert torch.nn.init.normal_ is genuine
    assert torch.get_default_dtype() == torch.float32
    weights = torch.nn.Linear(64, 64).weight
    assert torch.isfinite(weights).all() and weights.std() > 0
