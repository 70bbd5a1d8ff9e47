"""BERT cross-encoders in sentence-transformers' ``CrossEncoder`` folder layout
(``cross-encoder/ms-marco-MiniLM-L6-v2``): one logit, ``sigmoid`` relevance."""

from m0rank.model.bert_cross_encoder.reranker import BertCrossEncoderReranker, init_from_encoder

__all__ = ["BertCrossEncoderReranker", "init_from_encoder"]
