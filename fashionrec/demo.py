"""The whole pipeline in one call: catalog → EDA → index → evaluation → pictures.

``fashionrec demo`` runs :func:`run_demo`. It picks the catalog (the folder
given, else a KaggleHub copy when one is cached or downloadable, else the
generated offline sample) and the backbone (ResNet50 when its weights are
available, else the offline EfficientNet-Lite0), and writes one HTML report.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .catalog import ORIGINAL_SUBSET, Catalog, kaggle_cached_copy, load_catalog
from .errors import BackboneError, DownloadError

log = logging.getLogger(__name__)

N_QUERIES = 4
N_PHOTO_QUERIES = 50
K = 5


@dataclass
class DemoResult:
    report: Path
    catalog: str
    backbone: str
    index: Path
    evaluation: dict[str, Any] = field(default_factory=dict)


def choose_catalog(catalog: str | os.PathLike | None, say: Callable[[str], None]) -> tuple[Catalog, str, bool]:
    """The catalog to demo on, a sentence saying which one it is, and whether it is the sample."""
    if catalog is not None:
        cat = load_catalog(catalog)
        return cat, f"catalog folder {cat.root}", False
    cached = kaggle_cached_copy("small")
    if cached is not None:
        return load_catalog(cached), f"KaggleHub copy of the Kaggle catalog in {cached}", False
    try:
        from .catalog import download

        folder = download("small", timeout=5)
        return load_catalog(folder), f"Kaggle catalog downloaded with KaggleHub to {folder}", False
    except DownloadError as exc:
        say(f"no Kaggle catalog ({str(exc).split('(')[0].strip()}); using the generated offline sample")
    from .sample import sample_catalog_path

    folder = sample_catalog_path()
    return load_catalog(folder), f"generated offline sample catalog in {folder}", True


def choose_embedder(backbone: str | None, weights, say: Callable[[str], None]):
    """ResNet50 when its weights can be had, the offline backbone otherwise."""
    from .backbones import DEFAULT_BACKBONE
    from .embedding import ImageEmbedder

    if backbone is not None or weights is not None:
        embedder = ImageEmbedder(backbone, weights=weights)
        embedder.settings()  # load now: a bad choice fails before any work
        return embedder
    embedder = ImageEmbedder(DEFAULT_BACKBONE)
    try:
        embedder.settings()
        return embedder
    except BackboneError as exc:
        log.info("%s unavailable: %s", DEFAULT_BACKBONE, exc)
        say(f"{DEFAULT_BACKBONE} weights are not cached and cannot be downloaded; using efficientnet_lite0 "
            f"(pass --weights PATH to use {DEFAULT_BACKBONE})")
    embedder = ImageEmbedder("efficientnet_lite0")
    embedder.settings()
    return embedder


def run_demo(
    *,
    catalog: str | os.PathLike | None = None,
    out: str | os.PathLike = "fashionrec-demo",
    backbone: str | None = None,
    weights: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run every stage into ``out`` and return where the report is."""
    from .embedding import build_index
    from .eda import write_report
    from .evaluate import evaluate_index, evaluate_photo_queries, write_evaluation
    from .index import IndexFolder
    from .recommend import Recommender
    from .viz import recommendation_figure

    say = log or (lambda message: logging.getLogger(__name__).info(message))
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    cat, catalog_text, is_sample = choose_catalog(catalog, say)
    say(f"catalog: {catalog_text} ({len(cat):,} products)")

    eda = write_report(cat, out / "eda")
    say(f"EDA: {eda.html}")

    embedder = choose_embedder(backbone, weights, say)
    settings = embedder.settings()
    say(f"backbone: {settings['backbone']} ({settings['weights']}, {settings['runtime']} {settings['precision']})")

    # The original design recommends within women's footwear. The small drawn
    # sample, and a catalog without such products, are indexed whole.
    where: dict[str, Any] = {} if is_sample else dict(ORIGINAL_SUBSET)
    if cat.select(where).n_with_image < 2 * (K + 1):
        where = {}
    subset_text = ", ".join(f"{k}={v}" for k, v in where.items()) or "all products"
    index_dir = out / f"index-{settings['backbone']}"
    summary = build_index(cat, index_dir, embedder=embedder, where=where)
    say(f"index: {summary.count:,} vectors of {subset_text} in {index_dir} "
        f"({summary.embedded:,} embedded, {summary.reused:,} reused, {len(summary.skipped)} skipped)")

    index = IndexFolder.load(index_dir)
    rec = Recommender(index, embedder=embedder)
    evaluation = evaluate_index(index, k=10)
    photos = evaluate_photo_queries(rec, n=N_PHOTO_QUERIES, k=10)
    eval_paths = write_evaluation(evaluation, out / "evaluation", photo_queries=photos)
    p10 = evaluation.overall.get("precision@10")
    say(f"evaluation: precision@10 = {p10:.3f} (random {evaluation.baseline.get('precision@10', float('nan')):.3f}); "
        f"a new photo of a product finds it first {photos.overall['hit@1']:.0%} of the time "
        f"(chance {photos.chance['hit@1']:.2%})")
    figures = []
    for product_id in pick_queries(index.products, N_QUERIES):
        results = rec.similar(product_id, k=K)
        png = out / "recommendations" / f"similar-to-{product_id}.png"  # plot_recommendations makes the folder
        recommendation_figure(rec, results, product_id, png)
        figures.append((rec.query_product(product_id), png, results))
    say(f"recommendations: {len(figures)} pictures in {out / 'recommendations'}")

    report = write_demo_report(
        out, catalog_text=catalog_text, settings=settings, subset_text=subset_text, summary=summary,
        eda=eda, evaluation=evaluation, photos=photos, eval_paths=eval_paths, figures=figures,
    )
    return DemoResult(report, catalog_text, settings["backbone"], index_dir, evaluation.to_dict())


def pick_queries(products: pd.DataFrame, n: int) -> list[Any]:
    """One product from each of the ``n`` most common article types (deterministic)."""
    if "articleType" not in products or products["articleType"].isna().all():
        return list(products["id"].iloc[:n])
    top = products["articleType"].value_counts().index[:n]
    return [products.loc[products["articleType"] == t, "id"].min() for t in top]


def write_demo_report(out: Path, *, catalog_text, settings, subset_text, summary, eda, evaluation, photos,
                      eval_paths, figures) -> Path:
    from .output import atomic_write

    def rel(path) -> str:
        return html.escape(os.path.relpath(Path(path), out))

    e = html.escape
    rows = "".join(
        f"<tr><td>{e(str(name))}</td><td>{value:.3f}</td><td>{evaluation.baseline.get(name, float('nan')):.3f}</td></tr>"
        for name, value in evaluation.overall.items()
    )
    charts = "".join(f'<img src="{rel(p)}" alt="chart">' for p in eda.charts[:6])
    eval_pngs = [p for p in eval_paths.values() if p.suffix == ".png"]
    eval_img = "".join(f'<img src="{rel(p)}" alt="evaluation chart">' for p in eval_pngs)
    recs = "".join(
        f"<figure><img src=\"{rel(png)}\" alt=\"recommendations\"><figcaption>Like <b>{e(str(q.get('productDisplayName') or q.get('id')))}</b>"
        f" (id {e(str(q.get('id')))}): " + ", ".join(e(str(v)) for v in res["id"].tolist()) + "</figcaption></figure>"
        for q, png, res in figures
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fashionrec demo</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
img{{max-width:100%;border:1px solid #ddd;margin:.3em 0}} .grid img{{max-width:48%}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:right}}
td:first-child,th:first-child{{text-align:left}} figure{{margin:1em 0}}
</style></head><body>
<h1>fashionrec demo</h1>
<p><b>Catalog:</b> {e(catalog_text)}.<br>
<b>Backbone:</b> {e(settings['backbone'])} — weights {e(str(settings['weights']))}, {e(str(settings['runtime']))}
{e(str(settings['precision']))}, {settings['dim']}-d features, {e(settings['preprocessing']['mode'])} preprocessing.<br>
<b>Indexed:</b> {summary.count:,} products ({e(subset_text)}); {len(summary.skipped)} skipped.
Recommendations rank by Euclidean distance between features.</p>
<h2>Recommendations</h2>{recs}
<h2>Retrieval quality</h2>
<p>Leave-one-out over {evaluation.n_queries:,} products: a recommendation is relevant when it has the query's articleType.</p>
<table><tr><th>metric (k={evaluation.k})</th><th>fashionrec</th><th>random</th></tr>{rows}</table>
<p>New photos: {photos.n_queries} catalog products were re-photographed (re-framed, rotated, re-lit, blurred,
re-encoded as JPEG) and searched among all {photos.n_products:,}; the product itself came first in
{photos.overall['hit@1']:.0%} of them and within the top {photos.k} in {photos.overall[f'recall@{photos.k}']:.0%}
(chance: {photos.chance['hit@1']:.2%} and {photos.chance[f'recall@{photos.k}']:.2%}).</p>{eval_img}
<h2>Catalog exploration</h2><p><a href="{rel(eda.html)}">Full EDA report</a></p><div class="grid">{charts}</div>
</body></html>
"""
    target = out / "index.html"
    atomic_write(target, lambda f: f.write(page.encode("utf-8")))
    return target

