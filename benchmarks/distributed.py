"""Past one machine: embedding with Ray Data against the local path (``--part ray``), and a Milvus
server against the in-process engines (``--part milvus``).

Usage::

    python benchmarks/distributed.py --part ray [--catalog ../shared/fashion-product-images-small]
        [--backbone efficientnet_lite0] [--limit N] [--batch-size 32]
        [--ray-address local] [--ray-actors N] [--ray-cpus-per-actor 1] [--workdir DIR] [--json OUT.json]
    python benchmarks/distributed.py --part milvus --index all-lite0 [--queries 200] [--milvus-uri URI]

``--part milvus`` is ``benchmarks/distributed_milvus.py`` (see its docstring):
push time, p50 / p99, recall@10 and filtered latency of Milvus FLAT and HNSW
beside exact and the FAISS engines on the whole catalog and on women's
footwear, the issue's done-when checks, and the server's memory per million vectors.

``--part ray``: ``build_index`` of the women's-footwear subset (its first
``--limit`` products when given) twice into fresh folders under ``--workdir`` —
once locally (decoding threads and the model in this process, as ``fashionrec
index``), once on Ray (``fashionrec index --ray``: decoding in Ray tasks, the
model in an actor pool) — and prints for each the images/s of the build (the
model already loaded in this process, and for Ray the runtime already started:
that start is timed apart; the actors' start, each loading its model, is in),
the same from a fifth of the images on (the steady rate: meaningful on
thousands of images, not on a few hundred, which Ray hands back in bursts),
their ratios, and whether the Ray build equals the local one: the same ids in the same order, every vector at cosine >= 0.9999 to
the local one, the same skipped list, and the same manifest apart from its
timing fields (``created``, ``updated``, ``generation``) and the checksums of
the vectors (which follow their last bits).

One function per part (``ray_part``, ``milvus_part``); each returns its figures as a dict,
printed and, with ``--json``, written.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fashionrec.catalog import ORIGINAL_SUBSET, Catalog, load_catalog  # noqa: E402
from fashionrec.embedding import ImageEmbedder, build_index  # noqa: E402
from fashionrec.index import IndexFolder  # noqa: E402
from fashionrec.settings import available_cpus  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embed import cosine_rows, cpu_name  # noqa: E402  (the embedding benchmark's: the same figures)

DEFAULT_CATALOG = ROOT.parent / "shared" / "fashion-product-images-small"
COSINE_FLOOR = 0.9999
"""Least cosine between a Ray-built vector and the local one for the builds to count as equal."""
TIMING_FIELDS = ("created", "updated", "generation")
"""Manifest fields that differ between any two builds."""


def compare_indexes(local: Path, other: Path) -> dict[str, Any]:
    """How the index in ``other`` differs from the one in ``local`` (both loaded with every check on)."""
    a, b = IndexFolder.load(local), IndexFolder.load(other)
    same_ids = a.products["id"].tolist() == b.products["id"].tolist()
    cosines = cosine_rows(np.asarray(a.embeddings), np.asarray(b.embeddings)) if same_ids else np.zeros(0)

    def comparable(manifest: dict[str, Any]) -> dict[str, Any]:
        manifest = {k: v for k, v in manifest.items() if k not in TIMING_FIELDS}
        manifest["checksums"] = {k: v for k, v in manifest.get("checksums", {}).items() if k != "embeddings"}
        return manifest

    ma, mb = comparable(a.manifest), comparable(b.manifest)
    differing = sorted(k for k in ma.keys() | mb.keys() if ma.get(k) != mb.get(k))
    products_equal = a.products.astype("string").fillna("\0").equals(b.products.astype("string").fillna("\0"))
    min_cosine = float(cosines.min()) if len(cosines) else float("nan")
    return {
        "count": len(a), "same_ids_in_order": same_ids, "same_products": bool(products_equal),
        "min_cosine": min_cosine, "bit_identical": bool(same_ids and np.array_equal(a.embeddings, b.embeddings)),
        "same_skipped": a.manifest["skipped"] == b.manifest["skipped"], "manifest_fields_differing": differing,
        "equal": bool(same_ids and products_equal and min_cosine >= COSINE_FLOOR and not differing),
    }


class Clock:
    """A ``progress(done, total)`` callback that notes when a fifth of the images and all of them came back.

    ``steady`` is the images/s between the two: the throughput once the model
    runs, without the start (on Ray, the actors starting and loading their
    models while decoded batches pile up, which then come back in a burst).
    """

    def __init__(self, share: float = 0.2) -> None:
        self.share = share
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None

    def __call__(self, done: int, total: int) -> None:
        now = (time.perf_counter(), done)
        if self.first is None and done >= self.share * total:
            self.first = now
        self.last = now

    @property
    def steady(self) -> float:
        if not self.first or not self.last or self.last[0] <= self.first[0]:
            return float("nan")
        return (self.last[1] - self.first[1]) / (self.last[0] - self.first[0])


def ray_part(args: argparse.Namespace) -> dict[str, Any]:
    """Local ``build_index`` against ``build_index`` on Ray, on the same images; see the module docstring."""
    from fashionrec.embedding.ray_build import LOCAL, RayExecutor, default_actors, ray_session

    catalog = load_catalog(args.catalog).select(ORIGINAL_SUBSET)
    if args.limit:
        catalog = Catalog(catalog.root, catalog.products.head(args.limit).reset_index(drop=True),
                          source=catalog.source, csv_path=catalog.csv_path)
    embedder = ImageEmbedder(args.backbone)
    settings = embedder.settings()  # loads (and exports, once) the model before any clock starts
    work = Path(args.workdir)
    local_out, ray_out = work / "local", work / "ray"
    for folder in (local_out, ray_out):
        shutil.rmtree(folder, ignore_errors=True)

    print(f"{len(catalog)} products ({catalog.n_with_image} with an image) of {catalog.root}, {args.backbone} "
          f"on {settings['runtime']} {settings['precision']}; {available_cpus()} CPUs ({cpu_name()})", flush=True)

    local_clock = Clock()
    started = time.perf_counter()
    local = build_index(catalog, local_out, embedder=embedder, where=ORIGINAL_SUBSET, batch_size=args.batch_size,
                        progress=local_clock)
    local_s = time.perf_counter() - started
    print(f"local: {local.embedded} images in {local_s:.1f} s = {local.embedded / local_s:.1f} images/s "
          f"({local_clock.steady:.1f} after the first fifth)", flush=True)

    ray_clock = Clock()
    started = time.perf_counter()
    with ray_session(args.ray_address) as ray:
        start_s = time.perf_counter() - started
        cpus = ray.cluster_resources().get("CPU", 0)
        executor = RayExecutor(args.ray_address, actors=args.ray_actors, cpus_per_actor=args.ray_cpus_per_actor)
        actors = args.ray_actors or default_actors(cpus, args.ray_cpus_per_actor)
        started = time.perf_counter()
        remote = build_index(catalog, ray_out, embedder=embedder, where=ORIGINAL_SUBSET, batch_size=args.batch_size,
                             executor=executor, progress=ray_clock)
        ray_s = time.perf_counter() - started
    print(f"ray ({args.ray_address}, {cpus:g} CPUs, {actors} actors of {args.ray_cpus_per_actor:g} CPUs, "
          f"{len(executor.nodes)} node(s)): runtime {'started' if args.ray_address == LOCAL else 'connected'} in "
          f"{start_s:.1f} s, then {remote.embedded} images in {ray_s:.1f} s = {remote.embedded / ray_s:.1f} images/s "
          f"({ray_clock.steady:.1f} after the first fifth)", flush=True)

    equality = compare_indexes(local_out, ray_out)
    result = {
        "part": "ray", "catalog": str(catalog.root), "products": len(catalog), "backbone": args.backbone,
        "runtime": settings["runtime"], "precision": settings["precision"], "batch_size": args.batch_size,
        "cpus": available_cpus(), "cpu": cpu_name(),
        "local": {"images": local.embedded, "seconds": round(local_s, 2),
                  "images_per_s": round(local.embedded / local_s, 1),
                  "steady_images_per_s": round(local_clock.steady, 1)},
        "ray": {"address": args.ray_address, "cluster_cpus": cpus, "actors": actors,
                "cpus_per_actor": args.ray_cpus_per_actor, "nodes": len(executor.nodes),
                "start_seconds": round(start_s, 2), "images": remote.embedded, "seconds": round(ray_s, 2),
                "images_per_s": round(remote.embedded / ray_s, 1), "steady_images_per_s": round(ray_clock.steady, 1)},
        "ray_over_local": round((remote.embedded / ray_s) / (local.embedded / local_s), 3),
        "ray_over_local_steady": round(ray_clock.steady / local_clock.steady, 3),
        "equality": equality,
    }
    print(f"Ray / local throughput: {result['ray_over_local']:.2f}x ({result['ray_over_local_steady']:.2f}x after "
          "the first fifth)")
    print(f"equal to the local build: {equality['equal']} (ids and order {equality['same_ids_in_order']}, "
          f"products {equality['same_products']}, min cosine {equality['min_cosine']:.6f}, "
          f"bit-identical {equality['bit_identical']}, skipped {equality['same_skipped']}, "
          f"manifest fields differing: {equality['manifest_fields_differing'] or 'none'})")
    return result


def milvus_part(args: argparse.Namespace) -> dict[str, Any]:
    """Milvus (FLAT, HNSW) beside the exact and FAISS engines on a whole-catalog index: ``distributed_milvus.py``."""
    if args.index is None:
        raise SystemExit("--part milvus needs --index INDEX_DIR (an index of the whole shared catalog)")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import distributed_milvus

    options = argparse.Namespace(index=args.index, workdir=args.workdir / "milvus", queries=args.queries,
                                 uri=args.milvus_uri, limit=None, faiss=True, json=None)
    return {"part": "milvus", **distributed_milvus.run(options)}


PARTS = {"ray": ray_part, "milvus": milvus_part}
"""Each part of the benchmark: ``--part NAME`` runs ``PARTS[NAME](args)``."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=[*PARTS, "all"], default="all", help="what to measure")
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--limit", type=int, default=None, help="only the first N women's-footwear products")
    parser.add_argument("--batch-size", type=int, default=32, help="images per model call, both builds")
    parser.add_argument("--ray-address", default="local", help="'local', 'auto' or HOST:PORT of a Ray head node")
    parser.add_argument("--ray-actors", type=int, default=None, help="model replicas on Ray (default: the executor's)")
    parser.add_argument("--ray-cpus-per-actor", type=float, default=1, help="CPUs (and model threads) of each actor")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the index folders go (default: a temp folder)")
    parser.add_argument("--index", type=Path, default=None,
                        help="--part milvus: an index of the whole shared catalog (only read)")
    parser.add_argument("--queries", type=int, default=200, help="--part milvus: queries per measurement")
    parser.add_argument("--milvus-uri", default=None, help="--part milvus: a running server (default: the embedded one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if not (args.catalog / "styles.csv").is_file():
        parser.error(f"no catalog at {args.catalog} (expected styles.csv and images/); pass --catalog")

    temporary = args.workdir is None
    args.workdir = Path(tempfile.mkdtemp(prefix="fashionrec-distributed-")) if temporary else args.workdir
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        results = [PARTS[name](args) for name in (PARTS if args.part == "all" else [args.part])]
    finally:
        if temporary:
            shutil.rmtree(args.workdir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
