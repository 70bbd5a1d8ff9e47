"""Build the public collections of the offline benchmarks (BEIR layout) from their sources.

Sources (public, not written on this project; licences in ``bench/data/README.md``):

- XQuAD (Artetxe et al. 2020, CC BY-SA 4.0): 240 SQuAD v1.1 dev paragraphs, professionally
  translated; files ``xquad.{en,de,zh}.json`` of ``github.com/google-deepmind/xquad``.
- CMRC 2018 (Cui et al. 2019, CC BY-SA 4.0): Chinese Wikipedia reading comprehension;
  ``squad-style-data/cmrc2018_{dev,trial}.json`` of ``github.com/ymcui/cmrc2018``.
- CISI (Glasgow IR group's classic test collections): 1460 library-science abstracts, 112
  queries of which 76 have judgements; files ``CISI.ALL``, ``CISI.QRY``, ``CISI.REL`` in the
  SMART format (``.I`` id, ``.T`` title, ``.A`` authors, ``.W`` text, ``.X`` cross-references;
  ``.B`` dates). Optional third argument.
- DRCD (Shao et al. 2018, Delta Reading Comprehension Dataset; CC BY-SA 3.0): Traditional
  Chinese Wikipedia reading comprehension; ``DRCD_dev.json`` and ``DRCD_test.json`` of
  ``github.com/DRCKnowledgeTeam/DRCD``. Optional fourth argument. ``drcd-dev`` is fitting
  data of the ``chinese`` weights (it was first measured as an unseen collection, see
  ``offline_fit_v2.py``); ``drcd-test`` is evaluation data only.

Each paragraph becomes a document; the first (non-empty) question of each paragraph becomes a query
whose only relevant document is its paragraph (one query per paragraph, as in the issue's
table). ``xquad-<lang>`` folders also keep the paragraph order, so ``xquad-en`` document
``p17`` is the translation of ``xquad-zh`` document ``p17`` (used by the cross-lingual check).
``cmrc2018-trial`` is the *fitting* collection of the v2 fusion: it is in no reported figure.

Usage: ``python bench/offline_public_data.py XQUAD_DIR CMRC_DIR [CISI_DIR [DRCD_DIR]]`` writes
``bench/data/``.
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


def smart_records(path: Path) -> dict[str, dict[str, str]]:
    """Records of a SMART-format file: ``{id: {field letter: text}}``."""
    records: dict[str, dict[str, str]] = {}
    fields: dict[str, str] = {}
    field = ""
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith(".I "):
            fields = records.setdefault(line[3:].strip(), {})
            field = ""
        elif len(line) >= 2 and line[0] == "." and line[1].isalpha() and not line[2:].strip():
            field = line[1]
        elif field:
            fields[field] = f"{fields.get(field, '')} {line.strip()}".strip()
    return records


def write_cisi(folder: Path) -> None:
    """CISI in BEIR layout: title and abstract as the document, the query text, and the
    judged pairs of ``CISI.REL`` (all relevant; queries without judgements are dropped)."""
    docs = smart_records(folder / "CISI.ALL")
    queries = smart_records(folder / "CISI.QRY")
    judged: dict[str, set[str]] = {}
    for line in (folder / "CISI.REL").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            judged.setdefault(parts[0], set()).add(parts[1])
    out = OUT / "cisi"
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as corpus:
        for doc_id, fields in docs.items():
            corpus.write(json.dumps({"_id": doc_id, "title": fields.get("T", ""),
                                     "text": fields.get("W", "")}) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as handle:
        for query_id, fields in queries.items():
            if query_id in judged:
                handle.write(json.dumps({"_id": query_id, "text": fields.get("W", "")}) + "\n")
    lines = ["query-id\tcorpus-id\tscore",
             *(f"{q}\t{d}\t1" for q in sorted(judged, key=int)
               for d in sorted(judged[q], key=int))]
    (out / "qrels/test.tsv").write_text("\n".join(lines) + "\n")


def main() -> None:
    """Convert the sources named on the command line."""
    xquad, cmrc = Path(sys.argv[1]), Path(sys.argv[2])
    if len(sys.argv) > 3:
        write_cisi(Path(sys.argv[3]))
    if len(sys.argv) > 4:
        for split in ("dev", "test"):
            write_beir(f"drcd-{split}", paragraphs(Path(sys.argv[4]) / f"DRCD_{split}.json"))
    for lang in ("en", "de", "zh"):
        write_beir(f"xquad-{lang}", paragraphs(xquad / f"xquad.{lang}.json"))
    write_beir("cmrc2018-dev", paragraphs(cmrc / "cmrc2018_dev.json"))
    write_beir("cmrc2018-trial", paragraphs(cmrc / "cmrc2018_trial.json"))


if __name__ == "__main__":
    main()
