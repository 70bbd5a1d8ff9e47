"""jina-reranker-m0: Qwen2-VL-2B with an MLP score head on the last token.

Reference: jinaai/jina-reranker-m0 ``modeling.py`` (see ``shared/spec/m0-reference.md``) and
vLLM's ``model_executor/models/jina_vl.py``. One micro-batch goes ``prompt`` (template) ->
``reranker.preprocess`` (tokens, image patches) -> ``inputs`` (packed or padded tensors) ->
``reranker.forward`` (backbone, head) -> ``reranker.postprocess`` (``sigmoid(logit - 2.65)``).
"""

from m0rank.model.jina_m0.reranker import JinaM0Reranker

__all__ = ["JinaM0Reranker"]
