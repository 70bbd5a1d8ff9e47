"""Training mechanics on tiny checkpoints: saved outputs, adapters, resume, logs, errors."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from m0rank import Reranker
from m0rank.errors import InvalidInputError
from m0rank.train import TrainArgs, Trainer, train

QUERY = "what is panda"
DOCS = ["the giant panda is a bear species endemic to china", "rye bread recipe with sourdough",
        "solar panel sales grew forty percent in the last quarter"]
PARITY = Path(__file__).resolve().parents[1] / "model" / "jina_m0" / "test_parity.py"


def _args(checkpoint: Path, data: Path, output: Path, **overrides: object) -> TrainArgs:
    settings = {"group_size": 4, "groups_per_step": 1, "epochs": 2, "lr": 3e-3, "lora_r": 4,
                "lora_alpha": 8, "max_length": 128, "device": "cpu", "show_progress": False,
                **overrides}
    return TrainArgs(model=str(checkpoint), data=str(data), output=str(output), **settings)


def _scores(reranker: Reranker) -> list[float]:
    return [r.score for r in reranker.score(QUERY, DOCS)]


def _straight_line_m0(checkpoint: Path):  # noqa: ANN202 - the reference class of test_parity
    spec = importlib.util.spec_from_file_location("m0_straight_line_reference", PARITY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.StraightLineM0(checkpoint)


def test_jina_m0_merged_output_loads_everywhere_and_logs(family_checkpoints: dict,
                                                         train_file: Path, beir_dir: Path,
                                                         tmp_path: Path) -> None:
    base = family_checkpoints["jina_m0"]
    out = tmp_path / "out"
    trainer = Trainer(_args(base, train_file, out, eval_data=str(beir_dir), eval_every=2,
                            eval_k=6))
    result = trainer.run()
    in_memory = _scores(trainer.reranker)
    loaded = Reranker.from_pretrained(out, device="cpu")
    assert _scores(loaded) == in_memory
    assert max(abs(a - b) for a, b in zip(in_memory, _scores(Reranker.from_pretrained(
        base, device="cpu")), strict=True)) > 1e-3, "training changed nothing"
    reference = _straight_line_m0(out)
    np.testing.assert_allclose([reference.score(QUERY, d) for d in DOCS], in_memory, atol=1e-5)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["JinaVLForRanking"]
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        names = set(weights.keys())
    assert {"score.0.weight", "score.2.bias"} <= names
    assert any(n.startswith("model.layers.") for n in names)
    assert any(n.startswith("visual.") for n in names)
    assert not any("lora" in n or "language_model" in n for n in names)
    # logs, evaluation through m0rank.eval, model card
    rows = list(csv.DictReader((out / "train_log.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["pairs_per_s"]) > 0 for r in rows)
    assert result.eval_before and result.eval_after and set(result.eval_after) >= {"ndcg@10"}
    assert [h["step"] for h in result.history] == [2]
    card = (out / "README.md").read_text()
    assert "| ndcg@10 |" in card and "InfoNCE" in card and "LoRA r=4" in card


def test_bf16_save_writes_the_released_dtype(family_checkpoints: dict, train_file: Path,
                                              tmp_path: Path) -> None:
    """``save_dtype="bfloat16"``: the released m0's dtype, every tensor and the config."""
    from safetensors import safe_open

    out = tmp_path / "bf16"
    train(_args(family_checkpoints["jina_m0"], train_file, out, save_dtype="bfloat16"))
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        dtypes = {weights.get_tensor(name).dtype for name in weights.keys()}  # noqa: SIM118
    assert dtypes == {torch.bfloat16}
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"
    fp32 = tmp_path / "fp32"
    train(_args(family_checkpoints["jina_m0"], train_file, fp32))
    np.testing.assert_allclose(_scores(Reranker.from_pretrained(out, device="cpu")),
                               _scores(Reranker.from_pretrained(fp32, device="cpu")), atol=0.02)


@pytest.mark.parametrize("family", ["jina_m0", "bert", "xlmr"])
def test_adapter_and_merged_saves_score_the_same(family: str, family_checkpoints: dict,
                                                 train_file: Path, tmp_path: Path) -> None:
    base = family_checkpoints[family]
    lr = 3e-3 if family == "jina_m0" else 3e-2
    train(_args(base, train_file, tmp_path / "merged", lr=lr))
    train(_args(base, train_file, tmp_path / "adapter", lr=lr, save="adapter"))
    adapter_files = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json"} <= adapter_files
    assert "model.safetensors" not in adapter_files
    adapter_config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == str(base.resolve())
    merged = _scores(Reranker.from_pretrained(tmp_path / "merged", device="cpu"))
    from_adapter = _scores(Reranker.from_pretrained(tmp_path / "adapter", device="cpu"))
    np.testing.assert_allclose(from_adapter, merged, atol=1e-6)
    base_scores = _scores(Reranker.from_pretrained(base, device="cpu"))
    assert max(abs(a - b) for a, b in zip(merged, base_scores, strict=True)) > 1e-4


def test_resumed_run_equals_uninterrupted(family_checkpoints: dict, train_file: Path,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          ) -> None:
    """BERT trains with dropout, so equality also needs the restored RNG state."""
    base = family_checkpoints["bert"]
    settings = {"epochs": 4, "save_every": 2, "lr": 3e-2}
    whole = train(_args(base, train_file, tmp_path / "whole", **settings))
    real_step = Trainer._step

    def interrupted(self: Trainer, step: int) -> dict:
        if step == 5:
            raise KeyboardInterrupt
        return real_step(self, step)

    monkeypatch.setattr(Trainer, "_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(_args(base, train_file, tmp_path / "resumed", **settings))
    monkeypatch.setattr(Trainer, "_step", real_step)
    checkpoints = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir())
    assert checkpoints == ["step-000002", "step-000004"]
    with pytest.raises(InvalidInputError, match="already holds a training run; pass resume"):
        train(_args(base, train_file, tmp_path / "resumed", **settings))
    resumed = train(_args(base, train_file, tmp_path / "resumed", resume=True, **settings))
    assert resumed.losses == whole.losses
    assert _scores(Reranker.from_pretrained(tmp_path / "resumed", device="cpu")) == _scores(
        Reranker.from_pretrained(tmp_path / "whole", device="cpu"))
    steps = [int(r["step"]) for r in csv.DictReader((tmp_path / "resumed" /
                                                     "train_log.csv").open())]
    assert steps == list(range(1, 9))


def test_gradient_checkpointing_gives_the_same_training(family_checkpoints: dict,
                                                        train_file: Path, tmp_path: Path) -> None:
    base = family_checkpoints["jina_m0"]
    plain = train(_args(base, train_file, tmp_path / "plain", epochs=1))
    checkpointed = train(_args(base, train_file, tmp_path / "ckpt", epochs=1,
                               gradient_checkpointing=True))
    np.testing.assert_allclose(checkpointed.losses, plain.losses, rtol=1e-5)


def test_beir_folder_with_bm25_negatives_and_full_finetuning(family_checkpoints: dict,
                                                             beir_dir: Path,
                                                             tmp_path: Path) -> None:
    trainer = Trainer(_args(family_checkpoints["bert"], beir_dir, tmp_path / "out", lora_r=0,
                            group_size=2, lr=1e-3, epochs=1))
    assert [e.source for e in trainer.examples] == [f"{beir_dir.name} query q1",
                                                   f"{beir_dir.name} query q2"]
    trainable, total = trainer.parameter_counts
    assert trainable == total
    trainer.run()
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_vision_tower_stays_frozen_unless_asked(family_checkpoints: dict, train_file: Path,
                                                tmp_path: Path) -> None:
    trainer = Trainer(_args(family_checkpoints["jina_m0"], train_file, tmp_path / "a"))
    names = [n for n, p in trainer.module.named_parameters() if p.requires_grad]
    assert names and not any("visual" in n for n in names)
    assert any("score" in n for n in names) and any("lora_A" in n for n in names)
    with_vision = Trainer(_args(family_checkpoints["jina_m0"], train_file, tmp_path / "b",
                                train_vision=True))
    assert any("visual" in n and "lora_A" in n for n, p in
               with_vision.module.named_parameters() if p.requires_grad)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"bf16": True}, "bf16 needs a CUDA device; on cpu training runs in fp32"),
    ({"negatives": "bm25"}, "negatives='bm25' mines from a BEIR folder, but"),
    ({"save": "adapter", "lora_r": 0}, "save='adapter' needs LoRA (lora_r > 0)"),
    ({"loss": "nope"}, "loss must be one of listwise, pairwise, bce, distill, got 'nope'"),
    ({"group_size": 1}, "group_size must be a number >= 2, got 1"),
    ({"save_dtype": "int8"}, "save_dtype must be one of float32, bfloat16, float16, got 'int8'"),
])
def test_bad_settings(family_checkpoints: dict, train_file: Path, tmp_path: Path,
                      overrides: dict, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        train(_args(family_checkpoints["bert"], train_file, tmp_path / "out", **overrides))


def test_families_that_cannot_train_say_so(train_file: Path, tmp_path: Path) -> None:
    from m0rank.errors import UnsupportedOperationError

    with pytest.raises(UnsupportedOperationError, match="DummyReranker cannot be fine-tuned"):
        train(_args(Path("m0rank-dummy"), train_file, tmp_path / "out"))


def test_bad_data_file_error_reaches_the_caller(family_checkpoints: dict,
                                                tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"query": "q", "pos": ["p"], "neg": ["n"]}\n{"query": "q", "pos": ["p"]}\n')
    with pytest.raises(InvalidInputError, match=re.escape(f"{data}:2: field 'neg' is missing")):
        train(_args(family_checkpoints["bert"], data, tmp_path / "out"))
    with pytest.raises(InvalidInputError, match=re.escape(
            f"{data}:1: field 'pos_scores' is missing")):
        train(_args(family_checkpoints["bert"], data, tmp_path / "out2", loss="distill"))


def test_images_reach_the_model_through_preprocess(family_checkpoints: dict,
                                                   tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (84, 56), "white").save(tmp_path / "a.png")
    Image.new("RGB", (56, 84), "black").save(tmp_path / "b.png")
    row = {"query": "white page", "pos": [{"image": "a.png"}],
           "neg": [{"image": "b.png"}, {"text": "text", "image": "b.png"}]}
    data = tmp_path / "pages.jsonl"
    data.write_text(json.dumps(row) + "\n")
    result = train(_args(family_checkpoints["jina_m0"], data, tmp_path / "out", group_size=3,
                         epochs=1))
    assert len(result.losses) == 1 and np.isfinite(result.losses[0])
    assert torch.isfinite(torch.tensor(result.losses)).all()
