"""Score a collection: first stage, rerank the top k through the public API, compute metrics.

The model is anything with ``Reranker.score(query, documents, max_length=...)`` returning
objects with a ``.score`` (an :class:`m0rank.Reranker`); this module never reaches into the
engine or the model families. Every (query, document) score goes through the
:class:`~m0rank.eval.cache.ScoreCache` when one is given.

:func:`run_evaluation` is the whole of ``m0rank eval`` as a function: folders are read into
typed :class:`BeirDataset` / :class:`WinogroundDataset` values with their first stage, each
model is loaded by the caller's ``load`` and scored on each dataset, and the rows come back
in an :class:`EvalReport` (the CLI only parses flags and prints or saves that report).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from m0rank import InvalidInputError, PairScore
from m0rank.eval.cache import ScoreCache, model_fingerprint
from m0rank.eval.datasets import (
    Collection,
    WinogroundExample,
    is_winoground,
    load_beir,
    load_winoground,
)
from m0rank.eval.first_stage import (
    TOKENIZERS,
    Run,
    all_documents_run,
    bm25_run,
    ranked_ids,
    read_trec_run,
    top_k,
)
from m0rank.eval.metrics import mean_over_queries, parse_metric, winoground_scores

__all__ = ["Scorer", "NamedScorer", "DatasetResult", "evaluate_run", "rerank_collection",
           "first_stage_result", "model_result", "winoground_result", "DEFAULT_METRICS",
           "WINOGROUND_METRICS", "FirstStage", "EvalOptions", "CacheSpec", "BeirDataset",
           "WinogroundDataset", "Dataset", "SkippedCell", "EvalReport", "load_dataset",
           "first_stage_rows", "evaluate_model", "run_evaluation", "ALL_DOCUMENTS",
           "WINOGROUND_STAGE"]

logger = logging.getLogger(__name__)

DEFAULT_METRICS = ("ndcg@10", "recall@10", "mrr@10", "map@100")
WINOGROUND_METRICS = ("text", "image", "group")
# First-stage labels: "all documents" is a candidate set, not a ranking (it gets no row).
ALL_DOCUMENTS = "all documents"
WINOGROUND_STAGE = "pairs of captions and images"
FirstStage = Literal["auto", "bm25", "all"]
_FIRST_STAGES = ("auto", "bm25", "all")


class Scorer(Protocol):
    """What the harness needs from a model: :meth:`m0rank.Reranker.score`."""

    def score(self, query: Any, documents: Sequence[Any], *,
              max_length: int | None = None) -> list[PairScore]: ...


class NamedScorer(Scorer, Protocol):
    """A :class:`Scorer` that names itself in the table (``Reranker.model_name``)."""

    @property
    def model_name(self) -> str: ...


ModelLoader = Callable[[str | None], NamedScorer]


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    """How :func:`run_evaluation` builds first stages and reranks (``m0rank eval``'s flags).

    Args:
        split: Qrels split file of BEIR-layout folders (``qrels/<split>.tsv``).
        max_queries: Only the first N judged queries (quick checks); ``None``: all.
        first_stage: ``bm25`` over document text, ``all`` documents, or ``auto``: BM25 when
            every query and some documents have text, else all documents.
        run_file: A TREC run file reranked instead (for every BEIR-layout folder).
        top_k: Candidates reranked per query.
        metrics: Metric names; the first is the table's headline.
        max_length: Longest prompt in tokens (``None``: the model's default).
        show_progress: Progress bars over queries.
        bm25_tokenizer: Tokens of the BM25 first stage (``m0rank.eval.TOKENIZERS``;
            ``auto`` chooses by the collection's script and language).

    Raises:
        InvalidInputError: An unknown metric or first stage, or ``top_k`` < 1.
    """

    split: str = "test"
    max_queries: int | None = None
    first_stage: FirstStage = "auto"
    run_file: Path | None = None
    top_k: int = 100
    metrics: tuple[str, ...] = DEFAULT_METRICS
    max_length: int | None = None
    show_progress: bool = False
    bm25_tokenizer: str = "auto"

    def __post_init__(self) -> None:
        if self.bm25_tokenizer not in TOKENIZERS:
            raise InvalidInputError(f"bm25_tokenizer must be one of {', '.join(TOKENIZERS)}, "
                                    f"got {self.bm25_tokenizer!r}")
        if self.top_k < 1:
            raise InvalidInputError(f"top_k must be >= 1, got {self.top_k}")
        if self.first_stage not in _FIRST_STAGES:
            raise InvalidInputError(
                f"first_stage must be one of {_FIRST_STAGES}, got {self.first_stage!r}")
        if not self.metrics:
            raise InvalidInputError("metrics must name at least one metric")
        for metric in self.metrics:
            parse_metric(metric)


@dataclass(frozen=True, kw_only=True)
class CacheSpec:
    """Where scores are cached: one SQLite file, keyed by model, dataset and these options.

    Args:
        path: The SQLite file.
        options: Everything besides the model and the dataset that changes scores
            (``max_length``, ``dtype``, pixel budget...).
    """

    path: Path
    options: Mapping[str, Any] = field(default_factory=dict)

    def open(self, model_key: str, dataset: str) -> ScoreCache:
        """The cache of one model on one dataset."""
        return ScoreCache(self.path, model=model_key, dataset=dataset,
                          options=dict(self.options))


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR-layout collection with its first stage (``first_stage_label`` names it)."""

    collection: Collection
    first_stage: Run
    first_stage_label: str

    @property
    def name(self) -> str:
        """Column label."""
        return self.collection.name


@dataclass(frozen=True)
class WinogroundDataset:
    """Winoground-layout examples: every caption is scored against both images."""

    name: str
    examples: tuple[WinogroundExample, ...]

    @property
    def first_stage_label(self) -> str:
        """There is no first stage: every caption meets both images."""
        return WINOGROUND_STAGE


Dataset = BeirDataset | WinogroundDataset


@dataclass(frozen=True)
class SkippedCell:
    """A model that cannot read a dataset (a text model on page images...): an empty cell."""

    model: str
    dataset: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        """The JSON form (``{"model", "dataset", "reason"}``)."""
        return {"model": self.model, "dataset": self.dataset, "reason": self.reason}

    def note(self) -> str:
        """The line printed under the table."""
        return f"– {self.model} on {self.dataset}: not run ({self.reason})"


@dataclass(frozen=True)
class EvalReport:
    """Everything one evaluation produced.

    Attributes:
        results: First-stage rows, then each model's rows, in dataset order.
        skipped: Cells left empty, with the reason.
        first_stages: Dataset name -> first-stage label.
        options: The options it ran with.
        data: The folders read.
        models: The model names asked for.
    """

    results: tuple[DatasetResult, ...]
    skipped: tuple[SkippedCell, ...]
    first_stages: dict[str, str]
    options: EvalOptions
    data: tuple[Path, ...] = ()
    models: tuple[str | None, ...] = ()

    def settings(self) -> dict[str, Any]:
        """What ran, as stored in the JSON report."""
        options = self.options
        return {"data": [str(path) for path in self.data], "split": options.split,
                "first_stage": self.first_stages, "top_k": options.top_k,
                "metrics": list(options.metrics), "models": list(self.models),
                "max_queries": options.max_queries, "max_length": options.max_length}


@dataclass(frozen=True)
class DatasetResult:
    """One model on one dataset.

    Attributes:
        model: Row label (``"BM25"`` or the model name).
        dataset: Column label.
        metrics: Metric name -> mean value in [0, 1].
        per_query: Metric name -> query id -> value (for box plots and significance tests).
        pairs_scored: Pairs the model scored in this run.
        pairs_cached: Pairs read from the score cache instead.
        seconds: Wall time of this evaluation.
    """

    model: str
    dataset: str
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    pairs_scored: int = 0
    pairs_cached: int = 0
    seconds: float = 0.0


def evaluate_run(run: Run, qrels: dict[str, dict[str, int]],
                 metrics: Iterable[str]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Means and per-query values of ``metrics`` for a scored run."""
    ranked = {qid: ranked_ids(scores) for qid, scores in run.items()}
    means, per_query = {}, {}
    for metric in metrics:
        means[metric], per_query[metric] = mean_over_queries(ranked, qrels, metric)
    return means, per_query


def first_stage_result(label: str, collection: Collection, run: Run,
                       metrics: Sequence[str] = DEFAULT_METRICS) -> DatasetResult:
    """The first stage's own ranking as a row of the table."""
    means, per_query = evaluate_run(run, collection.qrels, metrics)
    return DatasetResult(model=label, dataset=collection.name, metrics=means, per_query=per_query)


def rerank_collection(scorer: Scorer, collection: Collection, candidates: dict[str, list[str]],
                      cache: ScoreCache | None = None, *, max_length: int | None = None,
                      show_progress: bool = False) -> tuple[Run, int, int]:
    """Score every query's candidates; returns the reranked run, pairs scored, pairs cached."""
    run: Run = {}
    scored = cached_count = 0
    for qid in _progress(list(candidates), show_progress, collection.name):
        doc_ids = candidates[qid]
        cached = cache.get(qid, doc_ids) if cache else {}
        missing = [d for d in doc_ids if d not in cached]
        fresh = _score(scorer, collection, qid, missing, max_length) if missing else {}
        if cache and fresh:
            cache.put(qid, fresh)
        run[qid] = {**cached, **fresh}
        scored, cached_count = scored + len(fresh), cached_count + len(cached)
    return run, scored, cached_count


def model_result(label: str, scorer: Scorer, collection: Collection, first_stage: Run, *,
                 k: int = 100, metrics: Sequence[str] = DEFAULT_METRICS,
                 cache: ScoreCache | None = None, max_length: int | None = None,
                 show_progress: bool = False) -> DatasetResult:
    """Rerank the top ``k`` of ``first_stage`` with ``scorer`` and evaluate."""
    start = time.perf_counter()
    candidates = top_k(first_stage, k)
    run, scored, cached = rerank_collection(scorer, collection, candidates, cache,
                                            max_length=max_length, show_progress=show_progress)
    means, per_query = evaluate_run(run, collection.qrels, metrics)
    return DatasetResult(model=label, dataset=collection.name, metrics=means,
                         per_query=per_query, pairs_scored=scored, pairs_cached=cached,
                         seconds=time.perf_counter() - start)


def winoground_result(label: str, scorer: Scorer, name: str,
                      examples: Sequence[WinogroundExample], cache: ScoreCache | None = None,
                      *, show_progress: bool = False) -> DatasetResult:
    """Text, image and group scores: each caption is a query, both images its documents."""
    start = time.perf_counter()
    matrices: list[list[list[float]]] = []
    per_example: dict[str, dict[str, float]] = {metric: {} for metric in WINOGROUND_METRICS}
    scored = cached_count = 0
    for example in _progress(list(examples), show_progress, name):
        rows = []
        for c, caption in enumerate(example.captions):
            qid, doc_ids = f"{example.id}/caption_{c}", ["image_0", "image_1"]
            cached = cache.get(qid, doc_ids) if cache else {}
            if len(cached) < 2:
                results = scorer.score(caption, [{"image": path} for path in example.images])
                cached = {d: r.score for d, r in zip(doc_ids, results, strict=True)}
                scored += 2
                if cache:
                    cache.put(qid, cached)
            else:
                cached_count += 2
            rows.append([cached["image_0"], cached["image_1"]])
        matrices.append(rows)
        for metric, value in winoground_scores([rows]).items():
            per_example[metric][example.id] = value
    return DatasetResult(model=label, dataset=name, metrics=winoground_scores(matrices),
                         per_query=per_example, pairs_scored=scored, pairs_cached=cached_count,
                         seconds=time.perf_counter() - start)


def load_dataset(path: Path, options: EvalOptions) -> Dataset:
    """Read a BEIR- or Winoground-layout folder and build its first stage."""
    if is_winoground(path):
        examples = load_winoground(path)[: options.max_queries]
        return WinogroundDataset(name=path.name, examples=tuple(examples))
    collection = _subset(load_beir(path, split=options.split), options.max_queries)
    if options.run_file is not None:
        return BeirDataset(collection, read_trec_run(options.run_file),
                           f"run:{options.run_file.name}")
    if options.first_stage == "all" or (options.first_stage == "auto"
                                        and not _has_text(collection)):
        return BeirDataset(collection, all_documents_run(collection), ALL_DOCUMENTS)
    return BeirDataset(collection, bm25_run(collection, k=options.top_k,
                                                   tokenizer=options.bm25_tokenizer), "BM25")


def first_stage_rows(datasets: Sequence[Dataset],
                     metrics: Sequence[str] = DEFAULT_METRICS) -> list[DatasetResult]:
    """A row for each ranking first stage (BM25, run files; not "all documents")."""
    return [first_stage_result(d.first_stage_label, d.collection, d.first_stage, metrics)
            for d in datasets
            if isinstance(d, BeirDataset) and d.first_stage_label != ALL_DOCUMENTS]


def evaluate_model(name: str | None, datasets: Sequence[Dataset], options: EvalOptions, *,
                   load: ModelLoader, cache: CacheSpec | None = None,
                   ) -> tuple[list[DatasetResult], list[SkippedCell]]:
    """Rows of one model on every dataset, and the datasets it cannot read.

    Args:
        name: Folder, hub id or built-in name; ``None``, ``""`` or ``"default"``: the
            built-in default model.
        datasets: From :func:`load_dataset`.
        options: Top k, metrics, truncation.
        load: Builds the model from ``name`` (e.g. ``Reranker.from_pretrained``).
        cache: Score cache; ``None`` scores every pair afresh.
    """
    model_arg = None if name in (None, "", "default") else name
    scorer = load(model_arg)
    key = model_fingerprint(model_arg)
    rows: list[DatasetResult] = []
    skipped: list[SkippedCell] = []
    for dataset in datasets:
        with _open_cache(cache, key, dataset.name) as score_cache:
            try:
                rows.append(_model_row(scorer, dataset, options, score_cache))
            except InvalidInputError as exc:
                logger.warning("%s on %s skipped: %s", scorer.model_name, dataset.name, exc)
                skipped.append(SkippedCell(scorer.model_name, dataset.name, str(exc)))
    return rows, skipped


def run_evaluation(data: Sequence[Path], models: Sequence[str | None], options: EvalOptions,
                   *, load: ModelLoader, cache: CacheSpec | None = None) -> EvalReport:
    """``m0rank eval`` as a function: first stages, then every model on every dataset.

    Example:
        >>> from m0rank import Reranker
        >>> report = run_evaluation([Path("cranfield")], ["m0rank-offline"],  # doctest: +SKIP
        ...                         EvalOptions(top_k=20), load=Reranker.from_pretrained)
        >>> [row.model for row in report.results]  # doctest: +SKIP
        ['BM25', 'm0rank-offline']
    """
    datasets = [load_dataset(path, options) for path in data]
    results = first_stage_rows(datasets, options.metrics)
    skipped: list[SkippedCell] = []
    for name in models:
        rows, skips = evaluate_model(name, datasets, options, load=load, cache=cache)
        results.extend(rows)
        skipped.extend(skips)
    stages = {d.name: d.first_stage_label for d in datasets}
    return EvalReport(tuple(results), tuple(skipped), stages, options, data=tuple(data),
                      models=tuple(models))


def _model_row(scorer: NamedScorer, dataset: Dataset, options: EvalOptions,
               cache: ScoreCache | None) -> DatasetResult:
    if isinstance(dataset, WinogroundDataset):
        return winoground_result(scorer.model_name, scorer, dataset.name, dataset.examples,
                                 cache, show_progress=options.show_progress)
    return model_result(scorer.model_name, scorer, dataset.collection, dataset.first_stage,
                        k=options.top_k, metrics=options.metrics, cache=cache,
                        max_length=options.max_length, show_progress=options.show_progress)


@contextmanager
def _open_cache(cache: CacheSpec | None, key: str, dataset: str) -> Iterator[ScoreCache | None]:
    if cache is None:
        yield None
        return
    with cache.open(key, dataset) as score_cache:
        yield score_cache


def _has_text(collection: Collection) -> bool:
    return all(q.text for q in collection.queries.values()) and \
        any(d.text for d in collection.corpus.values())


def _subset(collection: Collection, max_queries: int | None) -> Collection:
    if max_queries is None:
        return collection
    keep = list(collection.qrels)[:max_queries]
    return replace(collection, queries={q: collection.queries[q] for q in keep},
                   qrels={q: collection.qrels[q] for q in keep})


def _score(scorer: Scorer, collection: Collection, qid: str, doc_ids: list[str],
           max_length: int | None) -> dict[str, float]:
    """Model scores of ``doc_ids``; empty documents score 0 without reaching the model."""
    scores = {d: 0.0 for d in doc_ids if collection.corpus[d].is_empty}
    judged = [d for d in doc_ids if d not in scores]
    if judged and not collection.queries[qid].is_empty:
        query = collection.queries[qid].to_input()
        documents = [collection.corpus[d].to_input() for d in judged]
        results = scorer.score(query, documents, max_length=max_length)
        scores.update({d: float(r.score) for d, r in zip(judged, results, strict=True)})
    return {d: scores.get(d, 0.0) for d in doc_ids}


def _progress(items: list[Any], show: bool, name: str) -> Iterable[Any]:
    if not show:
        return items
    from tqdm.auto import tqdm

    bar: Iterable[Any] = tqdm(items, desc=name, unit="query")
    return bar
