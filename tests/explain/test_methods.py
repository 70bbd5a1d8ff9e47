"""Explanation methods on every family: shapes, scores next to the served one, options, errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from m0rank import Reranker
from m0rank.errors import InvalidInputError, UnsupportedOperationError
from m0rank.explain import Explanation, cell_grid
from m0rank.testing.checkset import render_passage
from m0rank.testing.pdfs import text_pdf

QUERY = "wind turbine blade fatigue"
TEXT = "Wind turbine blades fail by fatigue. The bakery sells fresh bread every morning."


@pytest.fixture(scope="module")
def page() -> Image.Image:
    return render_passage("Wind turbine blades fail by fatigue after many load cycles.")


@pytest.fixture(scope="module")
def dummy() -> Reranker:
    return Reranker.from_pretrained("m0rank-dummy")


def test_text_occlusion_weights_the_query_words(dummy: Reranker) -> None:
    explanation = dummy.explain(QUERY, TEXT, block=1)
    assert explanation.heatmap is None and explanation.method == "occlusion"
    weights = {span.text.strip(".").lower(): span.weight for span in explanation.spans}
    assert all(weights[word] > 0 for word in ("wind", "turbine", "fatigue"))
    assert weights["bakery"] == pytest.approx(0.0)
    assert all(TEXT[s.start:s.end] == s.text for s in explanation.spans)
    with pytest.raises(ValueError, match="overlay needs an image"):
        explanation.overlay()


def test_image_occlusion_runs_on_jina_m0_with_one_cell_per_token_group(
        reranker: Reranker, page: Image.Image) -> None:
    explanation = reranker.explain(QUERY, {"image": page}, block=3)
    grid = cell_grid(page.size)
    assert explanation.heatmap.shape == (grid.rows, grid.cols)
    served = reranker.score(QUERY, [{"image": page}])[0].score
    assert explanation.score == pytest.approx(served) == explanation.method_score
    overlay = explanation.overlay()
    assert overlay.size == page.size and overlay.mode == "RGB"


def test_attention_reports_its_eager_score_next_to_the_served_one(reranker: Reranker,
                                                                  page: Image.Image) -> None:
    explanation = reranker.explain(QUERY, {"image": page}, method="attention")
    served = reranker.score(QUERY, [{"image": page}])[0].score
    assert explanation.score == pytest.approx(served)
    assert explanation.method_score == pytest.approx(served, abs=1e-4)  # fp32: tiny gap
    heat = explanation.heatmap
    assert np.isfinite(heat).all() and (heat >= 0).all() and heat.sum() > 0
    assert explanation.details["attention"] == "eager"
    # the served path is unchanged afterwards (eager only for the explanation)
    assert reranker.score(QUERY, [{"image": page}])[0].score == pytest.approx(served, abs=1e-7)


def test_attention_layers_and_heads_are_selectable(reranker: Reranker, page: Image.Image) -> None:
    last = reranker.explain(QUERY, {"image": page}, method="attention", layers=[-1], heads=[0])
    first = reranker.explain(QUERY, {"image": page}, method="attention", layers=[0], heads=[0])
    assert last.details["layers"] == [1] and last.details["heads"] == [0]
    assert not np.allclose(last.heatmap, first.heatmap)
    with pytest.raises(InvalidInputError, match=r"layers must be indices in \[-2, 2\)"):
        reranker.explain(QUERY, {"image": page}, method="attention", layers=[5])


def test_gradient_x_input_on_the_same_grid_as_attention(reranker: Reranker,
                                                        page: Image.Image) -> None:
    gradient = reranker.explain(QUERY, {"image": page}, method="gradient")
    attention = reranker.explain(QUERY, {"image": page}, method="attention")
    assert gradient.heatmap.shape == attention.heatmap.shape
    assert np.isfinite(gradient.heatmap).all() and np.abs(gradient.heatmap).sum() > 0
    assert gradient.method_score == pytest.approx(gradient.score, abs=1e-4)


def test_families_without_attention_say_so(dummy: Reranker, page: Image.Image) -> None:
    with pytest.raises(UnsupportedOperationError, match="method 'attention' needs jina"):
        dummy.explain(QUERY, {"image": page}, method="attention")
    with pytest.raises(InvalidInputError, match="method must be one of"):
        dummy.explain(QUERY, TEXT, method="saliency")


def test_a_pdf_page_is_explained_as_the_family_reads_it(dummy: Reranker,
                                                        reranker: Reranker) -> None:
    data = text_pdf([["Cover"], ["Wind turbine blade fatigue results"]])
    as_text = dummy.explain(QUERY, {"pdf": data, "pages": [2]})  # dummy reads the text layer
    assert [s.text for s in as_text.spans][:2] == ["Wind", "turbine"]
    as_image = reranker.explain(QUERY, {"pdf": data, "pages": [2]}, block=6)
    assert isinstance(as_image, Explanation) and as_image.heatmap is not None
    with pytest.raises(InvalidInputError, match="must name one page"):
        dummy.explain(QUERY, {"pdf": data, "pages": [1, 2]})


def test_to_dict_carries_heatmap_overlay_and_spans(reranker: Reranker, dummy: Reranker,
                                                   page: Image.Image) -> None:
    image = reranker.explain(QUERY, {"image": page}, method="attention").to_dict()
    assert image["overlay"].startswith("data:image/png;base64,")
    assert len(image["heatmap"]) > 0 and image["method"] == "attention"
    text = dummy.explain(QUERY, TEXT).to_dict()
    assert "heatmap" not in text and text["spans"][0]["text"] == "Wind"
