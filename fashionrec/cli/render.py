"""Rich rendering of what commands return: tables for people (``--json`` prints the models instead)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.table import Table

from .app import console, err_console


@contextmanager
def progress_bar(label: str, unit: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (done / total, rate in ``unit``/s, elapsed, ETA); yields ``progress(done, total)``.

    The bar appears on the first call, so an error or a run with nothing to do
    prints no empty bar, and it is stopped however the block ends.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err_console, transient=False)
    task = bar.add_task(label, total=None, rate="")

    def progress(done: int, total: int) -> None:
        if not bar.live.is_started:
            bar.start()
        elapsed = bar.tasks[task].elapsed or 0.0
        rate = f"{done / elapsed:,.1f} {unit}/s" if elapsed > 0 else ""
        bar.update(task, completed=done, total=total, rate=rate)

    try:
        yield progress
    finally:
        bar.stop()


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
    columns = [c for c in ("id", "distance", "productDisplayName", "articleType", "baseColour", "gender", "duplicates")
               if c in results]
    for column in columns:
        table.add_column(column, justify="right" if column in ("id", "distance") else "left")
    for row in results.itertuples(index=False):
        values = row._asdict()
        table.add_row(*[_cell(c, values[c]) for c in columns])
    console.print(table)
    predicted = query.get("predicted")
    if predicted:
        how = "the photo's own product, clearly nearest" if predicted["clear_match"] else \
            f"a vote of the {predicted['neighbours']} nearest products"
        kinds = ", ".join(f"{name} {value}" for name, value in predicted["values"].items() if value is not None)
        console.print(f"looks like: {kinds} ({how}); products of that articleType first", highlight=False,
                      soft_wrap=True)
    if query.get("duplicates"):
        console.print(f"left out as copies of the query product: {', '.join(map(str, query['duplicates']))}",
                      highlight=False, soft_wrap=True)


def _cell(column: str, value: Any) -> str:
    if column == "distance":
        return f"{value:.4f}"
    if column == "duplicates":
        return ", ".join(map(str, value))
    return str(value)



def print_evaluation(result, photos, real=None) -> None:
    """Tables of a leave-one-out evaluation and, if any, of the simulated and the real photo queries."""
    relevance, metric, normalize = result.relevance, result.metric, result.normalize
    features = "normalised" if normalize else "raw"
    engine = "" if result.engine == "exact" else f", {result.engine} engine"
    table = Table(title=f"leave-one-out over {result.n_queries:,} queries, relevance = same {relevance}, "
                        f"{metric} on {features} features{engine}",
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
        kinds = list(photos.per_kind)
        for column in kinds:
            table.add_column(column, justify="right")
        for name, value in photos.overall.items():
            table.add_row(name, f"{value:.3f}", f"{photos.chance[name]:.4f}",
                          *(f"{photos.per_kind[kind][name]:.3f}" for kind in kinds))
        console.print(table)
    if real is not None:
        matched = "brought to the catalog's image size" if real.match_catalog else "as they are"
        table = Table(title=f"{real.n_queries} real photos of {real.folder} ({matched}), searched among "
                            f"{real.n_products:,} products; {real.not_in_index} of {real.n_photos} photos left out "
                            f"(product not in the index)" + (f", {len(real.unreadable)} unreadable" if real.unreadable
                                                             else ""), title_justify="left")
        table.add_column("articleType")
        table.add_column("photos", justify="right")
        names = list(real.overall)
        for name in names:
            table.add_column(name, justify="right")
        table.add_row("all", str(real.n_queries), *(f"{real.overall[name]:.3f}" for name in names), style="bold")
        table.add_row("chance", "", *(f"{real.chance[name]:.4f}" for name in names), style="dim")
        for row in real.per_class[:15]:
            table.add_row(row["articleType"], str(row["n_queries"]), *(f"{row[name]:.3f}" for name in names))
        if len(real.per_class) > 15:
            table.add_row(f"… {len(real.per_class) - 15} more in --json", "", *("" for _ in names))
        console.print(table)
        if real.kind_accuracy:
            console.print("kind predicted from the 10 nearest products, right for: " + ", ".join(
                f"{name} {share:.1%}" for name, share in real.kind_accuracy.items()), highlight=False, soft_wrap=True)


def print_engines(engines, done: dict[tuple[str, str], str] | None = None, *, title: str | None = None) -> None:
    """A table of search engines saved in an index folder (:class:`~fashionrec.recommend.results.EngineInfo` s).

    One column per engine and one row per figure, so that a few engines fit an
    80-column terminal. ``done`` maps ``(name, metric)`` to what this run did to
    the engine (built, updated, rebuilt, up to date); without it that row is left out.
    """
    table = Table(title=title or f"{len(engines)} search engine{'s' if len(engines) != 1 else ''} saved in the index",
                  title_justify="left")
    table.add_column("")
    for e in engines:
        table.add_column(f"{e.name} ({e.metric})")

    def row(label: str, cell) -> None:
        table.add_row(label, *[cell(e) for e in engines])

    def recall(e) -> str:
        text = _number(e.recall_at_10, "{:.3f}")
        sample = "catalog products" if e.name == "milvus" else "held-out products"  # milvus holds out nothing
        return text if e.recall_queries is None else f"{text} on {e.recall_queries:,} {sample}"

    row("search", lambda e: "—" if e.search_param is None else f"{e.search_param}={e.search_value}")
    row("recall@10", recall)
    row("target", lambda e: _number(e.target_recall, "{:.2f}"))
    row("p50 / p99 ms", lambda e: f"{_number(e.p50_ms, '{:.2f}')} / {_number(e.p99_ms, '{:.2f}')}")
    # filters keeping at most this many products are answered by the exact engine
    row("exact cut-over", lambda e: "—" if e.exact_below is None else "none" if e.exact_below == 0
        else f"filters of ≤ {e.exact_below:,} products")
    row("build s", lambda e: _number(e.build_seconds, "{:.1f}"))
    if done is not None:
        row("done", lambda e: done.get((e.name, e.metric), "up to date"))
    console.print(table)


def print_index_info(info) -> None:
    """What ``fashionrec info`` shows: the facts of an :class:`~fashionrec.recommend.IndexInfo` and its engines."""
    where = ", ".join(f"{key}={'|'.join(map(str, v)) if isinstance(v, list) else v}"
                      for key, v in info.catalog_where.items()) or "the whole catalog"
    facts = Table(show_header=False, box=None, pad_edge=False)
    facts.add_column(style="bold")
    facts.add_column(overflow="fold")
    for label, value in (
        ("products", f"{info.count:,}"),
        ("skipped", f"{info.skipped:,} (listed in manifest.json)" if info.skipped else "0"),
        ("backbone", f"{info.backbone} ({info.dim}-d vectors)"),
        ("weights", info.weights or "—"),
        ("embedded with", ", ".join(v for v in (info.preprocessing, info.runtime, info.precision) if v) or "—"),
        ("features", info.features + (" (signed square root, unit length)" if info.features == "power" else "")),
        ("catalog images", _look(info.catalog_look)),
        ("built", info.created or "—"),
        ("updated", info.updated or "—"),
        ("catalog", info.catalog_root or "—"),
        ("indexed", where),
    ):
        facts.add_row(label, value)
    console.print(facts)
    if info.engines:
        print_engines(info.engines)
    else:
        console.print("no search engine saved: queries scan every vector exactly "
                      "(add one with `fashionrec engine INDEX_DIR ivf`)", highlight=False, soft_wrap=True)


def _look(look) -> str:
    """The catalog look as ``fashionrec info`` shows it (what photo queries are brought to)."""
    if not look:
        return "not recorded (measured from the images on the first photo query)"
    quality = f", JPEG quality {look['quality']}" if look.get("quality") else ""
    return f"{look['width']}x{look['height']} px{quality}: photo queries are brought to this"


def _number(value, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)

