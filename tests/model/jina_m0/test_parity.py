"""Scores equal an independent straight-line computation with transformers' own classes.

The reference here is written from the spec alone: ``Qwen2VLForConditionalGeneration`` loaded
with the flat->nested key mapping, the prompt string built inline, ``<|image_pad|>`` expanded
in the string as ``Qwen2VLProcessor`` does, token 100 appended, ``hidden_states[-1][:, -1]``
through the head, ``sigmoid(x - 2.65)``. One pair at a time, so no padding is involved.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


class StraightLineM0:
    def __init__(self, checkpoint: Path) -> None:
        from transformers import AutoTokenizer, Qwen2VLConfig, Qwen2VLForConditionalGeneration
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
            Qwen2VLImageProcessorPil,
        )

        raw = json.loads((checkpoint / "config.json").read_text())
        raw = {k: v for k, v in raw.items() if k not in ("architectures", "auto_map", "torch_dtype")}
        self.model = Qwen2VLForConditionalGeneration(Qwen2VLConfig(**raw)).eval()
        state = load_file(str(checkpoint / "model.safetensors"))
        mapped = {}
        for key, value in state.items():
            if key.startswith("visual."):
                key = "model." + key
            elif key.startswith("model."):
                key = "model.language_model." + key[len("model."):]
            mapped[key] = value
        head_state = {k[len("score."):]: mapped.pop(k) for k in list(mapped) if k.startswith("score.")}
        missing, unexpected = self.model.load_state_dict(mapped, strict=False)
        assert not missing and not unexpected, (missing, unexpected)
        hidden = raw["hidden_size"]
        self.head = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                        torch.nn.Linear(hidden, 1))
        self.head.load_state_dict(head_state)
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.images = Qwen2VLImageProcessorPil(size={"shortest_edge": 3136, "longest_edge": 602112})

    @torch.no_grad()
    def score(self, query: str | Image.Image, doc: object) -> float:
        doc_images = [d for d in (doc if isinstance(doc, tuple) else (doc,)) if isinstance(d, Image.Image)]
        doc_texts = [d for d in (doc if isinstance(doc, tuple) else (doc,)) if isinstance(d, str)]
        query_is_image = isinstance(query, Image.Image)
        doc_part = "\n".join([PLACEHOLDER] * len(doc_images) + doc_texts)
        query_part = PLACEHOLDER if query_is_image else query
        prompt = f"**Document**:\n{doc_part}\n**Query**:\n{query_part}"
        images = doc_images + ([query] if query_is_image else [])
        inputs = {}
        if images:
            processed = self.images(images=images, return_tensors="pt")
            for grid in processed["image_grid_thw"]:
                count = int(grid.prod()) // 4
                prompt = prompt.replace("<|image_pad|>", "<|placeholder|>" * count, 1)
            prompt = prompt.replace("<|placeholder|>", "<|image_pad|>")
            inputs.update(processed)
        ids = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
        ids = torch.cat([ids, torch.tensor([[100]])], dim=1)
        inputs["input_ids"] = ids
        inputs["attention_mask"] = torch.ones_like(ids)
        if images:
            inputs["mm_token_type_ids"] = (ids == 151655).long()
        out = self.model(**inputs, output_hidden_states=True, use_cache=False)
        logit = self.head(out.hidden_states[-1][:, -1]).squeeze().item()
        return 1.0 / (1.0 + np.exp(-(logit - 2.65)))


@pytest.fixture(scope="module")
def straight_line(m0_checkpoint: Path) -> StraightLineM0:
    return StraightLineM0(m0_checkpoint)


def _page(color: tuple[int, int, int], size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, color)
    for x in range(0, size[0], 7):
        image.putpixel((x, (x * 3) % size[1]), (255 - color[0], 20, 200))
    return image


CASES = {
    "text->text": ("slm markdown", ["ReaderLM-v2 turns HTML into Markdown.", "数据提取么？", "Goldrausch in Kalifornien"]),
    "text->image": ("slm markdown", [_page((200, 30, 30), (300, 200)), _page((20, 90, 200), (120, 460))]),
    "image->text": (_page((10, 150, 10), (224, 224)), ["a green square", "Die Straße ist groß."]),
    "image->image": (_page((10, 150, 10), (224, 224)), [_page((200, 30, 30), (300, 200)), _page((10, 150, 10), (64, 64))]),
    "text->mixed": ("which chart shows revenue", [("Quarterly revenue chart", _page((240, 240, 240), (280, 140))),
                                                  ("two pages", _page((1, 2, 3), (56, 56)), _page((90, 90, 9), (100, 300)))]),
}


def _as_api_document(doc: object) -> object:
    if isinstance(doc, tuple):
        texts = [d for d in doc if isinstance(d, str)]
        images = [d for d in doc if isinstance(d, Image.Image)]
        from m0rank import Document

        return Document(text=texts[0] if texts else None, images=tuple(images))
    return doc


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_scores_match_straight_line_reference(reranker, straight_line, case: str) -> None:
    query, documents = CASES[case]
    ours = [r.score for r in reranker.score(query, [_as_api_document(d) for d in documents])]
    expected = [straight_line.score(query, doc) for doc in documents]
    np.testing.assert_allclose(ours, expected, atol=1e-5, rtol=0)
    # The scores must not be degenerate (a constant model would pass trivially).
    assert max(ours) - min(ours) > 1e-4


def test_raw_logits_are_inverse_of_scores(reranker) -> None:
    pair_scores = reranker.score("slm markdown", ["one", "two words"])
    for item in pair_scores:
        assert item.score == pytest.approx(1 / (1 + np.exp(-(item.logit - 2.65))), abs=1e-6)
