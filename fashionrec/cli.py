"""The ``fashionrec`` command line: a thin layer over the library.

Each command parses arguments, calls one library function and renders its
result with Rich. Errors become one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from .errors import FashionrecError

app = typer.Typer(
    name="fashionrec",
    help="Visual 'more like this' recommendations for fashion product catalogs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

WhereOption = Annotated[
    Optional[list[str]],
    typer.Option("--where", "-w", help="Attribute filter KEY=VALUE; repeat to combine (same key: any of the values)."),
]


def cli_command(func):
    """Register ``func`` as a command that reports errors as one line, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except FashionrecError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: finished work is saved; run the same command again to resume")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:  # a bug: still one line, with a way to see the traceback
            if os.environ.get("FASHIONREC_DEBUG"):
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
                "(set FASHIONREC_DEBUG=1 for the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return app.command()(wrapper)


@app.callback()
def _configure(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what each stage does.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
        force=True,
    )


# --------------------------------------------------------------------------- download


@cli_command
def download(
    variant: Annotated[str, typer.Option(help="small (60x80 images) or full (high resolution).")] = "small",
    dest: Annotated[Optional[Path], typer.Option(help="Copy the dataset into this folder instead of KaggleHub's cache.")] = None,
) -> None:
    """Download the Kaggle 'Fashion Product Images' catalog with KaggleHub and print its folder."""
    from .catalog import download as download_catalog

    folder = download_catalog(variant, dest)
    console.print(str(folder), highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- eda


@cli_command
def eda(
    catalog: Annotated[Path, typer.Argument(help="Catalog folder (styles.csv + images/, or a folder of images).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the charts, index.html and summary.json.")],
    where: WhereOption = None,
) -> None:
    """Explore a catalog: counts by attribute as charts, an HTML report and summary.json."""
    from .catalog import load_catalog, parse_where
    from .eda import write_report

    filters = parse_where(where)
    cat = load_catalog(catalog)
    report = write_report(cat.select(filters), out, where=filters)
    summary = report.summary
    console.print(
        f"{summary['total_products']:,} products ({summary['with_image']:,} with an image, "
        f"{summary['without_image']:,} without; {summary['repaired_rows']} CSV rows repaired)"
    )
    console.print(f"report: {report.html}", highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- index


@cli_command
def index(
    catalog: Annotated[Path, typer.Argument(help="Catalog folder to embed.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index folder to create or update.")],
    backbone: Annotated[Optional[str], typer.Option(help="Backbone name (see `fashionrec backbones`). Default: resnet50.")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Local weights file (state dict) for the backbone.")] = None,
    where: WhereOption = None,
    batch_size: Annotated[int, typer.Option(help="Images per model call.")] = 32,
    workers: Annotated[Optional[int], typer.Option(help="Image decoding threads (default: up to 4).")] = None,
    runtime: Annotated[str, typer.Option(help="auto, torch, onnxruntime or openvino.")] = "auto",
    preprocessing: Annotated[Optional[str], typer.Option(help="crop or pad (default: the backbone's).")] = None,
    precision: Annotated[Optional[str], typer.Option(help="fp32 (default) or bf16 (OpenVINO; faster, less exact).")] = None,
) -> None:
    """Embed catalog images into an index folder (resumable, incremental)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .catalog import load_catalog, parse_where
    from .embedding import ImageEmbedder, build_index

    filters = parse_where(where)
    cat = load_catalog(catalog)
    embedder = ImageEmbedder(backbone, weights=weights, runtime=runtime, precision=precision,
                             preprocessing=_preprocessing(backbone, preprocessing))
    embedder.settings()  # load the model first: missing weights fail before any progress bar
    with Progress(
        TextColumn("[bold]embedding[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as bar:
        task = bar.add_task("embed", total=None, rate="")

        def on_progress(done: int, total: int) -> None:
            elapsed = bar.tasks[task].elapsed or 0.0
            rate = f"{done / elapsed:,.1f} img/s" if elapsed > 0 else ""
            bar.update(task, completed=done, total=total, rate=rate)

        summary = build_index(cat, out, embedder=embedder, where=filters, batch_size=batch_size,
                              workers=workers, progress=on_progress)
    _print_index_summary(summary)


def _preprocessing(backbone: str | None, mode: str | None):
    if mode is None:
        return None
    from .backbones import DEFAULT_BACKBONE, get_backbone

    if mode not in ("crop", "pad"):
        raise FashionrecError(f"--preprocessing {mode!r}: expected crop or pad")
    return dataclasses.replace(get_backbone(backbone or DEFAULT_BACKBONE).preprocessing, mode=mode)


def _print_index_summary(summary) -> None:
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


# --------------------------------------------------------------------------- backbones


@cli_command
def backbones() -> None:
    """List the registered backbones."""
    from .backbones import DEFAULT_BACKBONE, list_backbones

    table = Table()
    for column in ("name", "dim", "input", "preprocessing", "weights", "licence"):
        table.add_column(column)
    for cfg in list_backbones():
        p = cfg.preprocessing
        name = cfg.name + (" (default)" if cfg.name == DEFAULT_BACKBONE else "")
        table.add_row(name, str(cfg.dim), str(p.input_size), f"{p.mode}, {p.interpolation}", cfg.weights, cfg.licence)
    console.print(table)


# --------------------------------------------------------------------------- recommend


@cli_command
def recommend(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX_DIR", help="Index folder built by `fashionrec index`.")],
    product_id: Annotated[Optional[str], typer.Option("--id", help="Query by a catalog product id.")] = None,
    image: Annotated[Optional[str], typer.Option("--image", help="Query by a photo: a file path or an http(s) URL.")] = None,
    k: Annotated[int, typer.Option("-k", help="Number of recommendations.")] = 5,
    where: WhereOption = None,
    metric: Annotated[str, typer.Option(help="euclidean or cosine.")] = "euclidean",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    plot: Annotated[Optional[Path], typer.Option(help="Write a PNG with the query and its recommendations.")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Weights file the index was built with (photo queries).")] = None,
    catalog: Annotated[Optional[Path], typer.Option(help="Catalog folder for pictures, if it moved since indexing.")] = None,
) -> None:
    """Recommend the products most similar to a catalog product or a photo."""
    from .catalog import find_catalog_root, parse_where
    from .recommend import Recommender

    if (product_id is None) == (image is None):
        raise FashionrecError("give exactly one of --id ID or --image PATH_OR_URL")
    filters = parse_where(where)
    rec = Recommender.load(index_dir, weights=weights, catalog_root=find_catalog_root(catalog) if catalog else None)
    if product_id is not None:
        results = rec.similar(product_id, k=k, where=filters, metric=metric)
        query: dict[str, Any] = rec.query_product(product_id)
    else:
        from .images import open_image

        picture = open_image(image)  # once: a URL is fetched for the search and the plot alike
        results = rec.similar_to_image(picture, k=k, where=filters, metric=metric)
        query = {"image": image}
    if plot is not None:
        from .viz import recommendation_figure

        recommendation_figure(rec, results, product_id if product_id is not None else picture, plot)
    if as_json:
        payload = {"query": _jsonable(query), "results": [_jsonable(r) for r in results.to_dict("records")]}
        sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        return
    _print_results(query, results)
    if plot is not None:
        console.print(f"picture: {plot}", highlight=False, soft_wrap=True)


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    from .output import json_value

    return {key: json_value(value) for key, value in record.items()}


def _print_results(query: dict[str, Any], results) -> None:
    name = query.get("productDisplayName") or query.get("image") or query.get("id")
    table = Table(title=f"like: {name}", title_justify="left")
    columns = [c for c in ("id", "distance", "productDisplayName", "articleType", "baseColour", "gender") if c in results]
    for column in columns:
        table.add_column(column, justify="right" if column in ("id", "distance") else "left")
    for row in results.itertuples(index=False):
        values = row._asdict()
        table.add_row(*[f"{values[c]:.4f}" if c == "distance" else str(values[c]) for c in columns])
    console.print(table)


# --------------------------------------------------------------------------- evaluate


@cli_command
def evaluate(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX_DIR", help="Index folder built by `fashionrec index`.")],
    k: Annotated[int, typer.Option("-k", help="Cut-off rank.")] = 10,
    relevance: Annotated[str, typer.Option(help="articleType or articleType+baseColour.")] = "articleType",
    metric: Annotated[str, typer.Option(help="euclidean or cosine.")] = "euclidean",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    out: Annotated[Optional[Path], typer.Option(help="Folder for evaluation.json and the chart.")] = None,
    normalize: Annotated[bool, typer.Option("--normalize", help="L2-normalise features before ranking.")] = False,
    sample: Annotated[Optional[int], typer.Option(help="Evaluate this many random queries (default: all).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for --sample and --photo-queries.")] = 0,
    photo_queries: Annotated[int, typer.Option(
        help="Also query with this many simulated new photos of catalog products (re-framed, rotated, "
             "re-lit, re-encoded) and report how often each finds its own product.")] = 0,
) -> None:
    """Leave-one-out retrieval quality of an index (precision@k, mAP@k, nDCG@k, hit@1)."""
    from .evaluate import evaluate_index, write_evaluation
    from .index import IndexFolder

    result = evaluate_index(IndexFolder.load(index_dir), k=k, relevance=relevance, metric=metric,
                            normalize=normalize, sample=sample, seed=seed)
    photos = None
    if photo_queries:
        from .evaluate import evaluate_photo_queries
        from .recommend import Recommender

        photos = evaluate_photo_queries(Recommender.load(index_dir), n=photo_queries, k=k, seed=seed, metric=metric)
    paths = write_evaluation(result, out, photo_queries=photos) if out is not None else None
    if as_json:
        payload = result.to_dict()
        if photos is not None:
            payload["photo_queries"] = photos.to_dict()
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
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
    if paths:
        console.print(f"written: {', '.join(str(p) for p in paths.values())}", highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- demo


@cli_command
def demo(
    catalog: Annotated[Optional[Path], typer.Option(help="Catalog folder; default: a cached KaggleHub copy, else the offline sample.")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the report.")] = Path("fashionrec-demo"),
    backbone: Annotated[Optional[str], typer.Option(help="Backbone; default resnet50 when its weights are available, else efficientnet_lite0.")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="Local weights file for the backbone.")] = None,
) -> None:
    """Run the whole pipeline and write one HTML report: EDA, index, evaluation, recommendations."""
    from .demo import run_demo

    result = run_demo(catalog=catalog, out=out, backbone=backbone, weights=weights, log=_demo_log)
    console.print(f"report: {result.report}", highlight=False, soft_wrap=True)


def _demo_log(message: str) -> None:
    console.print(message, highlight=False, soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
