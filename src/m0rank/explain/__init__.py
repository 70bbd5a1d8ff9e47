"""Why did this rank first? Explanations of one (query, document) score.

``Reranker.explain(query, document, method=...)`` returns an :class:`Explanation`: the
served score, the method's own score, and a heatmap over the page (images, one cell per
image token group; ``.overlay()`` draws it) or a weight per word span (text).

Methods: ``occlusion`` for every family (``occlusion``), ``attention`` (last-token attention,
eager) and ``gradient`` (gradient x input) for jina-reranker-m0 (``jina_m0``).
"""

from m0rank.explain.explanation import Explanation, TextSpan
from m0rank.explain.grid import CellGrid, background_colour, cell_grid, occlude
from m0rank.explain.occlusion import OcclusionPlan, assemble_occlusion, plan_occlusion
from m0rank.explain.runner import METHODS, check_method, explain_pair

__all__ = ["Explanation", "TextSpan", "CellGrid", "cell_grid", "background_colour", "occlude",
           "OcclusionPlan", "plan_occlusion", "assemble_occlusion", "METHODS", "check_method",
           "explain_pair"]
