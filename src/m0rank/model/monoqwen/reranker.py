"""MonoQwen2-VL-v0.1: Qwen2-VL-2B-Instruct with a LoRA adapter, relevance from "True"/"False".

References: the ``lightonai/MonoQwen2-VL-v0.1`` model card and AnswerDotAI/rerankers'
``models/monovlm_ranker.py`` (its MonoVLMRanker defaults to this model). What we reproduce:

- the released repo is a PEFT LoRA adapter (``adapter_config.json`` +
  ``adapter_model.safetensors``) whose ``base_model_name_or_path`` is
  ``Qwen/Qwen2-VL-2B-Instruct``; the base is resolved like any m0rank checkpoint (local
  folder, Hugging Face cache, hub) and the adapter merged into it with ``peft``;
- one user turn through the Qwen2-VL chat template, the image first, then the text
  ``"Assert the relevance of the previous image document to the following query, answer
  True or False. The query is: {query}"``, then the generation prompt; since the turn has
  no system message the template inserts ``"You are a helpful assistant."``;
- relevance = ``softmax(logits[-1, [True, False]])[True]``, i.e. ``sigmoid(l_True - l_False)``
  of the next-token logits of the tokens ``"True"`` and ``"False"``.

Choices where the reference is silent (written down as asked):

- The adapter's tensor names may use the pre-4.52 layout (``model.layers.*``, ``visual.*``);
  they are mapped to transformers 5's module names before peft loads them.
- The pixel budget is m0rank's (``LoadOptions.image_sizing``; default 3136..602112), so
  families are compared on the same images; the card uses the processor's default budget.
- Queries are truncated to ``max_query_length`` tokens; documents must be single images.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from m0rank.config import ScoreOptions
from m0rank.errors import InputTooLargeError, InvalidInputError
from m0rank.model.base import LoadOptions, PreparedPair, RerankerArchitecture
from m0rank.model.loading import empty_init, read_config, read_safetensors
from m0rank.model.lora import merge_adapter, read_adapter_config, resolve_adapter_base
from m0rank.model.qwen2vl.collate import QWEN2_PAD_TOKEN_ID, left_pad
from m0rank.model.qwen2vl.inputs import EncodedPrompt, Qwen2VLInputEncoder
from m0rank.model.qwen2vl.weights import flat_to_nested, load_qwen2vl_state
from m0rank.types import Document

__all__ = ["MonoQwenReranker", "format_monoqwen_prompt", "PROMPT"]

logger = logging.getLogger(__name__)

PROMPT = ("Assert the relevance of the previous image document to the following query, "
          "answer True or False. The query is: {query}")
# Qwen2-VL-Instruct's chat template for one user turn [image, text] + generation prompt.
_CHAT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
         "<|vision_start|><|image_pad|><|vision_end|>{text}<|im_end|>\n<|im_start|>assistant\n")
TRUE_TOKEN, FALSE_TOKEN = "True", "False"
_ADAPTER_PREFIX = "base_model.model."
_CONFIG_DROP = ("architectures", "auto_map", "torch_dtype", "dtype", "_name_or_path",
                "transformers_version")


def format_monoqwen_prompt(query: str) -> str:
    """The full prompt string for one (text query, image document) pair."""
    return _CHAT.format(text=PROMPT.format(query=query))


class MonoQwenReranker(RerankerArchitecture):
    """Qwen2-VL + merged LoRA, scored by the "True" vs "False" next-token logits."""

    architecture_names: ClassVar[tuple[str, ...]] = ("Qwen2VLForConditionalGeneration",)

    def __init__(self, module: Any, encoder: Qwen2VLInputEncoder, device: torch.device,
                 model_name: str = "MonoQwen2-VL") -> None:
        self.module = module
        self.encoder = encoder
        self.device = device
        self.model_name = model_name
        tokenizer = encoder.tokenizer
        self.token_ids = (int(tokenizer.convert_tokens_to_ids(TRUE_TOKEN)),
                          int(tokenizer.convert_tokens_to_ids(FALSE_TOKEN)))
        self.pad_token_id = int(tokenizer.pad_token_id or QWEN2_PAD_TOKEN_ID)

    @classmethod
    def load(cls, path: Path, config: dict[str, Any], options: LoadOptions) -> MonoQwenReranker:
        """Load the base (the adapter's ``base_model_name_or_path``, or ``path`` itself for a
        merged checkpoint), merge the adapter, and build the Qwen2-VL input encoder."""
        adapter = read_adapter_config(path)
        base = path if adapter is None else resolve_adapter_base(adapter, path, options)
        base_config = config if adapter is None else read_config(base)
        module = _build_base(base, base_config, options)
        if adapter is not None:
            module = merge_adapter(module, path, rename=_nested_adapter_name)
        module.to(dtype=options.dtype).eval()
        # The released adapter ships no tokenizer: the card loads the base's processor.
        source = path if (path / "tokenizer.json").exists() else base
        encoder = Qwen2VLInputEncoder.from_pretrained(source, options.image_sizing)
        return cls(module, encoder, torch.device(options.device),
                   model_name=options.model_name or "MonoQwen2-VL")

    def preprocess(self, query: Document, document: Document, options: ScoreOptions,
                   field: str) -> PreparedPair:
        """Chat prompt with the page image and the (truncated) query; image patches (CPU)."""
        if query.images or query.text is None:
            raise InvalidInputError(f"query: {self.model_name} takes a text query")
        if len(document.images) != 1 or document.text is not None:
            raise InvalidInputError(f"{field}: {self.model_name} scores documents that are "
                                    f"exactly one image (got {document.modality.value})")
        text = self.encoder.truncate_text(query.text, options.max_query_length)
        encoded = self.encoder.encode(format_monoqwen_prompt(text), list(document.images),
                                      budget=1 << 30, field=field)
        if len(encoded.input_ids) > options.max_length:
            raise InputTooLargeError(
                f"{field}: the prompt needs {len(encoded.input_ids)} tokens, over max_length "
                f"{options.max_length}; lower max_pixels or raise max_length")
        return PreparedPair(num_tokens=len(encoded.input_ids), payload=encoded)

    @torch.inference_mode()
    def forward(self, batch: Sequence[PreparedPair]) -> torch.Tensor:
        """``l_True - l_False`` at the last position of left-padded rows (float32, CPU)."""
        inputs = self._collate([pair.payload for pair in batch])
        model = self.module.model  # Qwen2VLModel: vision tower + language model
        mm_token_type_ids = (inputs["input_ids"] == model.config.image_token_id).to(torch.int32)
        position_ids, _ = model.get_rope_index(
            inputs["input_ids"], mm_token_type_ids=mm_token_type_ids,
            image_grid_thw=inputs["image_grid_thw"], attention_mask=inputs["attention_mask"])
        hidden = model(**inputs, position_ids=position_ids, mm_token_type_ids=mm_token_type_ids,
                       use_cache=False).last_hidden_state[:, -1]  # (B, H)
        rows = self.module.lm_head.weight[list(self.token_ids)]  # (2, H): "True", "False"
        logits = hidden @ rows.T  # (B, 2), the two next-token logits
        return (logits[:, 0] - logits[:, 1]).float().cpu()

    def postprocess(self, logits: torch.Tensor) -> list[float]:
        """``softmax([l_True, l_False])[0] = sigmoid(l_True - l_False)``."""
        return torch.sigmoid(logits).tolist()

    def _collate(self, encoded: Sequence[EncodedPrompt]) -> dict[str, Any]:
        ids, mask = left_pad([item.input_ids for item in encoded], self.pad_token_id)
        dtype = next(self.module.parameters()).dtype
        pixels = torch.cat([item.pixel_values for item in encoded])
        grids = [grid for item in encoded for grid in item.image_grid_thw]
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device),
                "pixel_values": pixels.to(self.device, dtype),
                "image_grid_thw": torch.tensor(grids, device=self.device)}


def _build_base(base: Path, config: dict[str, Any], options: LoadOptions) -> Any:
    """transformers' ``Qwen2VLForConditionalGeneration`` with the base weights, either naming."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    qwen_config = Qwen2VLConfig.from_dict({k: v for k, v in config.items()
                                           if k not in _CONFIG_DROP})
    with empty_init(torch.device(options.device)):
        module = Qwen2VLForConditionalGeneration(qwen_config)
    state = {flat_to_nested(k): v for k, v in read_safetensors(base).items()}
    expected = set(module.state_dict())
    if qwen_config.tie_word_embeddings:
        expected.discard("lm_head.weight")
        state.pop("lm_head.weight", None)
    load_qwen2vl_state(module, state, str(base), "Qwen2-VL", expected)
    if qwen_config.tie_word_embeddings:
        module.lm_head.weight = module.model.language_model.embed_tokens.weight
    return module


def _nested_adapter_name(name: str) -> str:
    """peft's ``base_model.model.<flat Qwen2-VL name>`` -> the same over transformers' nested
    module names."""
    return _ADAPTER_PREFIX + flat_to_nested(name.removeprefix(_ADAPTER_PREFIX))
