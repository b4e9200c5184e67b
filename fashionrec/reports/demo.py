"""The whole pipeline in one call: catalog → EDA → index → evaluation → pictures.

``fashionrec demo`` runs :func:`run_demo`. It picks the catalog (the folder
given, else a KaggleHub copy when one is cached or downloadable, else the
generated offline sample) and the backbone (ResNet50 when its weights are
available, else the offline EfficientNet-Lite0), and writes one HTML report.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from ..catalog import ORIGINAL_SUBSET, Catalog, kaggle_cached_copy, load_catalog
from ..errors import BackboneError, DownloadError

log = logging.getLogger(__name__)

N_QUERIES = 4
"""Products whose recommendations the demo pictures (one per most common articleType)."""
N_PHOTO_QUERIES = 50
"""Products re-photographed for the new-photo evaluation."""
K = 5
"""Recommendations per pictured query."""


@dataclass
class DemoResult:
    """What :func:`run_demo` wrote."""

    report: Path
    """The demo page, ``<out>/index.html``."""
    catalog: str
    """A sentence saying which catalog was used."""
    backbone: str
    """The backbone the index was built with."""
    index: Path
    """The index folder."""
    evaluation: dict[str, Any] = field(default_factory=dict)
    """The leave-one-out evaluation, as ``evaluation.json`` holds it."""


def choose_catalog(catalog: str | os.PathLike | None, say: Callable[[str], None]) -> tuple[Catalog, str, bool]:
    """The catalog to demo on, a sentence saying which one it is, and whether it is the sample."""
    if catalog is not None:
        cat = load_catalog(catalog)
        return cat, f"catalog folder {cat.root}", False
    cached = kaggle_cached_copy("small")
    if cached is not None:
        return load_catalog(cached), f"KaggleHub copy of the Kaggle catalog in {cached}", False
    try:
        from ..catalog import download

        folder = download("small", timeout=5)
        return load_catalog(folder), f"Kaggle catalog downloaded with KaggleHub to {folder}", False
    except DownloadError as exc:
        say(f"no Kaggle catalog ({str(exc).split('(')[0].strip()}); using the generated offline sample")
    from ..datasets import sample_catalog_path

    folder = sample_catalog_path()
    return load_catalog(folder), f"generated offline sample catalog in {folder}", True


def choose_embedder(backbone: str | None, weights, say: Callable[[str], None]):
    """ResNet50 when its weights can be had, the offline backbone otherwise."""
    from ..models import DEFAULT_BACKBONE
    from ..embedding import ImageEmbedder

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
    """Run every stage into ``out`` and return where the report is.

    ``out`` receives ``eda/`` (the EDA report), ``index-<backbone>/`` (with a
    copy of ``evaluation.json``, for ``fashionrec serve``'s about page),
    ``evaluation/``, ``recommendations/similar-to-<id>.png`` and the page
    ``index.html``. ``catalog``, ``backbone`` and ``weights`` override the
    automatic choices (see the module docstring). ``log`` receives one
    sentence per stage (default: this module's logger at INFO).
    """
    from ..embedding import build_index
    from ..evaluation import EVALUATION_FILE, evaluate_index, evaluate_photo_queries, write_evaluation
    from ..index import IndexFolder
    from ..output import atomic_write
    from ..recommend import Recommender
    from .eda import write_report
    from .pictures import recommendation_figure

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
    # The index folder keeps its own copy, so whoever serves the index can show its quality.
    summary_json = Path(eval_paths["json"]).read_bytes()
    atomic_write(index_dir / EVALUATION_FILE, lambda f: f.write(summary_json))
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
    """Write the demo page ``<out>/index.html`` (template ``demo.html``); return its path.

    ``settings`` are the embedder's settings, ``summary`` the index build's,
    ``eda`` the :class:`~fashionrec.reports.EdaReport`, ``evaluation`` and
    ``photos`` the leave-one-out and new-photo evaluations, ``eval_paths`` the
    files :func:`~fashionrec.evaluation.write_evaluation` wrote, and
    ``figures`` ``(query product, PNG path, results frame)`` per query. Every
    picture is linked by its path relative to ``out``.
    """
    from ..output import atomic_write
    from .eda import chart_alt
    from .html import Table, render

    def rel(path) -> str:  # a link relative to the page
        return quote(Path(os.path.relpath(Path(path), out)).as_posix())

    k = photos.k
    metrics = Table(
        (f"metric (k={evaluation.k})", "fashionrec", "random"),
        [(str(name), f"{value:.3f}", f"{evaluation.baseline.get(name, float('nan')):.3f}")
         for name, value in evaluation.overall.items()],
        numeric=(1, 2),
    )
    recommendations = []
    for query, png, results in figures:
        name = str(query.get("productDisplayName") or query.get("id"))
        recommendations.append({
            "src": rel(png), "name": name, "id": str(query.get("id")),
            "results": [str(v) for v in results["id"].tolist()],
            "alt": f"{name} (id {query.get('id')}) and the {len(results)} products most similar to it",
        })
    page = render(
        "demo.html",
        catalog_text=catalog_text,
        backbone={
            "name": settings["backbone"], "weights": str(settings["weights"]), "runtime": str(settings["runtime"]),
            "precision": str(settings["precision"]), "dim": settings["dim"],
            "preprocessing": settings["preprocessing"]["mode"],
        },
        indexed=summary.count,
        skipped=len(summary.skipped),
        subset_text=subset_text,
        figures=recommendations,
        leave_one_out={"n_queries": evaluation.n_queries},
        metrics=metrics,
        photos={
            "n_queries": photos.n_queries, "n_products": photos.n_products, "k": k,
            "hit": photos.overall["hit@1"], "recall": photos.overall[f"recall@{k}"],
            "chance_hit": photos.chance["hit@1"], "chance_recall": photos.chance[f"recall@{k}"],
        },
        evaluation_charts=[
            {"src": rel(p), "alt": f"Bar chart: precision@{evaluation.k} of fashionrec and of a random ranking, "
                                   "by articleType"}
            for p in eval_paths.values() if Path(p).suffix == ".png"
        ],
        eda_page=rel(eda.html),
        eda_charts=[{"src": rel(p), "alt": chart_alt(p)} for p in eda.charts[:6]],
    )
    target = out / "index.html"
    atomic_write(target, lambda f: f.write(page.encode("utf-8")))
    return target
