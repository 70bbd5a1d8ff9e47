"""Engine scheduling: packed planning, launch/collect overlap, threaded and chunked preparing."""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

import numpy as np
import pytest
import torch

import m0rank.engine.engine as engine_module
from m0rank.config import EngineConfig, ScoreOptions
from m0rank.engine import Engine
from m0rank.engine.batching import plan_packed_batches
from m0rank.errors import InvalidInputError
from m0rank.model.base import PreparedPair, RerankerArchitecture
from m0rank.types import Document


@pytest.mark.parametrize("seed", range(20))
def test_packed_plan_covers_every_item_once_within_budget(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(1, 900) for _ in range(rng.randint(1, 150))]
    max_tokens, max_size = rng.choice([256, 1024, 4096]), rng.choice([1, 4, 64])
    batches = plan_packed_batches(lengths, max_tokens, max_size)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    for batch in batches:
        assert 1 <= len(batch) <= max_size
        assert sum(lengths[i] for i in batch) <= max_tokens or len(batch) == 1


def test_packed_plan_fills_batches_first_fit_decreasing() -> None:
    assert plan_packed_batches([60, 50, 40, 30], max_tokens=100, max_size=8) == [[0, 2], [1, 3]]
    assert plan_packed_batches([300, 10], max_tokens=100, max_size=8) == [[0], [1]]
    assert plan_packed_batches([], 100, 4) == []
    # Padded planning would need 3 batches here (rows x longest); packing needs one.
    assert plan_packed_batches([90, 5, 5], max_tokens=100, max_size=8) == [[0, 1, 2]]


class _CountingModel(RerankerArchitecture):
    """Scores a pair by its text length; records the order of launch/collect calls."""

    architecture_names = ("Counting",)
    parallel_preprocess = True

    def __init__(self, packs: bool, pipelined: bool) -> None:
        self.packs_sequences = packs
        self.events: list[str] = []
        self.batches: list[int] = []
        self.overlaps_batches = pipelined
        if pipelined:
            self.launch = self._launch
            self.collect = self._collect

    @classmethod
    def load(cls, path, config, options):  # noqa: ANN001, ANN206
        raise NotImplementedError

    def preprocess(self, query: Document, document: Document, options: ScoreOptions,
                   field: str) -> PreparedPair:
        if document.text == "bad":
            raise InvalidInputError(f"{field}: bad document")
        return PreparedPair(num_tokens=len(document.text or ""), payload=document.text)

    def forward(self, batch: Sequence[PreparedPair]) -> torch.Tensor:
        return self._collect(self._launch(batch))

    def _launch(self, batch: Sequence[PreparedPair]) -> torch.Tensor:
        self.batches.append(len(batch))
        self.events.append(f"launch{len(self.batches)}")
        return torch.tensor([float(p.num_tokens) for p in batch])

    def _collect(self, logits: torch.Tensor) -> torch.Tensor:
        self.events.append("collect")
        return logits

    def postprocess(self, logits: torch.Tensor) -> list[float]:
        return (logits / 100).tolist()


def _pairs(lengths: Sequence[int]) -> list[tuple[Document, Document]]:
    return [(Document(text="q"), Document(text="x" * n)) for n in lengths]


def test_next_batch_is_launched_before_the_previous_is_collected() -> None:
    model = _CountingModel(packs=False, pipelined=True)
    engine = Engine(model, EngineConfig(max_batch_tokens=10, max_batch_size=1))
    scores = engine.score(_pairs([3, 1, 2]), ScoreOptions())
    assert [s.logit for s in scores] == [3.0, 1.0, 2.0]  # input order restored
    assert model.events == ["launch1", "launch2", "collect", "launch3", "collect", "collect"]


def test_packing_model_gets_real_token_budget() -> None:
    lengths = [90, 5, 5, 40, 40]
    packed = _CountingModel(packs=True, pipelined=False)
    Engine(packed, EngineConfig(max_batch_tokens=100, max_batch_size=8)).score(
        _pairs(lengths), ScoreOptions())
    padded = _CountingModel(packs=False, pipelined=False)
    Engine(padded, EngineConfig(max_batch_tokens=100, max_batch_size=8)).score(
        _pairs(lengths), ScoreOptions())
    assert sorted(packed.batches) == [2, 3]  # [90, 5, 5] and [40, 40]
    assert len(padded.batches) > len(packed.batches)


def test_threaded_prepare_keeps_order_and_raises_first_bad_pair() -> None:
    engine = Engine(_CountingModel(packs=True, pipelined=False), prepare_workers=4)
    prepared = engine.prepare(_pairs(range(1, 40)), ScoreOptions())
    assert [p.num_tokens for p in prepared] == list(range(1, 40))
    pairs = _pairs([1, 2]) + [(Document(text="q"), Document(text="bad"))] * 2 + _pairs([3])
    with pytest.raises(InvalidInputError, match=re.escape("documents[2]: bad document")):
        engine.prepare(pairs, ScoreOptions(), [f"documents[{i}]" for i in range(len(pairs))])


def test_models_not_declaring_thread_safety_are_prepared_in_order() -> None:
    import threading

    class Sequential(_CountingModel):
        parallel_preprocess = False

        def preprocess(self, query, document, options, field):  # noqa: ANN001, ANN202
            self.events.append(threading.current_thread().name)
            return super().preprocess(query, document, options, field)

    model = Sequential(packs=True, pipelined=False)
    Engine(model, prepare_workers=4).prepare(_pairs(range(1, 9)), ScoreOptions())
    assert set(model.events) == {threading.current_thread().name}


def test_chunked_score_equals_single_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = _pairs([7, 3, 9, 1, 4, 4, 8])
    whole = Engine(_CountingModel(packs=True, pipelined=True)).score(pairs, ScoreOptions())
    monkeypatch.setattr(engine_module, "PREPARE_CHUNK", 3)
    model = _CountingModel(packs=True, pipelined=True)
    chunked = Engine(model).score(pairs, ScoreOptions())
    assert chunked == whole
    assert len(model.batches) == 3  # one micro-batch per chunk of 3, 3, 1 pairs


def test_threaded_prepare_of_real_model_matches_sequential(m0_model) -> None:  # noqa: ANN001
    rng = random.Random(3)
    words = ["alpha", "beta", "Straße", "数据", "markdown", "7", "reranker"]
    documents = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 80)))
                 for _ in range(48)]
    pairs = [(Document(text="query text"), Document(text=d)) for d in documents]
    options = ScoreOptions(max_length=2048, max_doc_length=24)
    sequential = Engine(m0_model, prepare_workers=1).prepare(pairs, options)
    threaded = Engine(m0_model, prepare_workers=8).prepare(pairs, options)
    assert [p.payload.input_ids for p in threaded] == [p.payload.input_ids for p in sequential]


def test_engine_scores_match_forward_of_each_pair(m0_model) -> None:  # noqa: ANN001
    pairs = [(Document(text="q"), Document(text="word " * n)) for n in (3, 60, 17, 200, 1)]
    engine = Engine(m0_model, EngineConfig(max_batch_tokens=300, max_batch_size=3))
    scores = [s.logit for s in engine.score(pairs, ScoreOptions())]
    alone = [m0_model.forward(engine.prepare([pair], ScoreOptions())).item() for pair in pairs]
    np.testing.assert_allclose(scores, alone, atol=1e-5, rtol=0)


def test_chunked_score_shows_one_progress_bar(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setattr(engine_module, "PREPARE_CHUNK", 3)
    engine = Engine(_CountingModel(packs=True, pipelined=True),
                    EngineConfig(max_batch_tokens=4, max_batch_size=1, show_progress=True))
    engine.score(_pairs([1, 2, 3, 1, 2, 3, 1]), ScoreOptions())
    err = capsys.readouterr().err
    assert "7/7" in err and "3/3" not in err
