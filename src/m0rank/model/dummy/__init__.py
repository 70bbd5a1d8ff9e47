"""The weight-free dummy family (after infinity's ``DummyTransformer``): see ``reranker``."""

from m0rank.model.dummy.reranker import DUMMY_ARCHITECTURE, DummyReranker

__all__ = ["DummyReranker", "DUMMY_ARCHITECTURE"]
