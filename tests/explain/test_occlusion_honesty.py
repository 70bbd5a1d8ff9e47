"""Honesty checks of occlusion explanations on the built-in offline model (real relevance)
and a tiny random jina-reranker-m0 (the randomised-model control).

One page holds a salient distractor (a big dark banner with large irrelevant words), one
relevant paragraph and one irrelevant paragraph of the same length, rendered with Noto.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from m0rank import Reranker
from m0rank.explain import background_colour, cell_grid, occlude, plan_occlusion
from m0rank.testing.pages import render_page
from m0rank.types import Document

QUERY = "wind turbine blade fatigue"
RELEVANT = "Wind turbine blades fail by fatigue after millions of load cycles in gusty wind."
IRRELEVANT = "The bakery sells fresh bread, croissants and cakes every morning before eight."
BLOCK = 4  # cells per side: about 30 variants, so the OCR-based offline model stays quick


def _page() -> tuple[Image.Image, dict[str, tuple[int, int]]]:
    """The page and the pixel rows (top, bottom) of each region."""
    banner = render_page(["HUGE SUMMER SALE TODAY"], width=800, font_size=56,
                         background="#202020", color="white")
    relevant = render_page([RELEVANT], width=800, font_size=28)
    irrelevant = render_page([IRRELEVANT], width=800, font_size=28)
    parts = [("banner", banner), ("irrelevant", irrelevant), ("relevant", relevant)]
    page = Image.new("RGB", (800, sum(p.height for _, p in parts)), "white")
    regions, top = {}, 0
    for name, part in parts:
        page.paste(part, (0, top))
        regions[name] = (top, top + part.height)
        top += part.height
    return page, regions


def _region_rows(image: Image.Image, heat: np.ndarray, span: tuple[int, int]) -> np.ndarray:
    grid = cell_grid(image.size)
    assert heat.shape == (grid.rows, grid.cols)
    centres = np.array([(grid.box(r, 0)[1] + grid.box(r, 0)[3]) / 2 for r in range(grid.rows)])
    return (centres >= span[0]) & (centres < span[1])


def _share(heat: np.ndarray, rows: np.ndarray) -> float:
    positive = np.clip(heat, 0, None)
    return float(positive[rows].sum() / max(positive.sum(), 1e-12))


@pytest.fixture(scope="module")
def offline() -> Reranker:
    return Reranker.from_pretrained("m0rank-offline")


@pytest.fixture(scope="module")
def page() -> tuple[Image.Image, dict[str, tuple[int, int]]]:
    return _page()


@pytest.fixture(scope="module")
def explained(offline: Reranker, page):  # noqa: ANN001, ANN201
    return offline.explain(QUERY, {"image": page[0]}, method="occlusion", block=BLOCK)


def test_offline_peak_lies_on_the_relevant_paragraph(explained, page) -> None:  # noqa: ANN001
    image, regions = page
    relevant = _region_rows(image, explained.heatmap, regions["relevant"])
    assert relevant[explained.peak()[0]]
    assert _share(explained.heatmap, relevant) > 0.6
    assert explained.method_score == pytest.approx(explained.score)


def test_salient_distractor_does_not_attract_the_heatmap(explained, page) -> None:  # noqa: ANN001
    image, regions = page
    banner = _region_rows(image, explained.heatmap, regions["banner"])
    relevant = _region_rows(image, explained.heatmap, regions["relevant"])
    assert _share(explained.heatmap, banner) < 0.1
    assert _share(explained.heatmap, banner) < _share(explained.heatmap, relevant) / 5


def test_deletion_curve_top_cells_cost_more_than_random_cells(offline: Reranker, explained,
                                                              page) -> None:  # noqa: ANN001
    image = page[0]
    grid = cell_grid(image.size)
    order = np.argsort(-explained.heatmap, axis=None)
    fill = background_colour(image)
    count = 2 * BLOCK * BLOCK
    top = [divmod(int(i), grid.cols) for i in order[:count]]
    rng = np.random.default_rng(0)
    randoms = [[divmod(int(i), grid.cols) for i in rng.choice(order.size, count, replace=False)]
               for _ in range(3)]
    variants = [{"image": occlude(image, grid, cells, fill)} for cells in [top, *randoms]]
    scores = [s.score for s in offline.score(QUERY, variants)]
    top_drop = explained.score - scores[0]
    random_drop = explained.score - float(np.mean(scores[1:]))
    assert top_drop > 0.3
    assert top_drop > random_drop + 0.2


def test_occlusion_fill_looks_like_the_page_background() -> None:
    beige = (245, 235, 210)
    image = render_page(["Some words on a coloured page."], width=600, font_size=28,
                        background="#f5ebd2")
    assert background_colour(image) == beige
    plan = plan_occlusion(Document(images=(image,)), block=2)
    assert plan.fill == beige
    covered = np.asarray(plan.documents[1].images[0])
    left, top, right, bottom = plan.grid.box(0, 0)
    patch = covered[top:bottom, left:right].reshape(-1, 3)
    paper = np.asarray(image)[:8, :8].reshape(-1, 3)  # untouched margin
    assert np.abs(patch.mean(axis=0) - paper.mean(axis=0)).max() < 2.0
    assert np.abs(covered.astype(int) - np.asarray(image).astype(int)).sum() > 0


def test_randomised_model_control_does_not_find_the_evidence(reranker: Reranker, explained,
                                                             page) -> None:  # noqa: ANN001
    """The same method on a random-weight jina-m0: no preference for the relevant paragraph
    over the irrelevant one of the same length, where the trained offline model has one."""
    image, regions = page
    control = reranker.explain(QUERY, {"image": image}, method="occlusion", block=BLOCK)
    relevant = _region_rows(image, control.heatmap, regions["relevant"])
    irrelevant = _region_rows(image, control.heatmap, regions["irrelevant"])
    trained_ratio = _share(explained.heatmap, relevant) / max(
        _share(explained.heatmap, irrelevant), 1e-3)
    control_ratio = _share(control.heatmap, relevant) / max(_share(control.heatmap, irrelevant),
                                                           1e-3)
    assert trained_ratio > 5
    assert control_ratio < 3
    assert control_ratio < trained_ratio / 3
