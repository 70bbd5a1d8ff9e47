"""First-stage candidates: BM25 (``bm25s``), a TREC run file, or every document.

A *run* maps query id -> {document id -> score}; the candidates a model reranks are the
top ``k`` of the run by score (ties broken by document id, so reruns are identical).

BM25's tokens (``tokenizer``): ``"bm25s-en"`` is bm25s's own English tokenisation (split on
non-word characters, English stop words, no stemming), the harness's original baseline.
``"english"``, ``"german"`` and ``"chinese"`` use :func:`m0rank.terms.index_terms`, the
tokenisation of the offline reranker's lexical side: Snowball stems and folded diacritics;
German compounds split into parts that occur as words in the collection; Chinese character
bigrams (``"chinese-jieba"``: jieba words). ``"auto"`` (the default) picks ``"chinese"`` for
a collection written mostly in CJK ideographs, ``"german"`` for German text and
``"bm25s-en"`` otherwise. A tokenizer that does not fit the collection's script logs a
warning: whitespace tokens on Chinese text make BM25 close to random.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from m0rank import InvalidInputError, terms
from m0rank.eval.datasets import Collection

__all__ = ["Run", "bm25_run", "all_documents_run", "read_trec_run", "write_trec_run",
           "top_k", "ranked_ids", "TOKENIZERS", "choose_tokenizer", "bm25_tokens"]

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]

# Lucene BM25 with the parameters Anserini uses for BEIR baselines (k1=0.9, b=0.4).
BM25_K1 = 0.9
BM25_B = 0.4
TOKENIZERS = ("auto", "bm25s-en", "english", "german", "chinese", "chinese-jieba",
              "chinese-jieba+bigrams")
_SAMPLE = 500  # documents read to tell a collection's script and language
_CJK_SCRIPT = 0.2  # share of CJK ideographs among letters from which text counts as Chinese


def bm25_run(collection: Collection, k: int = 100, *, k1: float = BM25_K1,
             b: float = BM25_B, tokenizer: str = "auto") -> Run:
    """BM25 over the documents' text (title + text) with the tokens of ``tokenizer`` (see the
    module docstring; ``"auto"`` chooses by the collection's script and language).

    Raises:
        InvalidInputError: A query or every document has no text (use a run file or
            ``all`` candidates for image collections), or an unknown ``tokenizer``.
    """
    import bm25s

    doc_ids = [d for d, item in collection.corpus.items() if item.text]
    if not doc_ids:
        raise InvalidInputError(f"{collection.name}: BM25 needs document text; the corpus "
                                f"has none (use --first-stage all or --run FILE)")
    query_ids = list(collection.queries)
    for qid in query_ids:
        if not collection.queries[qid].text:
            raise InvalidInputError(f"{collection.name}: query {qid!r} has no text for BM25 "
                                    f"(use --first-stage all or --run FILE)")
    texts = [collection.corpus[d].text or "" for d in doc_ids]
    queries = [collection.queries[q].text or "" for q in query_ids]
    name = choose_tokenizer(collection.name, texts, tokenizer)
    doc_tokens, query_tokens = bm25_tokens(name, texts, queries)
    retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
    retriever.index(doc_tokens, show_progress=False)
    hits, scores = retriever.retrieve(query_tokens, k=min(k, len(doc_ids)), show_progress=False)
    return {
        qid: {doc_ids[int(i)]: float(s) for i, s in zip(row_hits, row_scores, strict=True) if s > 0}
        for qid, row_hits, row_scores in zip(query_ids, hits, scores, strict=True)
    }


def choose_tokenizer(name: str, texts: list[str], tokenizer: str = "auto") -> str:
    """Resolve ``"auto"`` by the texts' script and language; warn when an explicit choice
    does not fit the script of collection ``name``.

    Raises:
        InvalidInputError: ``tokenizer`` is not one of :data:`TOKENIZERS`.
    """
    if tokenizer not in TOKENIZERS:
        raise InvalidInputError(f"tokenizer must be one of {', '.join(TOKENIZERS)}, "
                                f"got {tokenizer!r}")
    sample = texts[:_SAMPLE]
    chinese = terms.cjk_share(sample) >= _CJK_SCRIPT
    if tokenizer == "auto":
        language = "chinese" if chinese else terms.detect_language(sample)
        chosen = {"chinese": "chinese", "german": "german"}.get(language, "bm25s-en")
        logger.info("%s: BM25 tokenizer %s (auto, text reads as %s)", name, chosen, language)
        return chosen
    if chinese and not tokenizer.startswith("chinese"):
        logger.warning("%s: the collection is written mostly in CJK ideographs, but BM25 "
                       "tokenizer %r splits words at spaces; its BM25 will be close to random "
                       "(use tokenizer 'chinese')", name, tokenizer)
    elif not chinese and tokenizer.startswith("chinese") and terms.cjk_share(sample) == 0.0:
        logger.warning("%s: BM25 tokenizer %r is for Chinese, but the collection has no CJK "
                       "ideographs (use 'auto')", name, tokenizer)
    return tokenizer


def bm25_tokens(tokenizer: str, texts: list[str],
                queries: list[str]) -> tuple[object, object]:
    """Documents' and queries' tokens in a form ``bm25s`` indexes and retrieves with."""
    import bm25s

    if tokenizer == "bm25s-en":
        return (bm25s.tokenize(texts, stopwords="en", show_progress=False),
                bm25s.tokenize(queries, stopwords="en", show_progress=False))
    chinese = tokenizer.removeprefix("chinese-") if tokenizer.startswith("chinese-") \
        else "bigrams"
    language = tokenizer if tokenizer in ("english", "german") else None
    docs = [terms.index_terms(text, language, chinese=chinese) for text in texts]
    lexicon = None
    if tokenizer == "german":  # compound parts must occur as words of the collection
        lexicon = frozenset(Counter(term for doc in docs for term in doc))
        docs = [terms.index_terms(text, language, chinese=chinese, lexicon=lexicon)
                for text in texts]
    return docs, [terms.index_terms(q, language, chinese=chinese, lexicon=lexicon)
                  for q in queries]


def all_documents_run(collection: Collection) -> Run:
    """Every document is a candidate for every query (small or image-only collections)."""
    return {qid: dict.fromkeys(collection.corpus, 0.0) for qid in collection.queries}


def read_trec_run(path: str | Path) -> Run:
    """Read a TREC run: ``qid Q0 docid rank score tag`` per line.

    Raises:
        InvalidInputError: Unreadable file or a malformed line (file and line named).
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot read ({exc.strerror})") from None
    run: Run = {}
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 6:
            raise InvalidInputError(f"{path}:{number}: expected 'qid Q0 docid rank score tag', "
                                    f"got {len(fields)} fields")
        try:
            score = float(fields[4])
        except ValueError:
            raise InvalidInputError(f"{path}:{number}: score {fields[4]!r} is not a "
                                    f"number") from None
        run.setdefault(fields[0], {})[fields[2]] = score
    return run


def write_trec_run(run: Run, path: str | Path, tag: str = "m0rank") -> None:
    """Write ``run`` in TREC format, each query's documents by descending score."""
    with Path(path).open("w", encoding="utf-8") as handle:
        for qid in sorted(run):
            for rank, doc_id in enumerate(ranked_ids(run[qid]), start=1):
                handle.write(f"{qid} Q0 {doc_id} {rank} {run[qid][doc_id]:.6f} {tag}\n")


def ranked_ids(scores: dict[str, float]) -> list[str]:
    """Document ids by descending score; ties by document id (deterministic)."""
    return sorted(scores, key=lambda doc: (-scores[doc], doc))


def top_k(run: Run, k: int) -> dict[str, list[str]]:
    """The best ``k`` document ids per query, best first."""
    return {qid: ranked_ids(scores)[:k] for qid, scores in run.items()}
