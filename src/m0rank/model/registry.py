"""Which class serves which ``config.json`` architecture, resolved lazily.

The choice is made from ``config.json``'s ``architectures`` list, never from the model's name
(the anti-pattern of choosing by ``"t5" in model_name``). Entries are import strings so that
listing or resolving does not import torch or any family that is not used.
"""

from __future__ import annotations

import importlib
from typing import Any

from m0rank.errors import UnsupportedArchitectureError

__all__ = ["ARCHITECTURES", "resolve_architecture", "supported_architectures"]

# config.json "architectures" value -> "module:Class". One family per package.
ARCHITECTURES: dict[str, str] = {
    # jina-reranker-m0 (Qwen2-VL-2B + MLP score head)
    "JinaVLForRanking": "m0rank.model.jina_m0:JinaM0Reranker",
    # the built-in CPU/offline default shipped inside the package
    "M0RankOfflineReranker": "m0rank.model.offline:OfflineReranker",
    # its second generation, multilingual (the default m0rank-offline since issue 14)
    "M0RankOfflineRerankerV2": "m0rank.model.offline_v2:OfflineRerankerV2",
    # text cross-encoders: bge-reranker-v2-m3, jina-reranker-v2-base-multilingual
    "XLMRobertaForSequenceClassification": "m0rank.model.cross_encoder:CrossEncoderReranker",
    # MonoQwen2-VL-v0.1 (Qwen2-VL-2B + LoRA, relevance from "True"/"False" logits)
    "Qwen2VLForConditionalGeneration": "m0rank.model.monoqwen:MonoQwenReranker",
    # BERT cross-encoders in sentence-transformers CrossEncoder folders (ms-marco-MiniLM)
    "BertForSequenceClassification": "m0rank.model.bert_cross_encoder:BertCrossEncoderReranker",
    # weight-free word-overlap scores for server tests and load tests (built-in m0rank-dummy)
    "M0RankDummyReranker": "m0rank.model.dummy:DummyReranker",
}


def supported_architectures() -> list[str]:
    """Names accepted in ``config.json`` ``architectures``."""
    return sorted(ARCHITECTURES)


def resolve_architecture(config: dict[str, Any], source: str) -> type:
    """Return the class for the first architecture in ``config`` that is registered.

    Raises:
        UnsupportedArchitectureError: No listed architecture is registered.
    """
    names = config.get("architectures") or []
    for name in names:
        if name in ARCHITECTURES:
            module_name, _, class_name = ARCHITECTURES[name].partition(":")
            return getattr(importlib.import_module(module_name), class_name)  # type: ignore[no-any-return]
    raise UnsupportedArchitectureError(
        f"{source}: config.json architectures {names!r} are not supported; "
        f"supported: {', '.join(supported_architectures())}"
    )
