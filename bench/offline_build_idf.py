"""Build the offline model's built-in IDF table from general word frequencies.

Source: ``wordfreq`` 3.x (``get_frequency_dict(lang, "best")``: Wikipedia, subtitles, news,
books, web text, Twitter, Reddit; data CC-BY-SA 4.0, see https://github.com/rspeer/wordfreq).
Every word is run through the model's own tokeniser (stemming, folding, CJK bigrams) so the
table's keys are exactly the model's index terms. A term's frequency is the largest over
English, German and Chinese (a word frequent in any of them is treated as common), and its
IDF follows ``idf_from_frequency``. Chinese single characters also get an entry from the
words that contain them (used for bigrams missing from the table).

Usage: ``python bench/offline_build_idf.py`` (needs ``pip install wordfreq pystemmer``;
writes ``src/m0rank/builtin/offline-default/idf.json.gz``). Only developers run this: the
table ships with the package, so users never need ``wordfreq``.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path

from wordfreq import get_frequency_dict

from m0rank.model.offline.lexical import idf_from_frequency, is_cjk, tokenize

OUT = Path(__file__).resolve().parents[1] / "src/m0rank/builtin/offline-default/idf.json.gz"
LANGUAGES = {"en": "english", "de": "german", "zh": None}
MIN_FREQUENCY = 1e-7  # rarer terms share ``unseen_idf`` (keeps the table small)


def term_frequencies(lang: str, stem_language: str | None) -> dict[str, float]:
    """Share of tokens per index term for one language."""
    freqs: dict[str, float] = defaultdict(float)
    for word, freq in get_frequency_dict(lang, "best").items():
        for term in tokenize(word, stem_language or "english"):
            freqs[term] += freq
        if stem_language is None:  # Chinese: characters of multi-character words too
            for char in word:
                if is_cjk(char) and len(word) > 1:
                    freqs[char] += freq
    return freqs


def main() -> None:
    """Merge languages by maximum frequency, convert to IDF, write gzip JSON."""
    merged: dict[str, float] = defaultdict(float)
    for lang, stem_language in LANGUAGES.items():
        for term, freq in term_frequencies(lang, stem_language).items():
            merged[term] = max(merged[term], freq)
    kept = {t: round(idf_from_frequency(f), 2) for t, f in merged.items() if f >= MIN_FREQUENCY}
    table = {
        "source": "wordfreq 3.1 'best' lists (en, de, zh), max frequency over languages, "
                  f"terms with frequency >= {MIN_FREQUENCY:g}",
        "unseen_idf": round(idf_from_frequency(MIN_FREQUENCY), 2),
        "idf": dict(sorted(kept.items())),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(OUT, "wt", encoding="utf-8", compresslevel=9) as handle:
        json.dump(table, handle, ensure_ascii=False, separators=(",", ":"))
    print(f"{len(kept)} terms, unseen_idf {table['unseen_idf']}, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
