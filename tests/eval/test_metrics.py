"""Our metrics against hand-computed values and against ranx and pytrec_eval on random runs."""

from __future__ import annotations

import math
import random
import re

import pytest

from m0rank import InvalidInputError
from m0rank.eval.first_stage import ranked_ids
from m0rank.eval.metrics import (
    map_at_k,
    mean_over_queries,
    mrr_at_k,
    ndcg_at_k,
    parse_metric,
    precision_at_k,
    recall_at_k,
    winoground_scores,
)

RANKING = ["a", "b", "c", "d"]
QRELS = {"b": 1, "d": 2, "e": 1, "x": 0}


def test_hand_computed_values() -> None:
    idcg3 = 2 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(RANKING, QRELS, 3) == pytest.approx((1 / math.log2(3)) / idcg3, abs=1e-12)
    dcg4 = 1 / math.log2(3) + 2 / math.log2(5)
    assert ndcg_at_k(RANKING, QRELS, 4) == pytest.approx(dcg4 / idcg3, abs=1e-12)
    assert recall_at_k(RANKING, QRELS, 3) == pytest.approx(1 / 3)
    assert recall_at_k(RANKING, QRELS, 4) == pytest.approx(2 / 3)
    assert precision_at_k(RANKING, QRELS, 4) == pytest.approx(2 / 4)
    assert mrr_at_k(RANKING, QRELS, 10) == pytest.approx(1 / 2)
    assert mrr_at_k(RANKING, QRELS, 1) == 0.0
    assert map_at_k(RANKING, QRELS, 4) == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert map_at_k(RANKING, QRELS, 2) == pytest.approx((1 / 2) / 3)


def test_no_relevant_documents_and_empty_ranking() -> None:
    for fn in (ndcg_at_k, recall_at_k, mrr_at_k, map_at_k):
        assert fn(RANKING, {"a": 0}, 10) == 0.0
        assert fn([], QRELS, 10) == 0.0
    # Judged queries missing from the run count 0; queries with no relevant doc are skipped.
    mean, per_query = mean_over_queries({"q1": ["b"]}, {"q1": {"b": 1}, "q2": {"c": 1},
                                                        "q3": {"a": 0}}, "ndcg@10")
    assert per_query == {"q1": 1.0, "q2": 0.0}
    assert mean == 0.5


def test_winoground_scores_hand_cases() -> None:
    perfect = [[0.9, 0.1], [0.2, 0.8]]
    text_only = [[0.9, 0.95], [0.2, 0.96]]   # right caption per image, wrong image per caption
    image_only = [[0.5, 0.1], [0.6, 0.7]]    # right image per caption, wrong caption for image 0
    tie = [[0.5, 0.5], [0.5, 0.5]]
    assert winoground_scores([perfect]) == {"text": 1.0, "image": 1.0, "group": 1.0}
    assert winoground_scores([text_only]) == {"text": 1.0, "image": 0.0, "group": 0.0}
    assert winoground_scores([image_only]) == {"text": 0.0, "image": 1.0, "group": 0.0}
    assert winoground_scores([tie]) == {"text": 0.0, "image": 0.0, "group": 0.0}
    assert winoground_scores([perfect, text_only, image_only, tie]) == {
        "text": 0.5, "image": 0.5, "group": 0.25}


def test_parse_metric_errors() -> None:
    assert parse_metric("NDCG@5")[1] == 5
    for bad in ("ndcg", "ndcg@0", "bleu@10", "recall@x"):
        with pytest.raises(InvalidInputError, match=re.escape(f"got {bad!r}")):
            parse_metric(bad)


def _random_case(seed: int) -> tuple[dict, dict]:
    rng = random.Random(seed)
    docs = [f"d{i}" for i in range(60)]
    qrels, run = {}, {}
    for q in range(25):
        judged = rng.sample(docs, rng.randint(1, 12))
        grades = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        grades[judged[0]] = max(grades[judged[0]], 1)  # at least one relevant document
        qrels[f"q{q}"] = grades
        retrieved = rng.sample(docs, rng.randint(1, 60))
        run[f"q{q}"] = {d: rng.random() for d in retrieved}  # distinct scores: no ties
    return qrels, run


OURS_VS_RANX = {"ndcg@10": "ndcg@10", "ndcg@5": "ndcg@5", "recall@10": "recall@10",
                "recall@5": "recall@5", "mrr@10": "mrr@10", "map@100": "map@100",
                "map@10": "map@10", "precision@10": "precision@10"}


@pytest.mark.slow  # ranx JIT-compiles its metrics with numba: minutes on a busy 2-core box
def test_equal_to_ranx_on_random_runs() -> None:
    from ranx import Qrels, Run, evaluate

    for seed in range(12):
        qrels, run = _random_case(seed)
        ranked = {q: ranked_ids(scores) for q, scores in run.items()}
        ranx_run = Run(run)
        evaluate(Qrels(qrels), ranx_run, list(OURS_VS_RANX.values()))
        for ours_name, ranx_name in OURS_VS_RANX.items():
            _, per_query = mean_over_queries(ranked, qrels, ours_name)
            for qid in qrels:
                assert per_query[qid] == pytest.approx(
                    float(ranx_run.scores[ranx_name][qid]), abs=1e-9), (seed, ours_name, qid)


@pytest.mark.parametrize("seed", range(12))
def test_equal_to_pytrec_eval_on_random_runs(seed: int) -> None:
    import pytrec_eval

    qrels, run = _random_case(seed)
    ranked = {q: ranked_ids(scores) for q, scores in run.items()}
    measures = {"ndcg_cut.5,10", "recall.5,10", "map_cut.10,100", "recip_rank", "P.10"}
    theirs = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    pairs = {"ndcg@10": "ndcg_cut_10", "ndcg@5": "ndcg_cut_5", "recall@10": "recall_10",
             "recall@5": "recall_5", "map@100": "map_cut_100", "map@10": "map_cut_10",
             "mrr@1000": "recip_rank", "precision@10": "P_10"}
    for ours_name, trec_name in pairs.items():
        _, per_query = mean_over_queries(ranked, qrels, ours_name)
        for qid in qrels:
            assert per_query[qid] == pytest.approx(theirs[qid][trec_name], abs=1e-9), (
                ours_name, qid)
