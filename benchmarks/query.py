"""Query latency of ``Recommender.similar(k=10)`` beside the memory-bandwidth bound.

Usage::

    python benchmarks/query.py [--catalog ../shared/fashion-product-images-small]
        [--work /tmp/fashionrec-bench] [--backbone efficientnet_lite0] [--queries 200]

Builds (once, then reuses) two index folders of the real catalog — all products
and the women's-footwear subset — and times single-product queries. An exact
scan must read every vector, so its latency cannot beat
``vector bytes / memory read bandwidth``; the bandwidth is measured in the same
run by summing a 1 GiB array. Target: p50 <= 1.5x that bound. "scan" is the
p50 of the bare matrix-vector product alone, so the rest of p50 is the
per-query cost of exact re-ranking, filtering and building the result table.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fashionrec.catalog import ORIGINAL_SUBSET, load_catalog  # noqa: E402
from fashionrec.embedding import ImageEmbedder, build_index  # noqa: E402
from fashionrec.recommend import Recommender  # noqa: E402


def read_bandwidth(n_bytes: int = 1 << 30, repeats: int = 5) -> float:
    """Bytes per second of a streaming float32 read of ``n_bytes`` (best of ``repeats``).

    Two readers, the faster counts: NumPy's sum (one thread) and a BLAS
    matrix-vector product (all cores), which is memory-bound at this size.
    """
    data = np.ones((n_bytes // 4096, 1024), dtype=np.float32)
    vector = np.ones(1024, dtype=np.float32)
    best = float("inf")
    for _ in range(repeats):
        for read in (data.sum, lambda: data @ vector):
            start = time.perf_counter()
            read()
            best = min(best, time.perf_counter() - start)
    return n_bytes / best


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1e3, q))


def time_queries(rec: Recommender, n: int, seed: int = 0, where=None) -> list[float]:
    rng = np.random.default_rng(seed)
    ids = rec.products["id"].to_numpy()
    for product_id in rng.choice(ids, size=min(20, len(ids)), replace=False):
        rec.similar(product_id, k=10, where=where)  # warm up: search structure built, pages mapped
    samples = []
    for product_id in rng.choice(ids, size=min(n, len(ids)), replace=False):
        start = time.perf_counter()
        rec.similar(product_id, k=10, where=where)
        samples.append(time.perf_counter() - start)
    return samples


def time_scans(vectors: np.ndarray, n: int) -> list[float]:
    """The bare scan of a query: one BLAS matrix-vector product over all vectors."""
    vectors = np.asarray(vectors)
    samples = []
    for row in range(min(n, len(vectors))):
        query = vectors[row]
        start = time.perf_counter()
        vectors @ query
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", default=str(ROOT.parent / "shared" / "fashion-product-images-small"))
    parser.add_argument("--work", default="/tmp/fashionrec-bench")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()

    catalog = load_catalog(args.catalog)
    embedder = ImageEmbedder(args.backbone)
    indexes = {
        "women's footwear": (Path(args.work) / f"query-{args.backbone}-wf", ORIGINAL_SUBSET),
        "whole catalog": (Path(args.work) / f"query-{args.backbone}-all", None),
    }
    bandwidth = read_bandwidth()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; "
          f"measured read bandwidth {bandwidth / 1e9:.1f} GB/s")
    print(f"{'index':18} {'vectors':>8} {'dim':>5} {'MB':>7} {'bound ms':>9} {'scan ms':>8} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'p50/bound':>9}  filtered p50 ms (gender=Women)")
    for name, (folder, where) in indexes.items():
        build_index(catalog, folder, embedder=embedder, where=where)
        rec = Recommender.load(folder)
        n, d = rec.index.embeddings.shape
        n_bytes = n * d * 4
        bound_ms = n_bytes / bandwidth * 1e3
        scan = percentile_ms(time_scans(rec.index.embeddings, args.queries), 50)
        samples = time_queries(rec, args.queries)
        filtered = time_queries(rec, args.queries, where={"gender": "Women"}) if name == "whole catalog" else None
        p50, p99 = percentile_ms(samples, 50), percentile_ms(samples, 99)
        extra = f"{percentile_ms(filtered, 50):.2f}" if filtered else ""
        print(f"{name:18} {n:8,} {d:5} {n_bytes / 1e6:7.1f} {bound_ms:9.2f} {scan:8.2f} {p50:8.2f} {p99:8.2f} "
              f"{p50 / bound_ms:9.2f}  {extra}")


if __name__ == "__main__":
    main()
