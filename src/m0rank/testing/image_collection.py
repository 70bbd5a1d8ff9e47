"""Tiny rendered image collections in the evaluation layouts, for tests and demos.

- :func:`write_page_collection`: ViDoRe-style, text queries against rendered document pages
  (English, German, French, Spanish and Chinese text); ``corpus.jsonl`` rows name an image.
- :func:`write_image_query_collection`: M-BEIR image->text style, rendered queries against
  text documents.
- :func:`write_winoground_collection`: two captions and two drawn images per example.

Pages are rendered with real fonts through :func:`m0rank.testing.pages.render_page`.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from m0rank.testing.pages import render_page

__all__ = ["PAGES", "write_page_collection", "write_image_query_collection",
           "write_winoground_collection"]

# (doc id, page lines, query about the page)
PAGES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("p-solar", ("Quarterly report", "Solar panel sales grew 40 percent in 2024."),
     "How much did solar panel sales grow?"),
    ("p-bahn", ("Bahnstrecke München – Berlin", "Neue Fahrpläne gelten ab Dezember."),
     "Wann gelten die neuen Fahrpläne nach Berlin?"),
    ("p-weather", ("上海天气预报", "明天有大雨，气温十五度。"), "上海明天的天气怎么样？"),
    ("p-bread", ("Recipe", "Bake sourdough bread with rye flour for 45 minutes."),
     "sourdough rye bread baking time"),
    ("p-louvre", ("Musée du Louvre", "Horaires d'ouverture : 9 h à 18 h, fermé le mardi."),
     "Quand le Louvre est-il fermé ?"),
    ("p-washer", ("Manual de la lavadora", "Programa de lavado en frío: 30 minutos."),
     "¿Cuánto dura el programa de lavado en frío?"),
)


def write_page_collection(out_dir: Path, *, width: int = 448, font_size: int = 22) -> Path:
    """Rendered pages as image documents, one text query per page (relevance 1)."""
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    corpus, queries, qrels = [], [], []
    for number, (doc_id, lines, query) in enumerate(PAGES, start=1):
        render_page(list(lines), width=width, font_size=font_size).save(images / f"{doc_id}.png")
        corpus.append({"_id": doc_id, "image": f"images/{doc_id}.png"})
        queries.append({"_id": f"q{number}", "text": query})
        qrels.append((f"q{number}", doc_id, 1))
    return _write_beir(out_dir, corpus, queries, qrels)


def write_image_query_collection(out_dir: Path, *, width: int = 448,
                                 font_size: int = 22) -> Path:
    """Rendered queries (images) against the pages' text as documents."""
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    corpus, queries, qrels = [], [], []
    for number, (doc_id, lines, query) in enumerate(PAGES, start=1):
        render_page([query], width=width, font_size=font_size).save(images / f"q{number}.png")
        corpus.append({"_id": doc_id, "title": lines[0], "text": " ".join(lines[1:])})
        queries.append({"_id": f"q{number}", "image": f"images/q{number}.png"})
        qrels.append((f"q{number}", doc_id, 1))
    return _write_beir(out_dir, corpus, queries, qrels)


def write_winoground_collection(out_dir: Path, *, size: int = 112) -> Path:
    """Two examples whose captions differ only in word order, with matching drawings."""
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    specs = (
        ("ex0", ("a red square above a blue circle", "a blue circle above a red square"),
         (("red", "square"), ("blue", "circle"))),
        ("ex1", ("a green circle left of a yellow square",
                 "a yellow square left of a green circle"),
         (("green", "circle"), ("yellow", "square"))),
    )
    rows = []
    for example_id, captions, (first, second) in specs:
        _shapes(first, second, size, vertical=example_id == "ex0").save(
            images / f"{example_id}_0.png")
        _shapes(second, first, size, vertical=example_id == "ex0").save(
            images / f"{example_id}_1.png")
        rows.append({"id": example_id, "caption_0": captions[0], "caption_1": captions[1],
                     "image_0": f"images/{example_id}_0.png",
                     "image_1": f"images/{example_id}_1.png"})
    _write_jsonl(out_dir / "examples.jsonl", rows)
    return out_dir


def _shapes(first: tuple[str, str], second: tuple[str, str], size: int,
            vertical: bool) -> Image.Image:
    """``first`` above (or left of) ``second`` on a white square."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    half, pad = size // 2, size // 8
    boxes = ((pad, pad // 2, size - pad, half - pad // 2), (pad, half + pad // 2, size - pad,
                                                             size - pad // 2))
    if not vertical:
        boxes = ((pad // 2, pad, half - pad // 2, size - pad),
                 (half + pad // 2, pad, size - pad // 2, size - pad))
    for (color, shape), box in zip((first, second), boxes, strict=True):
        (draw.rectangle if shape == "square" else draw.ellipse)(box, fill=color)
    return image


def _write_beir(out_dir: Path, corpus: list[dict], queries: list[dict],
                qrels: list[tuple[str, str, int]]) -> Path:
    _write_jsonl(out_dir / "corpus.jsonl", corpus)
    _write_jsonl(out_dir / "queries.jsonl", queries)
    (out_dir / "qrels").mkdir(exist_ok=True)
    lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t{s}" for q, d, s in qrels)]
    (out_dir / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_dir


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
