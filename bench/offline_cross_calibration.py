"""Would a separate calibration for cross-lingual pairs make v2's scores mean more the same?

A cross-lingual pair cannot collect lexical evidence (only numbers and names match across
languages), so under the one multilingual fusion a relevant translation tends to score below
same-language paragraphs that share words with the question. The variant measured here keeps
the shipped ranking inside every list (the same ``dense + ratio * lexical + e5_ratio * e5``),
but maps it to a
logit with its own scale and bias for pairs whose query and document languages differ,
fitted by logistic regression with balanced classes on the check set's cross-lingual pairs
(``m0rank.testing.checkset``, not XQuAD). On XQuAD it then compares, shipped against variant:

- ``calibration``: the relevant translation above every irrelevant same-language paragraph;
- ``calibration_reverse``: the question's own-language paragraph above every irrelevant
  translation (what raising cross-lingual scores costs);
- ``mixed_lists``: all 480 paragraphs of two languages at once, two of them relevant.

An exploration, not a fit of the shipped model. Result (``docs/offline-default.md``, measured
on v2 before multilingual-e5-small joined it): it lifted the first check and lowered the other
two for English questions, so v2 keeps one calibration per path.

Usage: ``python bench/offline_cross_calibration.py``; writes
``bench/results/offline_cross_calibration.json``.
"""

from __future__ import annotations

import json

import numpy as np
from offline_data import collection, write_result
from offline_fit_v2 import checkset_pairs, features
from offline_quality import LANGS, calibration, calibration_reverse, mixed_lists

from m0rank import Reranker
from m0rank.model.offline_v2.reranker import Features

N = 240


def cross_lingual_calibration(reranker: Reranker) -> tuple[float, float]:
    """Scale and bias on the shipped multilingual ranking for the check set's cross-lingual
    pairs."""
    from sklearn.linear_model import LogisticRegression

    pairs, _, languages = checkset_pairs()
    cross = [p for p, pair in zip(pairs, languages, strict=True)
             if pair.split("-")[0] != pair.split("-")[1]]
    dense, lexical, e5, _ = features(reranker, cross, "checkset_cross")
    z = _ranking(reranker, Features(dense, lexical, e5))
    fit = LogisticRegression(class_weight="balanced").fit(
        z.reshape(-1, 1), np.array([label for _, _, label in cross]))
    return float(fit.coef_[0][0]), float(fit.intercept_[0])


def logit_grids(reranker: Reranker, scale: float, bias: float) -> dict[str, dict]:
    """Shipped and variant logits of every XQuAD question against every paragraph."""
    settings = reranker.model.settings
    text = {}
    for lang in LANGS:
        coll = collection(f"xquad-{lang}")  # read once: each call parses the whole folder
        text[lang] = ([str(coll.queries[f"q{i}"].text) for i in range(N)],
                      [str(coll.corpus[f"p{i}"].text) for i in range(N)])
    shipped, variant = {}, {}
    for a in LANGS:
        for b in LANGS:
            pairs = [(q, d, 0) for q in text[a][0] for d in text[b][1]]
            dense, lexical, e5, paths = features(reranker, pairs, f"xquad_{a}_{b}")
            columns = Features(dense, lexical, e5)
            english = np.array(paths) == "english"
            ours = np.where(english, settings.english.logits(columns),
                            settings.multilingual.logits(columns))
            shipped[a, b] = ours.reshape(N, N)
            other = scale * _ranking(reranker, columns) + bias
            variant[a, b] = (ours if a == b else np.where(english, ours, other)).reshape(N, N)
    return {"shipped": shipped, "cross_calibrated": variant}


def _ranking(reranker: Reranker, columns: Features) -> np.ndarray:
    """The multilingual path's logit without its bias, divided by ``w_dense``."""
    weights = reranker.model.settings.multilingual
    return (weights.logits(columns) - weights.bias) / weights.w_dense


def main() -> None:
    reranker = Reranker.from_pretrained("m0rank-offline")
    scale, bias = cross_lingual_calibration(reranker)
    report: dict[str, object] = {"cross_lingual_scale": round(scale, 3),
                                 "cross_lingual_bias": round(bias, 3)}
    for name, grid in logit_grids(reranker, scale, bias).items():
        report[name] = {"calibration": calibration(grid, N),
                        "calibration_reverse": calibration_reverse(grid, N),
                        "mixed_lists": mixed_lists(grid, N)}
    print(json.dumps(report, indent=2))
    write_result("offline_cross_calibration", report)


if __name__ == "__main__":
    main()
