"""Text cross-encoders in the XLM-RoBERTa layout: bge-reranker-v2-m3, jina-reranker-v2."""

from m0rank.model.cross_encoder.reranker import CrossEncoderReranker

__all__ = ["CrossEncoderReranker"]
