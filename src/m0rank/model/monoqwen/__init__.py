"""MonoQwen2-VL-v0.1: Qwen2-VL-2B + LoRA, relevance from the "True"/"False" logits."""

from m0rank.model.monoqwen.reranker import MonoQwenReranker

__all__ = ["MonoQwenReranker"]
