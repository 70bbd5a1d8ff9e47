"""The public Python API: :class:`Reranker`.

Example:
    >>> from m0rank import Reranker
    >>> reranker = Reranker.from_pretrained()            # built-in offline model
    >>> reranker = Reranker.from_pretrained("jinaai/jina-reranker-m0")  # or a local folder
    >>> results = reranker.rank("slm markdown", ["doc one", {"image": "page.png"}], top_n=1)
    >>> results[0].index, results[0].score
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from m0rank.config import (
    DEFAULT_MAX_LENGTH,
    DEFAULT_MAX_QUERY_LENGTH,
    EngineConfig,
    ImageLimits,
    ImageSizing,
    PdfLimits,
    ScoreOptions,
)
from m0rank.engine import Engine
from m0rank.engine.diversity import check_diversity, fingerprint, mark_duplicates
from m0rank.engine.ranking import check_top_n, rank_order
from m0rank.engine.units import Unit, chunk_units, document_unit, fold_windows, page_units
from m0rank.errors import InvalidInputError, describe_value
from m0rank.explain import Explanation, check_method, explain_pair
from m0rank.model.base import LoadOptions, RerankerArchitecture, display_name
from m0rank.model.loading import read_config, resolve_checkpoint_dir
from m0rank.model.registry import resolve_architecture
from m0rank.preprocessing.chunking import ChunkOptions
from m0rank.preprocessing.inputs import resolve_document, to_document, to_documents
from m0rank.preprocessing.pdf import page_document, parse_pages, read_pdf_bytes, render_pdf
from m0rank.types import Document, PairScore, RankResult

__all__ = ["Reranker", "ChunkedScorer", "DEFAULT_MODEL", "BUILTIN_MODELS", "select_device",
           "select_dtype"]

logger = logging.getLogger(__name__)

_BUILTIN_ROOT = Path(__file__).parent / "builtin"
# Names that resolve to model folders shipped inside the package (no download, no hub).
BUILTIN_MODELS: dict[str, Path] = {
    "m0rank-offline": _BUILTIN_ROOT / "offline-v2",
    "m0rank-offline-v1": _BUILTIN_ROOT / "offline-default",
    "m0rank-dummy": _BUILTIN_ROOT / "dummy",
}
DEFAULT_MODEL = "m0rank-offline"

_DTYPES = {
    "bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16",
    "half": "float16", "fp32": "float32", "float32": "float32", "float": "float32",
}
_SIDE_TYPES = ("text", "image")


class Reranker:
    """Scores documents against a query with any registered model family.

    Args:
        model: A loaded :class:`RerankerArchitecture`.
        engine_config: Micro-batch budget.
        image_limits: Limits applied when reading images.
        pdf_limits: Limits applied when reading PDFs (bytes, pages, render resolution).
    """

    def __init__(self, model: RerankerArchitecture, *, engine_config: EngineConfig | None = None,
                 image_limits: ImageLimits | None = None,
                 pdf_limits: PdfLimits | None = None) -> None:
        self.model = model
        self.engine = Engine(model, engine_config)
        self.image_limits = image_limits or ImageLimits()
        self.pdf_limits = pdf_limits or PdfLimits()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        dtype: Any = None,
        min_pixels: int = ImageSizing.min_pixels,
        max_pixels: int = ImageSizing.max_pixels,
        max_batch_tokens: int = EngineConfig.max_batch_tokens,
        max_batch_size: int = EngineConfig.max_batch_size,
        image_limits: ImageLimits | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        local_files_only: bool = False,
        show_progress: bool = False,
        vision_cache_bytes: int | None = None,
    ) -> Reranker:
        """Load a model from a local folder, the Hugging Face cache, the hub, or a built-in name.

        Args:
            name_or_path: Folder, hub id (``"jinaai/jina-reranker-m0"``) or built-in name;
                ``None`` picks the built-in offline model (:data:`DEFAULT_MODEL`).
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when available.
            dtype: ``torch.dtype`` or a name (``"bf16"``, ``"fp32"``...); default bf16 on CUDA,
                fp32 on CPU.
            min_pixels: Smallest image area after resizing (reference: 3136).
            max_pixels: Largest image area after resizing (reference: 602112).
            max_batch_tokens: Padded-token budget of a micro-batch.
            max_batch_size: Most pairs per micro-batch.
            image_limits: Limits when reading images (bytes, pixels, URL timeouts).
            revision: Hub revision.
            cache_dir: Hugging Face cache folder.
            local_files_only: Never use the network.
            show_progress: Progress bar over micro-batches on long inputs.
            vision_cache_bytes: Budget of the vision-feature cache (pages reranked against
                many queries are encoded once); ``None`` is the family's default, ``0`` off.

        Raises:
            ModelNotFoundError: The weights cannot be found.
            UnsupportedArchitectureError: ``config.json`` names no registered architecture.
            ModelLoadError: The files do not form a loadable checkpoint.
        """
        name = DEFAULT_MODEL if name_or_path is None else name_or_path
        path = BUILTIN_MODELS.get(str(name)) or resolve_checkpoint_dir(
            name, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        config = read_config(path)
        architecture = resolve_architecture(config, str(path))
        resolved_device = select_device(device)
        sizing = ImageSizing(min_pixels=min_pixels, max_pixels=max_pixels)
        options = LoadOptions(device=resolved_device, dtype=select_dtype(dtype, resolved_device),
                              image_sizing=sizing, vision_cache_bytes=vision_cache_bytes,
                              cache_dir=None if cache_dir is None else str(cache_dir),
                              local_files_only=local_files_only,
                              model_name=display_name(str(name)))
        model = architecture.load(path, config, options)
        logger.info("loaded %s (%s) on %s", path, type(model).__name__, resolved_device)
        engine_config = EngineConfig(max_batch_tokens=max_batch_tokens,
                                     max_batch_size=max_batch_size, show_progress=show_progress)
        return cls(model, engine_config=engine_config, image_limits=image_limits)

    @property
    def model_name(self) -> str:
        """Name reported in results and API responses."""
        return self.model.model_name

    def rank(
        self,
        query: Any,
        documents: Sequence[Any],
        *,
        top_n: int | None = None,
        return_documents: bool | str = False,
        max_length: int | None = None,
        max_doc_length: int | None = None,
        pages: Any = None,
        chunk_size: int | None = None,
        chunk_overlap: int = 0,
        dedup: bool = False,
        diversity: float | None = None,
    ) -> list[RankResult]:
        """Rank ``documents`` by relevance to ``query``, most relevant first.

        Args:
            query: Text, a ``PIL.Image``, a dict (``{"text"}``/``{"image"}``) or a Document.
            documents: A non-empty list of the same kinds, or ``{"pdf": SRC}`` (each page is
                ranked as its own result, ``page`` set); kinds may be mixed in one call.
            top_n: Keep the best ``top_n`` (``None``: all); pages count one each.
            return_documents: Attach each input document to its result; ``"chunk"`` attaches
                only the best window of a chunked text.
            max_length: Longest prompt in tokens (default 10240).
            max_doc_length: Longest text document in tokens (default derived).
            pages: 1-based pages read from PDFs without their own ``"pages"`` (``[1, 3]``,
                ``"1-3,7"``; ``None``: all, within ``PdfLimits.max_pages``).
            chunk_size: Split texts longer than this many tokens into windows and score each
                document by its best window (MaxP); ``None`` (default) truncates as the
                reference does. The result's ``chunk`` names the window.
            chunk_overlap: Tokens shared by consecutive windows.
            dedup: Mark near-duplicates of better-ranked documents (``duplicate_of``).
            diversity: Re-order by maximal marginal relevance with this λ in [0, 1].

        Returns:
            Results sorted by score descending (or by MMR); ties keep input order.

        Raises:
            InvalidInputError: Empty or malformed query/documents, bad options.
            ImageError: An image or PDF cannot be read or has an unusable size.
            InputTooLargeError: A PDF over the size or page limit.
        """
        check_top_n(top_n)
        check_diversity(diversity)
        originals = to_documents(documents)
        options = _score_options(max_length, None, max_doc_length)
        units, scores = self._score_units(
            to_document(query, "query"), originals, options, parse_pages(pages),
            _chunking(chunk_size, chunk_overlap))
        prints = [fingerprint(unit.source) for unit in units] if dedup or \
            diversity is not None else None
        ranked = rank_order([s.score for s in scores], top_n, diversity=diversity,
                            fingerprints=prints)
        duplicates = mark_duplicates(ranked, prints) if dedup and prints else {}
        return [
            RankResult(index=units[i].index, score=scores[i].score, warnings=scores[i].warnings,
                       page=units[i].page, chunk=scores[i].chunk,
                       duplicate_of=units[duplicates[i]].index if i in duplicates else None,
                       document=_returned(originals[units[i].index], units[i], return_documents))
            for i in ranked
        ]

    def score(
        self, query: Any, documents: Sequence[Any], *, max_length: int | None = None,
        max_doc_length: int | None = None, max_query_length: int | None = None,
        pages: Any = None, chunk_size: int | None = None, chunk_overlap: int = 0,
    ) -> list[PairScore]:
        """Score every document against ``query``, with logits and token counts (what the
        server and the evaluation harness build on).

        Results are in input order, one per document, except that a PDF gives one per page
        (``PairScore.page``). ``pages``, ``chunk_size`` and ``chunk_overlap`` work as in
        :meth:`rank`; a chunked document's ``num_tokens`` counts every window scored.
        """
        options = _score_options(max_length, max_query_length, max_doc_length)
        query_doc = to_document(query, "query")
        return self._score_units(query_doc, to_documents(documents), options,
                                 parse_pages(pages), _chunking(chunk_size, chunk_overlap))[1]

    def _score_documents(self, query: Document, documents: Sequence[Document],
                         options: ScoreOptions) -> list[PairScore]:
        """Resolve the coerced query and documents (images read once), then score every pair."""
        return self._score_units(query, documents, options, None, None)[1]

    def _score_units(self, query: Document, documents: Sequence[Document], options: ScoreOptions,
                     pages: tuple[int, ...] | None, chunking: ChunkOptions | None,
                     ) -> tuple[list[Unit], list[PairScore]]:
        """Expand PDFs into pages and long texts into windows, score every unit, fold the
        windows of each document into its best (see ``m0rank.engine.units``)."""
        query_doc = self._resolve(query, "query")
        units = chunk_units(self._units(documents, pages), chunking)
        scores = self.engine.score([(query_doc, unit.document) for unit in units], options,
                                   [unit.field for unit in units])
        return fold_windows(units, scores)

    def _units(self, documents: Sequence[Document], pages: tuple[int, ...] | None) -> list[Unit]:
        units: list[Unit] = []
        for index, document in enumerate(documents):
            field = f"documents[{index}]"
            if document.pdf is None:
                units.append(document_unit(index, self._resolve(document, field), field))
                continue
            data = read_pdf_bytes(document.pdf, f"{field}.pdf", self.pdf_limits,
                                  self.image_limits)
            rendered = render_pdf(data, f"{field}.pdf", pages=document.pages or pages,
                                  limits=self.pdf_limits)
            units.extend(page_units(index, rendered, field,
                                    use_text_layer=self.model.reads_text_layer))
        return units

    def explain(
        self, query: Any, document: Any, method: str = "occlusion", *,
        block: int | None = None, layers: Sequence[int] | None = None,
        heads: Sequence[int] | None = None, max_length: int | None = None,
        max_doc_length: int | None = None,
    ) -> Explanation:
        """Why ``document`` scores what it scores for ``query``.

        Args:
            query: As in :meth:`rank`.
            document: One document: text, an image, mixed, or ``{"pdf": SRC, "pages": [n]}``
                (one page; page 1 when ``pages`` is absent).
            method: ``"occlusion"`` (every family: cover a block, measure the score drop),
                ``"attention"`` (jina-reranker-m0: last-token attention over the image
                tokens, eager) or ``"gradient"`` (jina-reranker-m0: gradient x input).
            block: Occlusion block: cells per side for images, words for text (default: the
                smallest giving at most 64 variants).
            layers: Attention layers to average (default all; ``[-1]`` is the last).
            heads: Attention heads to average (default all).
            max_length: As in :meth:`rank`.
            max_doc_length: As in :meth:`rank`.

        Returns:
            An :class:`~m0rank.explain.Explanation`: ``score`` (served), ``method_score``,
            a ``heatmap`` with ``.overlay()`` for images, or ``spans`` for text.

        Raises:
            InvalidInputError: Bad input or option.
            UnsupportedOperationError: The family cannot run ``method``.
        """
        check_method(method)
        options = _score_options(max_length, None, max_doc_length)
        query_doc = self._resolve(to_document(query, "query"), "query")
        target = self._explained(to_document(document, "document"))

        def score(documents: Sequence[Document]) -> list[float]:
            pairs = [(query_doc, doc) for doc in documents]
            return [s.score for s in self.engine.score(pairs, options, ["document"] * len(pairs))]

        return explain_pair(self.model, score, query_doc, target, method=method,
                            options=options, block=block, layers=layers, heads=heads)

    def _explained(self, document: Document) -> Document:
        """The resolved document to explain; a PDF gives its one selected page."""
        if document.pdf is None:
            return self._resolve(document, "document")
        pages = document.pages or (1,)
        if len(pages) != 1:
            raise InvalidInputError(f"document.pages must name one page to explain, got "
                                    f"{list(pages)}")
        data = read_pdf_bytes(document.pdf, "document.pdf", self.pdf_limits, self.image_limits)
        [page] = render_pdf(data, "document.pdf", pages=pages, limits=self.pdf_limits)
        return page_document(page, use_text_layer=self.model.reads_text_layer)

    def chunked(self, chunk_size: int, chunk_overlap: int = 0) -> ChunkedScorer:
        """This reranker with chunking always on, for code that calls ``score`` without
        chunk options, such as the evaluation harness
        (``run_evaluation(..., load=lambda name: Reranker.from_pretrained(name).chunked(128))``).

        Raises:
            InvalidInputError: Bad ``chunk_size`` or ``chunk_overlap``.
        """
        return ChunkedScorer(self, ChunkOptions(chunk_size=chunk_size,
                                                chunk_overlap=chunk_overlap))

    def compute_score(
        self,
        pairs: Sequence[Any],
        batch_size: int = 8,
        max_length: int = 10240,
        max_query_length: int = 512,
        max_doc_length: int | None = None,
        query_type: str = "text",
        doc_type: str = "text",
        normalize_scores: bool = True,
        show_progress: bool = False,
    ) -> list[float] | float:
        """Drop-in for the reference remote code's ``compute_score``.

        ``pairs`` is a list of ``[query, document]``; one bare pair is accepted too.
        ``query_type`` / ``doc_type`` (``"text"`` or ``"image"``) apply to the whole call.
        Returns a list of floats, or a bare float when there is one pair (as the reference).

        ``normalize_scores=False`` returns the head's raw logits. (The reference accepts the
        flag but ignores it and always returns sigmoid scores; honouring it is how m0rank makes
        raw logits available.)
        """
        pairs = _normalise_pairs(pairs)
        for name, value in (("query_type", query_type), ("doc_type", doc_type)):
            if value not in _SIDE_TYPES:
                raise InvalidInputError(f"{name} must be 'text' or 'image', got {value!r}")
        options = _score_options(max_length, max_query_length, max_doc_length)
        documents = [
            (self._side(q, query_type, f"pairs[{i}][0]"), self._side(d, doc_type, f"pairs[{i}][1]"))
            for i, (q, d) in enumerate(pairs)
        ]
        engine = self.engine.with_config(EngineConfig(
            max_batch_tokens=self.engine.config.max_batch_tokens, max_batch_size=batch_size,
            show_progress=show_progress))
        results = engine.score(documents, options, [f"pairs[{i}]" for i in range(len(pairs))])
        values = [r.score if normalize_scores else r.logit for r in results]
        return values[0] if len(values) == 1 else values

    def save_pretrained(self, path: str | os.PathLike[str]) -> None:
        """Write the model in its family's released layout.

        Raises:
            UnsupportedOperationError: The family cannot save itself.
        """
        self.model.save_pretrained(Path(path))

    def _side(self, value: Any, kind: str, field: str) -> Document:
        if kind == "text":
            if not isinstance(value, str):
                raise InvalidInputError(f"{field} must be a string when its type is 'text', got "
                                        f"{describe_value(value)}")
            return to_document(value, field)
        return self._resolve(Document(images=(value,)), field)

    def _resolve(self, document: Document, field: str) -> Document:
        return resolve_document(document, field, limits=self.image_limits)


class ChunkedScorer:
    """A :class:`Reranker` whose ``score`` and ``rank`` always chunk long texts (MaxP); named
    ``"<model> (chunk SIZE/OVERLAP)"`` in evaluation tables. Made by :meth:`Reranker.chunked`.
    """

    def __init__(self, reranker: Reranker, options: ChunkOptions) -> None:
        self.reranker = reranker
        self.options = options

    @property
    def model_name(self) -> str:
        """The model's name and the chunk settings."""
        return (f"{self.reranker.model_name} (chunk {self.options.chunk_size}/"
                f"{self.options.chunk_overlap})")

    def score(self, query: Any, documents: Sequence[Any], **kwargs: Any) -> list[PairScore]:
        """:meth:`Reranker.score` with this chunking."""
        return self.reranker.score(query, documents, chunk_size=self.options.chunk_size,
                                   chunk_overlap=self.options.chunk_overlap, **kwargs)

    def rank(self, query: Any, documents: Sequence[Any], **kwargs: Any) -> list[RankResult]:
        """:meth:`Reranker.rank` with this chunking."""
        return self.reranker.rank(query, documents, chunk_size=self.options.chunk_size,
                                  chunk_overlap=self.options.chunk_overlap, **kwargs)


def select_device(device: str | None) -> str:
    """``device`` as given, or ``"cuda"`` when available, else ``"cpu"``."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidInputError(f"device must be like 'cpu' or 'cuda:0', got {device!r}") from None
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError(f"device {device!r} was requested but CUDA is not available")
    return str(device)


def select_dtype(dtype: Any, device: str) -> Any:
    """``torch.dtype`` from a dtype, a name, or ``None`` (bf16 on CUDA, fp32 on CPU)."""
    import torch

    if dtype is None:
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = _DTYPES.get(str(dtype).lower().removeprefix("torch."))
    if name is None:
        raise InvalidInputError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    return getattr(torch, name)


def _score_options(max_length: int | None, max_query_length: int | None,
                   max_doc_length: int | None) -> ScoreOptions:
    """Options with the reference's defaults. When only ``max_length`` is given and it is
    small, ``max_query_length`` shrinks to half of it (the reference would reject
    ``max_length < 1024`` with its default of 512); at 1024 and above it is 512 as there."""
    length = DEFAULT_MAX_LENGTH if max_length is None else max_length
    if max_query_length is None:
        max_query_length = DEFAULT_MAX_QUERY_LENGTH
        if isinstance(length, int) and not isinstance(length, bool):
            max_query_length = min(DEFAULT_MAX_QUERY_LENGTH, max(1, length // 2))
    return ScoreOptions(max_length=length, max_query_length=max_query_length,
                        max_doc_length=max_doc_length)


def _chunking(chunk_size: int | None, chunk_overlap: int) -> ChunkOptions | None:
    """Chunk options, or ``None`` (truncate as the reference) without ``chunk_size``."""
    if chunk_size is None:
        if chunk_overlap:
            raise InvalidInputError(f"chunk_overlap needs chunk_size, got chunk_overlap="
                                    f"{chunk_overlap!r} without it")
        return None
    return ChunkOptions(chunk_size=chunk_size, chunk_overlap=chunk_overlap)


def _returned(original: Document, unit: Unit, how: bool | str) -> Document | None:
    """What ``return_documents`` attaches: nothing, the input document, or (``"chunk"``)
    the best window of a chunked text."""
    if how not in (True, False, "chunk"):
        raise InvalidInputError(f"return_documents must be true, false or 'chunk', got {how!r}")
    if not how:
        return None
    if how == "chunk" and unit.span is not None:
        return unit.document
    return original


def _normalise_pairs(pairs: Any) -> list[tuple[Any, Any]]:
    if not isinstance(pairs, (list, tuple)):
        raise InvalidInputError(f"pairs must be a list of [query, document], got "
                                f"{describe_value(pairs)}")
    if len(pairs) == 0:
        raise InvalidInputError("pairs must not be empty")
    if len(pairs) == 2 and not isinstance(pairs[0], (list, tuple)):
        pairs = [pairs]  # a single bare pair, as the reference accepts
    normalised = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise InvalidInputError(f"pairs[{i}] must be a [query, document] pair, got "
                                    f"{describe_value(pair)}")
        normalised.append((pair[0], pair[1]))
    return normalised
