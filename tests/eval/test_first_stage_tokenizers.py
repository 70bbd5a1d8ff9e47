"""The harness's BM25 with CJK- and German-aware tokens, chosen by script or by option."""

from __future__ import annotations

import logging
import re

import pytest

from m0rank import InvalidInputError
from m0rank.eval import Collection, Item, bm25_run
from m0rank.eval.first_stage import choose_tokenizer

ZH_DOCS = {
    "tower": "埃菲尔铁塔位于巴黎，高三百三十米，是法国最著名的建筑。",
    "wall": "长城是中国古代的军事防御工程，全长两万多公里。",
    "panda": "大熊猫主要生活在四川的山区，以竹子为食。",
    "tea": "龙井茶产于杭州西湖一带，是中国十大名茶之一。",
}
ZH_QUERIES = {"q1": "埃菲尔铁塔有多高？", "q2": "大熊猫吃什么？", "q3": "龙井茶产于哪里？"}
ZH_QRELS = {"q1": {"tower": 1}, "q2": {"panda": 1}, "q3": {"tea": 1}}


def _collection(docs: dict[str, str], queries: dict[str, str],
                qrels: dict[str, dict[str, int]], name: str) -> Collection:
    return Collection(name=name, corpus={d: Item(text=t) for d, t in docs.items()},
                      queries={q: Item(text=t) for q, t in queries.items()}, qrels=qrels)


@pytest.mark.parametrize("tokenizer", ["auto", "chinese", "chinese-jieba", "chinese-jieba+bigrams"])
def test_chinese_toy_collection_ranks_the_right_paragraph_first(tokenizer: str) -> None:
    run = bm25_run(_collection(ZH_DOCS, ZH_QUERIES, ZH_QRELS, "zh-toy"), k=4,
                   tokenizer=tokenizer)
    for qid, relevant in ZH_QRELS.items():
        assert max(run[qid], key=run[qid].get) == next(iter(relevant)), (qid, run[qid])


def test_whitespace_tokens_on_chinese_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="m0rank.eval.first_stage"):
        bm25_run(_collection(ZH_DOCS, ZH_QUERIES, ZH_QRELS, "zh-toy"), tokenizer="bm25s-en")
    assert "zh-toy: the collection is written mostly in CJK ideographs" in caplog.text


def test_auto_picks_by_script_and_language() -> None:
    assert choose_tokenizer("c", list(ZH_DOCS.values())) == "chinese"
    assert choose_tokenizer("c", ["Die Wasserversorgung der Stadt ist nicht sicher."]) == "german"
    assert choose_tokenizer("c", ["The water supply of the city is safe."]) == "bm25s-en"


def test_german_compounds_meet_their_parts() -> None:
    docs = {"a": "Die Wasserversorgung der Stadt wurde erneuert.",
            "b": "Das Wasser im See ist kalt.", "c": "Die Versorgung mit Strom fiel aus.",
            "d": "Der Zug fährt um acht Uhr."}
    coll = _collection(docs, {"q": "Versorgung mit Wasser in der Stadt"}, {"q": {"a": 1}}, "de")
    run = bm25_run(coll, k=4, tokenizer="german")
    assert max(run["q"], key=run["q"].get) == "a"


def test_unknown_tokenizer_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=re.escape("tokenizer must be one of auto, "
                                                          "bm25s-en, english")):
        choose_tokenizer("c", ["x"], "klingon")


def test_eval_options_and_cli_take_the_bm25_tokenizer() -> None:
    import argparse

    import pytest

    from m0rank.cli.eval import add_arguments
    from m0rank.errors import InvalidInputError
    from m0rank.eval.runner import EvalOptions

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--data", "d", "--bm25-tokenizer", "chinese-jieba"])
    assert args.bm25_tokenizer == "chinese-jieba"
    assert EvalOptions(bm25_tokenizer="chinese").bm25_tokenizer == "chinese"
    with pytest.raises(InvalidInputError, match="bm25_tokenizer must be one of auto, "):
        EvalOptions(bm25_tokenizer="klingon")
