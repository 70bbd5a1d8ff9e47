"""Does removing each language's mean vector make USE better across German and Chinese?

Multilingual sentence encoders keep part of a text's language in its vector; subtracting a
per-language mean before the cosine ("language centering", Libovicky et al. 2020, "On the
Language Neutrality of Pre-trained Multilingual Representations") often helps cross-lingual
retrieval. This measures it for USE multilingual v3 with v2's dense feature (mean of the whole
paragraph's and the best sentence's cosine), dense feature alone, on the XQuAD cross-lingual
check (top-1 among 240 paragraphs), with means taken

- ``own``: from the 240 XQuAD paragraphs and their sentences themselves (an upper bound: a
  per-pair model cannot know the collection), and
- ``external``: Chinese from CMRC 2018 trial, English and German from the project's check
  set (what a shipped model could use), at full and half strength.

It was an exploration to decide whether v2 should ship centering, not a fit: nothing here
sets a weight. Result: no consistent gain (``docs/offline-default.md``), so v2 does not center.

Usage: ``python bench/offline_centering.py``; writes ``bench/results/offline_centering.json``.
"""

from __future__ import annotations

import json

import numpy as np
from offline_data import DATA_DIR, collection, write_result

from m0rank.model.offline_v2.encoders import UseEncoder
from m0rank.model.offline_v2.reranker import sentences
from m0rank.testing.checkset import build_checkset

LANGS = ("en", "de", "zh")
N = 240


class Embedder:
    """USE vectors, each text embedded once."""

    def __init__(self) -> None:
        self.encoder = UseEncoder(threads=1)
        self.vectors: dict[str, np.ndarray] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        for start in range(0, len(missing), 32):
            chunk = missing[start:start + 32]
            self.vectors.update(zip(chunk, self.encoder.encode(chunk), strict=True))
        return np.array([self.vectors[t] for t in texts])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _mean_of(embed: Embedder, texts: list[str]) -> np.ndarray:
    return embed(texts + [s for text in texts for s in sentences(text)]).mean(0)


def top1(side: dict[str, tuple], a: str, b: str, means: dict[str, np.ndarray] | None,
         strength: float = 1.0) -> float:
    """Top-1 of questions in ``a`` against paragraphs in ``b`` by the dense feature."""
    queries, paragraphs, sents = side[a][0], side[b][1], side[b][2]
    if means is not None:
        queries = _unit(queries - strength * means[a])
        paragraphs = _unit(paragraphs - strength * means[b])
        sents = [_unit(s - strength * means[b]) for s in sents]
    whole = queries @ paragraphs.T
    best = np.stack([(queries @ s.T).max(1) for s in sents], 1)
    return round(float(((0.5 * whole + 0.5 * best).argmax(1) == np.arange(N)).mean()), 4)


def main() -> None:
    embed = Embedder()
    side = {}
    for lang in LANGS:
        coll = collection(f"xquad-{lang}")
        paragraphs = [str(coll.corpus[f"p{i}"].text) for i in range(N)]
        side[lang] = (embed([str(coll.queries[f"q{i}"].text) for i in range(N)]),
                      embed(paragraphs), [embed(sentences(p)) for p in paragraphs])
    own = {lang: np.concatenate([side[lang][1], *side[lang][2]]).mean(0) for lang in LANGS}
    trial = [json.loads(line)["text"]
             for line in (DATA_DIR / "cmrc2018-trial/corpus.jsonl").open(encoding="utf-8")]
    external = {"zh": _mean_of(embed, trial)}
    for lang in ("en", "de"):
        check = build_checkset(lang)
        external[lang] = _mean_of(embed, [*check.docs.values(), *check.queries.values()])
    rows = {}
    for a in LANGS:
        for b in LANGS:
            if a != b:
                rows[f"{a}->{b}"] = {"plain": top1(side, a, b, None),
                                     "own_mean": top1(side, a, b, own),
                                     "external_mean": top1(side, a, b, external),
                                     "external_mean_half": top1(side, a, b, external, 0.5)}
    print(json.dumps(rows, indent=2))
    write_result("offline_centering", {"check": "XQuAD, top-1 among 240, USE dense feature "
                                                "alone", "top1": rows})


if __name__ == "__main__":
    main()
