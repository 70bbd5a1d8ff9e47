"""Build the public collections of the offline benchmarks (BEIR layout) from their sources.

Sources (public, not written on this project; licences in ``bench/data/README.md``):

- XQuAD (Artetxe et al. 2020, CC BY-SA 4.0): 240 SQuAD v1.1 dev paragraphs, professionally
  translated; files ``xquad.{en,de,zh}.json`` of ``github.com/google-deepmind/xquad``.
- CMRC 2018 (Cui et al. 2019, CC BY-SA 4.0): Chinese Wikipedia reading comprehension;
  ``squad-style-data/cmrc2018_{dev,trial}.json`` of ``github.com/ymcui/cmrc2018``.

Each paragraph becomes a document; the first (non-empty) question of each paragraph becomes a query
whose only relevant document is its paragraph (one query per paragraph, as in the issue's
table). ``xquad-<lang>`` folders also keep the paragraph order, so ``xquad-en`` document
``p17`` is the translation of ``xquad-zh`` document ``p17`` (used by the cross-lingual check).
``cmrc2018-trial`` is the *fitting* collection of the v2 fusion: it is in no reported figure.

Usage: ``python bench/offline_public_data.py XQUAD_DIR CMRC_DIR`` writes ``bench/data/``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "data"


def paragraphs(squad_json: Path) -> list[tuple[str, str]]:
    """``(context, first question)`` of every paragraph of a SQuAD-format file."""
    data = json.loads(squad_json.read_text(encoding="utf-8"))["data"]
    rows = []
    for article in data:
        for paragraph in article["paragraphs"]:
            questions = [qa["question"] for qa in paragraph["qas"] if qa["question"].strip()]
            if questions:
                rows.append((paragraph["context"], questions[0]))
    return rows


def write_beir(name: str, rows: list[tuple[str, str]]) -> None:
    """``corpus.jsonl``, ``queries.jsonl`` and ``qrels/test.tsv`` of one collection."""
    folder = OUT / name
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as corpus, \
            (folder / "queries.jsonl").open("w", encoding="utf-8") as queries:
        for i, (context, question) in enumerate(rows):
            corpus.write(json.dumps({"_id": f"p{i}", "text": context}, ensure_ascii=False) + "\n")
            queries.write(json.dumps({"_id": f"q{i}", "text": question},
                                     ensure_ascii=False) + "\n")
    lines = ["query-id\tcorpus-id\tscore", *(f"q{i}\tp{i}\t1" for i in range(len(rows)))]
    (folder / "qrels/test.tsv").write_text("\n".join(lines) + "\n")


def main() -> None:
    """Convert the sources named on the command line."""
    xquad, cmrc = Path(sys.argv[1]), Path(sys.argv[2])
    for lang in ("en", "de", "zh"):
        write_beir(f"xquad-{lang}", paragraphs(xquad / f"xquad.{lang}.json"))
    write_beir("cmrc2018-dev", paragraphs(cmrc / "cmrc2018_dev.json"))
    write_beir("cmrc2018-trial", paragraphs(cmrc / "cmrc2018_trial.json"))


if __name__ == "__main__":
    main()
