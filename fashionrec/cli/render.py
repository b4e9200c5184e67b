"""Rich rendering of what commands return: tables for people (``--json`` prints the models instead)."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from .app import console


def print_index_summary(summary) -> None:
    """The outcome of an index build: counts, speed and the skipped products."""
    m = summary.manifest
    if summary.unchanged:
        console.print(f"index {summary.path} is up to date: {summary.count:,} vectors, nothing to do")
    else:
        console.print(
            f"index {summary.path}: {summary.count:,} vectors of {m.get('dim')} ({m.get('backbone')}, "
            f"{m.get('runtime')} {m.get('precision')}); embedded {summary.embedded:,} "
            f"({summary.images_per_second:,.1f} img/s), reused {summary.reused:,}",
            highlight=False, soft_wrap=True,
        )
    if summary.skipped:
        table = Table(title=f"{len(summary.skipped)} products skipped", title_justify="left")
        for column in ("id", "image", "reason"):
            table.add_column(column)
        for entry in summary.skipped[:20]:
            table.add_row(str(entry["id"]), str(entry.get("image")), str(entry["reason"]))
        if len(summary.skipped) > 20:
            table.add_row("…", f"{len(summary.skipped) - 20} more in manifest.json", "")
        console.print(table)


def print_results(query: dict[str, Any], results) -> None:
    """A table of recommendations, titled by the query."""
    name = query.get("productDisplayName") or query.get("image") or query.get("id")
    table = Table(title=f"like: {name}", title_justify="left")
    columns = [c for c in ("id", "distance", "productDisplayName", "articleType", "baseColour", "gender") if c in results]
    for column in columns:
        table.add_column(column, justify="right" if column in ("id", "distance") else "left")
    for row in results.itertuples(index=False):
        values = row._asdict()
        table.add_row(*[f"{values[c]:.4f}" if c == "distance" else str(values[c]) for c in columns])
    console.print(table)



def print_evaluation(result, photos) -> None:
    """Tables of a leave-one-out evaluation and, if any, of the photo queries."""
    relevance, metric, normalize = result.relevance, result.metric, result.normalize
    features = "normalised" if normalize else "raw"
    table = Table(title=f"leave-one-out over {result.n_queries:,} queries, relevance = same {relevance}, "
                        f"{metric} on {features} features",
                  title_justify="left")
    table.add_column("metric")
    table.add_column("fashionrec", justify="right")
    table.add_column("random", justify="right")
    for name, value in result.overall.items():
        base = result.baseline.get(name)
        table.add_row(name, f"{value:.3f}", "" if base is None else f"{base:.3f}")
    console.print(table)
    if photos is not None:
        table = Table(title=f"{photos.n_queries} simulated new photos of catalog products, searched among "
                            f"{photos.n_products:,}", title_justify="left")
        table.add_column("finds its own product")
        table.add_column("fashionrec", justify="right")
        table.add_column("chance", justify="right")
        for name, value in photos.overall.items():
            table.add_row(name, f"{value:.3f}", f"{photos.chance[name]:.4f}")
        console.print(table)
