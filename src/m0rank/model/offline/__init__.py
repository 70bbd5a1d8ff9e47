"""The built-in CPU/offline default: a sentence encoder fused with a lexical score, OCR for images.

Files: ``reranker`` (the family), ``encoder`` (dense side), ``lexical`` (BM25 side), ``ocr``
(text from images). Documented in ``docs/offline-default.md``.
"""

from m0rank.model.offline.reranker import OfflineReranker

__all__ = ["OfflineReranker"]
