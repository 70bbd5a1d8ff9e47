"""Results as the announcement lays them out: rows are models, columns datasets plus an average.

Outputs: a ``rich`` table for the terminal, a JSON document (every metric, every row), a
Markdown table (scores x 100, two decimals, as in the jina-reranker-m0 announcement) and a
box plot PNG (matplotlib) of score distributions per model.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from m0rank import __version__
from m0rank.eval.runner import WINOGROUND_METRICS, DatasetResult, EvalReport

__all__ = ["Table", "build_table", "render_rich", "to_markdown", "to_markdown_details",
           "to_json", "write_json", "write_box_plot", "save_report"]


@dataclass(frozen=True)
class Table:
    """Cells of the headline table.

    Attributes:
        models: Row labels in first-seen order.
        columns: Column labels (``"cranfield · ndcg@10"``, ``"winoground · group"``...).
        cells: (model, column) -> value in [0, 1].
    """

    models: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], float]

    def average(self, model: str) -> float | None:
        """Mean over the columns this model has a value in (``None`` if none)."""
        values = [self.cells[(model, c)] for c in self.columns if (model, c) in self.cells]
        return sum(values) / len(values) if values else None


def build_table(results: Sequence[DatasetResult], headline: dict[str, str] | None = None) -> Table:
    """One column per dataset, showing its headline metric (default: the first metric).

    Winoground datasets get three columns (text, image, group).
    """
    headline = headline or {}
    models: list[str] = []
    columns: list[str] = []
    cells: dict[tuple[str, str], float] = {}
    for result in results:
        if result.model not in models:
            models.append(result.model)
        for metric in _headline_metrics(result, headline):
            column = f"{result.dataset} · {metric}"
            if column not in columns:
                columns.append(column)
            cells[(result.model, column)] = result.metrics[metric]
    return Table(models=models, columns=columns, cells=cells)


def render_rich(table: Table, title: str = "m0rank eval") -> Any:
    """A ``rich.table.Table`` (print it with ``rich.console.Console().print``)."""
    from rich.table import Table as RichTable

    out = RichTable(title=title)
    out.add_column("model")
    for column in [*table.columns, "avg"]:
        out.add_column(column, justify="right")
    for model in table.models:
        out.add_row(model, *[_cell(table.cells.get((model, c))) for c in table.columns],
                    _cell(table.average(model)))
    return out


def to_markdown(table: Table, *, caption: str | None = None) -> str:
    """A GitHub Markdown table, scores x 100 with two decimals, best per column in bold."""
    header = ["Model", *table.columns, "Avg"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
    best = {c: max((table.cells[(m, c)] for m in table.models if (m, c) in table.cells),
                   default=None) for c in table.columns}
    for model in table.models:
        row = [model]
        for column in table.columns:
            value = table.cells.get((model, column))
            text = _cell(value)
            row.append(f"**{text}**" if value is not None and value == best[column]
                       and len(table.models) > 1 else text)
        row.append(_cell(table.average(model)))
        lines.append("| " + " | ".join(row) + " |")
    if caption:
        lines = [caption, "", *lines]
    return "\n".join(lines) + "\n"


def to_markdown_details(results: Sequence[DatasetResult]) -> str:
    """One table per dataset with every metric (x 100), plus pairs scored and seconds."""
    blocks = []
    for dataset in dict.fromkeys(r.dataset for r in results):
        rows = [r for r in results if r.dataset == dataset]
        metrics = list(dict.fromkeys(m for r in rows for m in r.metrics))
        header = ["Model", *metrics, "pairs scored", "seconds"]
        lines = [f"**{dataset}**", "", "| " + " | ".join(header) + " |",
                 "|---|" + "---:|" * (len(header) - 1)]
        for r in rows:
            cells = [_cell(r.metrics.get(m)) for m in metrics]
            lines.append(f"| {r.model} | " + " | ".join(cells) +
                         f" | {r.pairs_scored} | {r.seconds:.1f} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def to_json(results: Sequence[DatasetResult], settings: dict[str, Any],
            machine: str | None = None,
            skipped: Sequence[dict[str, str]] = ()) -> dict[str, Any]:
    """Every metric of every row, with the settings and the machine, as a JSON-ready dict;
    ``skipped`` lists (model, dataset, reason) cells that could not be run."""
    return {
        "m0rank_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine or f"{platform.machine()} {platform.system()}",
        "settings": settings,
        "results": [
            {
                "model": r.model, "dataset": r.dataset,
                "metrics": {k: round(v, 6) for k, v in r.metrics.items()},
                "queries": len(next(iter(r.per_query.values()), {})),
                "pairs_scored": r.pairs_scored, "pairs_cached": r.pairs_cached,
                "seconds": round(r.seconds, 2),
            }
            for r in results
        ],
        "skipped": list(skipped),
    }


def write_json(path: str | Path, document: dict[str, Any]) -> None:
    """Write ``document`` as indented UTF-8 JSON."""
    Path(path).write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n",
                          encoding="utf-8")


def write_box_plot(results: Sequence[DatasetResult], path: str | Path,
                   headline: dict[str, str] | None = None) -> None:
    """Box plot per model, like the announcement's figures.

    With several datasets each box holds the model's per-dataset headline scores; with one
    dataset it holds the per-query scores of that dataset's headline metric.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = build_table(results, headline)
    if len(table.columns) > 1:
        data = [[table.cells[(m, c)] for c in table.columns if (m, c) in table.cells]
                for m in table.models]
        ylabel, title = "score per dataset", "Per-dataset scores"
    else:
        data = [_per_query(results, m, headline or {}) for m in table.models]
        ylabel, title = "score per query", f"Per-query scores · {table.columns[0]}"
    figure, axes = plt.subplots(figsize=(max(4.0, 1.6 * len(table.models) + 1), 4))
    axes.boxplot(data, showmeans=True)
    axes.set_xticks(range(1, len(table.models) + 1), table.models, rotation=15)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(str(path), dpi=120)
    plt.close(figure)


def _headline_metrics(result: DatasetResult, headline: dict[str, str]) -> list[str]:
    if result.dataset in headline:
        return [headline[result.dataset]]
    if set(result.metrics) == set(WINOGROUND_METRICS):
        return list(WINOGROUND_METRICS)
    return [next(iter(result.metrics))]


def _per_query(results: Sequence[DatasetResult], model: str,
               headline: dict[str, str]) -> list[float]:
    for result in results:
        if result.model == model:
            metric = _headline_metrics(result, headline)[0]
            return list(result.per_query.get(metric, {}).values())
    return []


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def save_report(report: EvalReport, folder: str | Path, name: str, *,
                machine: str | None = None, extra_settings: Mapping[str, Any] | None = None,
                ) -> list[Path]:
    """Write ``<name>.json``, ``<name>.md`` and ``<name>.png`` into ``folder``.

    Args:
        report: From :func:`m0rank.eval.runner.run_evaluation`.
        folder: Created when missing.
        name: File name stem.
        machine: Machine description stored in the JSON (default: architecture and OS).
        extra_settings: More settings stored in the JSON (device, dtype...).

    Returns:
        The three files written.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.json", out / f"{name}.md", out / f"{name}.png"]
    settings = {**report.settings(), **(extra_settings or {})}
    write_json(paths[0], to_json(report.results, settings, machine=machine,
                                 skipped=[cell.as_dict() for cell in report.skipped]))
    used = ", ".join(f"{dataset}: {label}" for dataset, label in report.first_stages.items())
    caption = (f"Scores x 100; first stage ({used}), top {report.options.top_k} reranked; "
               f"headline metric per column.")
    markdown = to_markdown(build_table(report.results), caption=caption)
    markdown += "".join(f"\n{cell.note()}\n" for cell in report.skipped)
    markdown += "\n" + to_markdown_details(report.results)
    paths[1].write_text(markdown, encoding="utf-8")
    write_box_plot(report.results, paths[2])
    return paths
