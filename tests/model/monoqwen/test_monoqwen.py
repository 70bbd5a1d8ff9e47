"""MonoQwen2-VL family on a tiny base + LoRA adapter in the released layout, against a
straight-line computation (LoRA deltas added by hand, full logits, chat prompt inline)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from m0rank import InvalidInputError, Reranker
from m0rank.testing.monoqwen_checkpoints import write_monoqwen_adapter, write_qwen2vl_base
from m0rank.testing.pages import render_page

MAX_PIXELS = 28 * 28 * 16
QUERY = "How much did solar panel sales grow?"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("monoqwen")
    base = write_qwen2vl_base(root / "Qwen2-VL-2B-Instruct", seed=3)
    return base, write_monoqwen_adapter(root / "MonoQwen2-VL-v0.1", base, seed=4)


@pytest.fixture(scope="module")
def pages() -> list:
    return [render_page(["Quarterly report", "Solar sales grew 40 percent."], width=224),
            render_page(["Recette", "Pain au levain, 45 minutes."], width=160, font_size=18),
            render_page(["上海天气预报"], width=112)]


def straight_line(base: Path, adapter: Path | None, query: str, pages: list) -> list[float]:
    """Scores of ``pages``, one unpadded pair at a time, without any m0rank or peft code."""
    from transformers import AutoTokenizer, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    raw = json.loads((base / "config.json").read_text())
    model = Qwen2VLForConditionalGeneration(
        Qwen2VLConfig(**{k: v for k, v in raw.items() if k not in ("architectures", "torch_dtype")})
    ).float().eval()
    state = {}
    for key, value in load_file(str(base / "model.safetensors")).items():
        key = ("model." + key) if key.startswith("visual.") else \
            ("model.language_model." + key[len("model."):])
        state[key] = value
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert missing == ["lm_head.weight"] and not unexpected
    model.lm_head.weight = model.model.language_model.embed_tokens.weight
    if adapter is not None:  # W += (alpha / r) * B @ A, by hand
        config = json.loads((adapter / "adapter_config.json").read_text())
        lora = load_file(str(adapter / "adapter_model.safetensors"))
        for key in [k for k in lora if k.endswith("lora_A.weight")]:
            target = key.removeprefix("base_model.model.model.").removesuffix(".lora_A.weight")
            layer = model.model.language_model.get_submodule(target)
            delta = lora[key.replace("lora_A", "lora_B")] @ lora[key]
            layer.weight.data += config["lora_alpha"] / config["r"] * delta
    tokenizer = AutoTokenizer.from_pretrained(base)
    true_id, false_id = tokenizer.convert_tokens_to_ids(["True", "False"])
    processor = Qwen2VLImageProcessorPil(size={"shortest_edge": 3136, "longest_edge": MAX_PIXELS})
    scores = []
    for page in pages:
        processed = processor(images=[page], return_tensors="pt")
        count = int(processed["image_grid_thw"][0].prod()) // 4
        prompt = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                  "<|im_start|>user\n<|vision_start|>" + "<|image_pad|>" * count +
                  "<|vision_end|>Assert the relevance of the previous image document to the "
                  f"following query, answer True or False. The query is: {query}<|im_end|>\n"
                  "<|im_start|>assistant\n")
        ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                           mm_token_type_ids=(ids == 151655).long(), use_cache=False,
                           **processed).logits[0, -1]
        scores.append(float(torch.softmax(logits[[true_id, false_id]], dim=-1)[0]))
    return scores


def test_adapter_layout_matches_straight_line(checkpoints, pages) -> None:  # noqa: ANN001
    base, adapter = checkpoints
    assert not (adapter / "model.safetensors").exists()  # only the adapter is shipped
    reranker = Reranker.from_pretrained(adapter, device="cpu", max_pixels=MAX_PIXELS)
    ours = [s.score for s in reranker.score(QUERY, [{"image": p} for p in pages])]  # padded batch
    expected = straight_line(base, adapter, QUERY, pages)
    assert ours == pytest.approx(expected, abs=1e-5)
    assert max(ours) - min(ours) > 1e-4
    # The adapter is really merged: the bare base scores differently.
    bare = Reranker.from_pretrained(base, device="cpu", max_pixels=MAX_PIXELS)
    bare_scores = [s.score for s in bare.score(QUERY, [{"image": p} for p in pages])]
    assert bare_scores == pytest.approx(straight_line(base, None, QUERY, pages), abs=1e-5)
    assert max(abs(a - b) for a, b in zip(ours, bare_scores, strict=True)) > 1e-3


def test_text_documents_are_refused(checkpoints) -> None:  # noqa: ANN001
    reranker = Reranker.from_pretrained(checkpoints[0], device="cpu", max_pixels=MAX_PIXELS)
    with pytest.raises(InvalidInputError, match=re.escape(
            "documents[0]: Qwen2-VL-2B-Instruct scores documents that are exactly one image "
            "(got text)")):
        reranker.score(QUERY, ["a text page"])
