"""The built-in CPU/offline default, second generation: multilingual USE v3 and MiniLM
fused with a CJK/German-aware lexical score, OCR for images.

Files: ``reranker`` (the family), ``encoders`` (dense side). The lexical scorer and OCR are
shared with the first generation (``m0rank.model.offline``); the index terms come from
:mod:`m0rank.terms`. Documented in ``docs/offline-default.md``.
"""

from m0rank.model.offline_v2.reranker import OfflineRerankerV2, OfflineV2Settings

__all__ = ["OfflineRerankerV2", "OfflineV2Settings"]
