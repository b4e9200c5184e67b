"""The commands of ``fashionrec``: each parses its options, calls the library and renders the result.

Heavy modules (torch, matplotlib, pandas) are imported inside each command, so
``fashionrec --help`` and errors in arguments stay fast.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from ..errors import FashionrecError
from .app import WhereOption, cli_command, console, err_console
from .render import print_engines, print_evaluation, print_index_info, print_index_summary, print_results, progress_bar

EngineOption = Annotated[str, typer.Option(
    "--engine", help="Search engine answering the queries: exact (default), ivf / hnsw when built in the index "
                     "folder (`fashionrec engine`), or milvus when pushed (`fashionrec milvus push`).")]
MilvusUriOption = Annotated[Optional[str], typer.Option(
    "--milvus-uri", metavar="URI",
    help="With --engine milvus: the Milvus server (default: $FASHIONREC_MILVUS_URI, else the one the index was "
         "pushed to).")]
MatchCatalogOption = Annotated[bool, typer.Option(
    "--match-catalog-size/--no-match-catalog-size",
    help="Bring photo queries to the catalog images' size and JPEG compression before embedding them.")]


def _use_milvus_uri(uri: str | None) -> None:
    """``--milvus-uri``: the server ``--engine milvus`` talks to, for this process (and the web server's workers)."""
    if uri:
        from ..search.milvus.connection import URI_ENV

        os.environ[URI_ENV] = uri


# --------------------------------------------------------------------------- download


@cli_command
def download(
    variant: Annotated[str, typer.Option(help="small (60x80 images) or full (high resolution).")] = "small",
    dest: Annotated[Optional[Path], typer.Option(help="Copy the dataset into this folder instead of KaggleHub's cache.")] = None,
) -> None:
    """Download the Kaggle 'Fashion Product Images' catalog with KaggleHub and print its folder."""
    from ..catalog import download as download_catalog

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
    from ..catalog import load_catalog, parse_where
    from ..reports import write_report

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
    features: Annotated[str, typer.Option(
        help="raw: the backbone's features as they are (the reference design); power: signed square root, then "
             "unit length (recommended: better neighbours on every measure, see the README's Quality).")] = "raw",
    max_pixels: Annotated[Optional[int], typer.Option(
        help="Skip image files that declare more pixels (width x height) than this, read from the header "
             "before decoding. Default: 50,000,000.")] = None,
    follow_links: Annotated[bool, typer.Option(
        "--follow-links", help="Also read image files that are symbolic links to files outside the catalog folder.")] = False,
    checkpoint_every: Annotated[Optional[int], typer.Option(
        help="Images embedded between two checkpoints (what an interrupted run can lose at most). Default: 256.")] = None,
    engine: Annotated[Optional[list[str]], typer.Option(
        "--engine", help="Also build this approximate search engine (ivf, hnsw) into the index folder; repeatable. "
                         "Engines already saved there are kept up to date on every run.")] = None,
    engine_metric: Annotated[str, typer.Option(
        "--engine-metric", help="Distance the engines of --engine are built for: euclidean or cosine.")] = "euclidean",
    target_recall: Annotated[float, typer.Option(
        "--target-recall", help="Recall@10 the engines of --engine are tuned to reach, measured against exact search.")] = 0.95,
    ray: Annotated[Optional[str], typer.Option(
        "--ray", metavar="[ADDRESS]",
        help="Embed on Ray: alone (or 'local'), a Ray runtime on this machine for the run; 'auto', HOST:PORT or "
             "ray://HOST:PORT, a running cluster (`ray start --head`). Every node needs the catalog at the "
             "same path and fashionrec installed. Needs pip install 'fashionrec[ray]'.")] = None,
    ray_actors: Annotated[Optional[int], typer.Option(
        "--ray-actors", help="With --ray: model replicas (Ray actors of one CPU each). "
                             "Default: the cluster's CPUs less a quarter, left for decoding.")] = None,
) -> None:
    """Embed catalog images into an index folder (resumable, incremental); optionally build search engines."""
    from ..catalog import load_catalog, parse_where
    from ..embedding import CHECKPOINT_EVERY, ImageEmbedder, build_index
    from ..images import DEFAULT_MAX_PIXELS
    from ..index.manifest import check_writable_folder

    # Cheap checks first: a mistake in an option or in --out must not wait for the model or the images.
    from ..embedding.features import check_features

    check_features(features)
    if batch_size < 1:
        raise FashionrecError(f"--batch-size {batch_size}: expected a whole number of images per model call, 1 or more")
    if workers is not None and workers < 0:
        raise FashionrecError(f"--workers {workers}: expected a whole number of decoding threads, "
                               "1 or more (or 0 for the default: up to 4)")
    if max_pixels is not None and max_pixels < 1:
        raise FashionrecError(f"--max-pixels {max_pixels}: expected a whole number of pixels, 1 or more")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise FashionrecError(f"--checkpoint-every {checkpoint_every}: expected a whole number of images, 1 or more")
    executor = None
    if ray is None and ray_actors is not None:
        raise FashionrecError(f"--ray-actors {ray_actors}: only used with --ray [ADDRESS] (e.g. --ray alone)")
    if ray is not None:
        from ..embedding import RayExecutor

        if workers is not None:
            raise FashionrecError(f"--workers {workers}: sets the decoding threads of a local build; with --ray, "
                                  "decoding runs in Ray tasks (leave --workers out)")
        if ray_actors is not None and ray_actors < 1:
            raise FashionrecError(f"--ray-actors {ray_actors}: expected a whole number of actors, 1 or more")
        executor = RayExecutor(ray, actors=ray_actors)  # a missing ray package fails here, naming the extra
    to_build = _engines_to_build(engine or [], engine_metric, target_recall)
    filters = parse_where(where)
    check_writable_folder(out)
    cat = load_catalog(catalog)
    embedder = ImageEmbedder(backbone, weights=weights, runtime=runtime, precision=precision, features=features,
                             preprocessing=_preprocessing(backbone, preprocessing),
                             max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
    embedder.settings()  # load the model first: missing weights fail before any progress bar
    with progress_bar("embedding", "img") as on_progress:
        summary = build_index(cat, out, embedder=embedder, where=filters, batch_size=batch_size, workers=workers,
                              progress=on_progress, checkpoint_every=checkpoint_every or CHECKPOINT_EVERY,
                              follow_links=follow_links, executor=executor)
    print_index_summary(summary)
    _keep_engines(out, to_build, engine_metric, target_recall)


def _engines_to_build(names: list[str], metric: str, target_recall: float) -> list[str]:
    """The engines of ``index --engine`` that keep files (``exact`` keeps none), checked before any work."""
    from ..search import engine_class
    from ..validation import check_metric

    check_metric(metric)
    _check_target_recall(target_recall)
    wanted = []
    for name in names:
        if engine_class(name).needs_build and name not in wanted:  # unknown names fail here, with the registry's list
            wanted.append(name)
    return wanted


def _check_target_recall(target_recall: float) -> None:
    if not 0 < target_recall <= 1:
        raise FashionrecError(f"--target-recall {target_recall}: expected a recall@10 above 0 and at most 1 "
                              "(e.g. 0.95)")


def _keep_engines(out: Path, names: list[str], metric: str, target_recall: float) -> None:
    """After ``fashionrec index``: bring the engines saved in ``out`` to its new version, build those asked for
    that are not saved yet, and print their table (nothing when the folder has none and none was asked for)."""
    from ..index import ENGINES_DIR, IndexFolder, exclusive_build_lock
    from ..search import build_saved_engine, saved_engines, update_saved_engines

    if not names and not (out / ENGINES_DIR).is_dir():
        return
    with exclusive_build_lock(out):
        index = IndexFolder.load(out)
        done = {(saved.name, saved.metric): action for saved, action in update_saved_engines(index)}
        for name in names:
            if (name, metric) not in done:
                saved = build_saved_engine(index, name, metric=metric, target_recall=target_recall)
                done[(saved.name, saved.metric)] = "built"
        engines = saved_engines(index)
    if engines:
        print_engines(_engine_infos(engines), done)


def _engine_infos(engines) -> list:
    """:class:`EngineInfo` s of saved engines, with the number of held-out products their recall was measured on."""
    from ..recommend.results import EngineInfo

    return [EngineInfo.model_validate({"recall_queries": (e.description.get("tuning") or {}).get("queries"),
                                       **e.summary()}) for e in engines]


# --------------------------------------------------------------------------- engine


ENGINE_OPTIONS = {"nlist": "--nlist", "M": "--M", "ef_construction": "--ef-construction"}
"""Engine constructor parameters `fashionrec engine` sets, and their options."""


@cli_command
def engine(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX_DIR", help="Index folder built by `fashionrec index`.")],
    name: Annotated[str, typer.Argument(metavar="NAME", help="Engine to build: ivf or hnsw.")],
    metric: Annotated[str, typer.Option(help="Distance the engine is built for: euclidean or cosine.")] = "euclidean",
    target_recall: Annotated[Optional[float], typer.Option(
        "--target-recall", help="Recall@10 the engine is tuned to reach, measured against exact search. "
                                "Default: 0.95, or the saved engine's.")] = None,
    rebuild: Annotated[bool, typer.Option(
        "--rebuild", help="Build the engine again even when it is up to date.")] = False,
    nlist: Annotated[Optional[int], typer.Option(
        "--nlist", help="ivf: number of lists (default: chosen from the number of vectors).")] = None,
    m: Annotated[Optional[int], typer.Option("--M", help="hnsw: links per vector in the graph (default 32).")] = None,
    ef_construction: Annotated[Optional[int], typer.Option(
        "--ef-construction", help="hnsw: candidates kept while building the graph (default 40).")] = None,
) -> None:
    """Add a search engine to an index folder, or update or rebuild it, without embedding anything again."""
    from ..index import IndexFolder, exclusive_build_lock
    from ..search import build_saved_engine, create_engine, engine_class, saved_engines, update_saved_engines
    from ..validation import check_metric

    cls = engine_class(name)
    check_metric(metric)
    if not cls.needs_build:
        raise FashionrecError(f"the {name} engine keeps no files in the index folder: nothing to build "
                              "(it is made when queried); expected an engine such as ivf or hnsw")
    if target_recall is not None:
        _check_target_recall(target_recall)
    given = {key: value for key, value in (("nlist", nlist), ("M", m), ("ef_construction", ef_construction))
             if value is not None}
    try:  # options the engine does not take, and values out of range, fail before the index loads
        create_engine(name, metric=metric, **given)
    except TypeError as exc:
        accepted = set(inspect.signature(cls).parameters)
        wrong = ", ".join(ENGINE_OPTIONS[key] for key in given if key not in accepted)
        message = f"{wrong}: not an option of the {name} engine" if wrong else f"the {name} engine: {exc}"
        raise FashionrecError(message) from None
    except ValueError as exc:
        raise FashionrecError(f"the {name} engine: {exc}") from None
    if not index_dir.is_dir():
        raise FashionrecError(f"index folder {index_dir} not found; expected a folder built by `fashionrec index`")
    with exclusive_build_lock(index_dir):
        index = IndexFolder.load(index_dir)
        current = {(e.name, e.metric): e for e in saved_engines(index)}
        saved = current.get((name, metric))
        params = dict((saved.description.get("params") or {}) if saved is not None else {})
        wanted = {**given, "target_recall": target_recall if target_recall is not None
                  else params.get("target_recall", 0.95)}
        changed = [f"{ENGINE_OPTIONS.get(key, '--target-recall')} {params.get(key)} → {value}"
                   for key, value in wanted.items() if saved is not None and params.get(key) != value]
        done: dict[tuple[str, str], str] = {}
        if saved is None or rebuild or changed:
            # The saved engine's other parameters are kept; nlist is chosen again for today's size unless given.
            keep = {key: value for key, value in params.items() if key not in wanted and key not in ("metric", "nlist")}
            build_saved_engine(index, name, metric=metric, **keep, **wanted)
            done[(name, metric)] = ("built" if saved is None else
                                    f"rebuilt ({'--rebuild' if rebuild and not changed else ', '.join(changed)})")
        for other, action in update_saved_engines(index):  # the others too: one version of the index for all
            done.setdefault((other.name, other.metric), action)
        engines = saved_engines(index)
    print_engines(_engine_infos(engines), done)


# --------------------------------------------------------------------------- info


@cli_command
def info(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX_DIR", help="Index folder built by `fashionrec index`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the IndexInfo JSON (as /api/index answers).")] = False,
) -> None:
    """What an index folder holds: backbone, products, dates, catalog, and its search engines with their recall."""
    from ..recommend import Recommender

    if not index_dir.is_dir():
        raise FashionrecError(f"index folder {index_dir} not found; expected a folder built by `fashionrec index`")
    facts = Recommender.load(index_dir).info()
    if as_json:
        sys.stdout.write(facts.model_dump_json(indent=2) + "\n")
        return
    print_index_info(facts)


@cli_command
def duplicates(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX_DIR", help="Index folder built by `fashionrec index`.")],
    threshold: Annotated[Optional[float], typer.Option(
        help="Group products within this distance of each other. Default: --auto.")] = None,
    auto: Annotated[bool, typer.Option(
        "--auto", help="Pick the threshold from the products' nearest-neighbour distances (the default).")] = False,
    where: WhereOption = None,
    metric: Annotated[str, typer.Option(help="euclidean or cosine.")] = "euclidean",
    engine_name: Annotated[str, typer.Option("--engine", help="Search engine (exact, ivf, hnsw, milvus).")] = "exact",
    milvus_uri: MilvusUriOption = None,
    out: Annotated[Optional[Path], typer.Option(
        help="Folder for groups.csv, groups.json and groups.html (the groups' pictures, largest first).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the groups as JSON.")] = False,
) -> None:
    """Groups of near-duplicate products: features within a distance of each other (connected components)."""
    _use_milvus_uri(milvus_uri)
    from ..catalog import parse_where
    from ..recommend import Recommender
    from ..reports.duplicates import scan_summary, write_duplicate_report

    if threshold is not None and auto:
        raise FashionrecError("give --threshold D or --auto, not both")
    if threshold is not None and not (threshold >= 0 and threshold != float("inf")):
        raise FashionrecError(f"--threshold {threshold}: expected a distance >= 0")
    if not index_dir.is_dir():
        raise FashionrecError(f"index folder {index_dir} not found; expected a folder built by `fashionrec index`")
    rec = Recommender.load(index_dir, engine=engine_name)
    with progress_bar("searching", "products") as on_progress:
        scan = rec.duplicates(threshold, where=parse_where(where), metric=metric, progress=on_progress)
    summary = scan_summary(scan)
    groups = summary["group_list"]
    if out is not None:
        paths = write_duplicate_report(out, summary, rec)
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    console.print(f"threshold {scan.threshold:.4g} ({summary['why']})", highlight=False, soft_wrap=True)
    console.print(f"{len(groups)} groups, {scan.products_in_groups} of {scan.searched} products, "
                  f"in {scan.seconds:.1f} s")
    table = Table("group", "size", "products (id)", "closest pair")
    for n, g in enumerate(groups[:20], 1):
        closest = g["pairs"][0]
        table.add_row(str(n), str(g["size"]), ", ".join(map(str, g["ids"][:8])) + (" ..." if g["size"] > 8 else ""),
                      f"{closest['a']} - {closest['b']}: {closest['distance']:.4g}")
    console.print(table)
    if len(groups) > 20:
        console.print(f"... {len(groups) - 20} more groups" + (f" in {paths['json']}" if out else " (--out DIR)"))
    if out is not None:
        console.print(f"pictures of the groups: {paths['html']}", highlight=False, soft_wrap=True)


def _preprocessing(backbone: str | None, mode: str | None):
    if mode is None:
        return None
    from ..models import DEFAULT_BACKBONE, get_backbone

    if mode not in ("crop", "pad"):
        raise FashionrecError(f"--preprocessing {mode!r}: expected crop or pad")
    return dataclasses.replace(get_backbone(backbone or DEFAULT_BACKBONE).preprocessing, mode=mode)


# --------------------------------------------------------------------------- backbones


@cli_command
def backbones() -> None:
    """List the registered backbones."""
    from ..models import DEFAULT_BACKBONE, list_backbones

    table = Table()
    for column in ("name", "dim", "input", "preprocessing", "weights", "licence"):
        table.add_column(column)
    for cfg in list_backbones():
        p = cfg.preprocessing
        name = cfg.name + (" (default)" if cfg.name == DEFAULT_BACKBONE else "")
        table.add_row(name, str(cfg.dim), str(p.input_size), f"{p.mode}, {p.interpolation}", cfg.weights, cfg.licence)
    console.print(table)


# --------------------------------------------------------------------------- recommend


PRIVATE_URL_HINT = "pass --allow-private-urls for intranet hosts"
"""How a refused private-host URL's error ends on the command line."""


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
    allow_private_urls: Annotated[bool, typer.Option(
        "--allow-private-urls", help="Let image URLs reach private, loopback and link-local addresses (intranet catalogs).")] = False,
    url_timeout: Annotated[float, typer.Option(
        "--url-timeout", metavar="SECONDS", help="Most seconds one picture URL may take to download, redirects included.")] = 60.0,
    engine: EngineOption = "exact",
    milvus_uri: MilvusUriOption = None,
    dedupe: Annotated[bool, typer.Option(
        "--dedupe", help="Collapse near-duplicates: leave out products within the duplicate threshold of a result "
                         "already listed (or of the query product), listing them with it.")] = False,
    dedupe_threshold: Annotated[Optional[float], typer.Option(
        "--dedupe-threshold", metavar="D",
        help="With --dedupe: the distance below which products are duplicates (default: the one "
             "`fashionrec duplicates --auto` picks).")] = None,
    match_catalog_size: MatchCatalogOption = True,
    prefer_kind: Annotated[bool, typer.Option(
        "--prefer-kind", help="With --image: predict the photo's articleType (and colour) from its nearest products "
                              "and list products of that articleType first.")] = False,
) -> None:
    """Recommend the products most similar to a catalog product or a photo."""
    _use_milvus_uri(milvus_uri)
    from ..catalog import find_catalog_root, parse_where
    from ..images import PrivateHostError
    from ..recommend import Recommender

    if (product_id is None) == (image is None):
        raise FashionrecError("give exactly one of --id ID or --image PATH_OR_URL")
    if not 0 < url_timeout < float("inf"):
        raise FashionrecError(f"--url-timeout {url_timeout}: expected a number of seconds above 0")
    if dedupe_threshold is not None and not dedupe:
        raise FashionrecError("--dedupe-threshold needs --dedupe")
    if dedupe_threshold is not None and not 0 <= dedupe_threshold < float("inf"):
        raise FashionrecError(f"--dedupe-threshold {dedupe_threshold}: expected a distance >= 0")
    filters = parse_where(where)
    rec = Recommender.load(index_dir, weights=weights, catalog_root=find_catalog_root(catalog) if catalog else None,
                           allow_private_urls=allow_private_urls, engine=engine)
    collapsing = {"dedupe": dedupe, "dedupe_threshold": dedupe_threshold}
    if product_id is not None:
        results = rec.similar(product_id, k=k, where=filters, metric=metric, **collapsing)
        query: dict[str, Any] = rec.query_product(product_id)
        if dedupe:
            query["duplicates"] = results.attrs["query_duplicates"]
    else:
        from ..images import open_image

        try:  # once: a URL is fetched for the search and the plot alike
            picture = open_image(image, allow_private_urls=allow_private_urls, total_timeout=url_timeout)
        except PrivateHostError as exc:
            raise exc.with_hint(PRIVATE_URL_HINT) from None
        results = rec.similar_to_image(picture, k=k, where=filters, metric=metric, match_catalog=match_catalog_size,
                                       prefer_kind=prefer_kind, **collapsing)
        query = {"image": image}
        if prefer_kind:
            query["predicted"] = results.attrs["predicted"]
    if plot is not None:
        from ..reports import recommendation_figure

        recommendation_figure(rec, results, product_id if product_id is not None else picture, plot,
                              image_options={"total_timeout": url_timeout})
    if as_json:
        from ..recommend import Recommendations

        sys.stdout.write(Recommendations.from_frame(query, results).to_json() + "\n")
        return
    print_results(query, results)
    if plot is not None:
        console.print(f"picture: {plot}", highlight=False, soft_wrap=True)


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
    photos: Annotated[Optional[Path], typer.Option(
        "--photos", metavar="DIR",
        help="Also search with the real photos of DIR, named by product id (e.g. 15970.jpg), and report how often "
             "each finds its own product, overall and per articleType.")] = None,
    match_catalog_size: MatchCatalogOption = True,
    engine: EngineOption = "exact",
    milvus_uri: MilvusUriOption = None,
) -> None:
    """Leave-one-out retrieval quality of an index (precision@k, mAP@k, nDCG@k, hit@1); photo queries too."""
    _use_milvus_uri(milvus_uri)
    from ..evaluation import evaluate_index, write_evaluation
    from ..index import IndexFolder

    if sample is not None and sample < 1:
        raise FashionrecError(f"--sample {sample}: expected a number of queries, 1 or more (or leave it out for all)")
    if photo_queries < 0:
        raise FashionrecError(f"--photo-queries {photo_queries}: expected a number of photos, 0 (none) or more")
    if photos is not None:
        from ..evaluation.real_photos import photo_files

        photo_files(photos)  # a wrong folder fails before the evaluation's work
    index = IndexFolder.load(index_dir)  # once: the photo queries search the same loaded folder
    result = evaluate_index(index, k=k, relevance=relevance, metric=metric,
                            normalize=normalize, sample=sample, seed=seed, engine=engine)
    simulated = real = None
    if photo_queries or photos is not None:
        from ..recommend import Recommender

        rec = Recommender(index, engine=engine, match_catalog=match_catalog_size)
    if photo_queries:
        from ..evaluation import evaluate_photo_queries

        simulated = evaluate_photo_queries(rec, n=photo_queries, k=k, seed=seed, metric=metric)
    if photos is not None:
        from ..evaluation import evaluate_photo_folder

        with progress_bar("photos", "photos") as on_progress:
            real = evaluate_photo_folder(rec, photos, k=k, metric=metric, progress=on_progress)
    paths = write_evaluation(result, out, photo_queries=simulated, real_photos=real) if out is not None else None
    if as_json:
        payload = result.summary(simulated, real).model_dump(mode="json")  # the evaluation.json model
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    print_evaluation(result, simulated, real)
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
    from ..reports import run_demo

    result = run_demo(catalog=catalog, out=out, backbone=backbone, weights=weights, log=_demo_log)
    console.print(f"report: {result.report}", highlight=False, soft_wrap=True)


def _demo_log(message: str) -> None:
    console.print(message, highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- serve


@cli_command
def serve(
    index_dir: Annotated[Path, typer.Argument(metavar="INDEX_DIR", help="Index folder built by `fashionrec index`.")],
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 opens the server to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    catalog: Annotated[Optional[Path], typer.Option(help="Catalog folder for pictures, if it moved since indexing.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each loads the index).")] = 1,
    weights: Annotated[Optional[Path], typer.Option(help="Weights file the index was built with (photo queries).")] = None,
    max_upload_mb: Annotated[float, typer.Option(help="Largest uploaded picture, in MiB.")] = 10.0,
    allow_private_urls: Annotated[bool, typer.Option(
        "--allow-private-urls", help="Let image URLs reach private, loopback and link-local addresses (intranet catalogs).")] = False,
    cors_origin: Annotated[Optional[list[str]], typer.Option(
        "--cors-origin", help="Origin allowed to call the API from a browser (e.g. https://shop.example); repeatable. "
                              "Default: no CORS.")] = None,
    blas_threads: Annotated[int, typer.Option(
        min=1, help="BLAS threads per search (1: concurrent requests use the cores; more: faster lone queries).")] = 1,
    engine: EngineOption = "exact",
    milvus_uri: MilvusUriOption = None,
) -> None:
    """Serve the catalog pages and the JSON API of an index (FastAPI on uvicorn; Ctrl-C stops)."""
    _use_milvus_uri(milvus_uri)
    import uvicorn

    from ..catalog import find_catalog_root
    from ..recommend import Recommender
    from ..web import WebSettings, create_app
    from ..web.app import ENV_BLAS_THREADS, limit_blas_threads, settings_to_env
    from ..web.settings import MIB

    if not index_dir.is_dir():
        raise FashionrecError(f"index folder {index_dir} not found; expected a folder built by "
                              "`fashionrec index` (or run `fashionrec demo` and serve its index-* folder)")
    if not max_upload_mb > 0:
        raise FashionrecError(f"--max-upload-mb {max_upload_mb}: expected a size in MiB above 0")
    settings = WebSettings(max_upload_bytes=max(1, int(max_upload_mb * MIB)), allow_private_urls=allow_private_urls,
                           cors_origins=tuple(cors_origin or ()))
    catalog_root = find_catalog_root(catalog).resolve() if catalog else None
    recommender = Recommender.load(index_dir, weights=weights, catalog_root=catalog_root,
                                   engine=engine)  # errors show before serving
    answered = ""
    if engine != "exact":  # opened now: a missing or stale engine is reported (and exact named) before serving
        answered = f" with the {recommender.engine('euclidean').name} engine for euclidean distances"
    options: dict[str, Any] = dict(host=host, port=port, loop="uvloop", http="httptools", access_log=True,
                                   log_level="info", server_header=False)
    shown = f"[{host}]" if ":" in host else host
    console.print(f"serving {len(recommender):,} products of {index_dir}{answered} at http://{shown}:{port}/ "
                  f"(API docs at /docs; Ctrl-C stops)", highlight=False, soft_wrap=True)
    try:
        if workers == 1:
            limit_blas_threads(blas_threads)
            uvicorn.run(create_app(recommender, settings), **options)
        else:
            del recommender  # each worker loads its own
            os.environ.update(settings_to_env(index_dir.resolve(), settings, catalog=catalog_root,
                                              weights=weights.resolve() if weights else None, engine=engine))
            os.environ[ENV_BLAS_THREADS] = str(blas_threads)
            uvicorn.run("fashionrec.web.app:app_from_env", factory=True, workers=workers, **options)
    except KeyboardInterrupt:
        pass
    console.print("server stopped", highlight=False)
