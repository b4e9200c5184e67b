"""Catalog browsing speed: ``Recommender.browse`` (filters, name search, facet counts) on the real catalog.

Usage::

    python benchmarks/browse.py [--catalog ../shared/fashion-product-images-small] [--repeats 50]

Browsing never reads the vectors, so the index here is the real catalog's
product rows (those with a picture) with random 64-d vectors: no model needed.
Prints the first call (which builds the per-column tables) and the median and
p90 of each case, facets of all seven facet attributes included.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fashionrec.catalog import load_catalog  # noqa: E402
from fashionrec.index import write_index  # noqa: E402
from fashionrec.recommend import FACETS, Recommender  # noqa: E402

CASES = {
    "no filter, page 1": {},
    "gender=Women": {"where": {"gender": "Women"}},
    "Women + Heels/Flats": {"where": {"gender": "Women", "articleType": ["Heels", "Flats"]}},
    "text 'shirt'": {"text": "shirt"},
    "text 'blue shirt' + gender=Men, page 3": {"text": "blue shirt", "where": {"gender": "Men"}, "page": 3},
    "per_page 200, page 50": {"per_page": 200, "page": 50},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--catalog", default=str(ROOT.parent / "shared" / "fashion-product-images-small"))
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    catalog = load_catalog(args.catalog)
    products = catalog.products[catalog.products["has_image"]].drop(columns=["has_image"]).reset_index(drop=True)
    vectors = np.random.default_rng(0).standard_normal((len(products), 64)).astype(np.float32)
    folder = Path(tempfile.mkdtemp(prefix="fashionrec-bench-browse-"))
    write_index(folder, vectors, products, {"backbone": "random", "weights": "none", "preprocessing": {"mode": "crop"},
                                            "catalog": {"root": str(catalog.root)}})
    rec = Recommender.load(folder)
    started = time.perf_counter()
    rec.browse(text="x", where={f: "x" for f in FACETS})
    print(f"{len(products):,} products; first call (builds the tables): {(time.perf_counter() - started) * 1e3:.0f} ms")
    for name, kwargs in CASES.items():
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            page = rec.browse(**kwargs)
            times.append((time.perf_counter() - started) * 1e3)
        times.sort()
        print(f"{name:40s} total={page.total:6d}  median {statistics.median(times):.2f} ms  "
              f"p90 {times[int(0.9 * (len(times) - 1))]:.2f} ms")


if __name__ == "__main__":
    main()
