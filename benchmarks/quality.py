"""Retrieval quality of every setting on the same measures: the README's "Quality" table.

Usage (figures in benchmarks/RESULTS.md and the README)::

    .venv/bin/python benchmarks/quality.py --index all-lite0 [--index all-lite1 ...] \\
        [--photos ../shared/photo-queries/sq224] [--loo-sample 3000] [--simulated 200] [--json OUT.json] \\
        [--speed N] [--resampling]

Each ``--index`` is a whole-catalog index of the shared catalog built with one
backbone (``fashionrec index ../shared/fashion-product-images-small --out
all-lite0 --backbone efficientnet_lite0``). Women's footwear is searched as a
selection of it (gender=Women, masterCategory=Footwear): the same vectors as
an index of that subset. Per backbone, every combination of

* **features** — ``raw`` + Euclidean (the seed's setting), ``cosine`` (L2
  normalised), ``power`` (signed square root, then L2: the Hellinger
  kernel), ``pca-white`` (PCA whitening fitted on the catalog, 512 dims, then L2);
* **query** — how a photo is treated before the backbone: ``as-is``,
  ``size`` (brought to the catalog's size, Lanczos), ``size+jpeg`` (and
  JPEG-encoded as the catalog is: ``CatalogLook.apply``, fashionrec's
  default), ``size+jpeg+flip`` (and its mirror image's features averaged in);

is measured on:

* leave-one-out precision@10 over ``--loo-sample`` catalog products: same
  articleType, and same articleType + baseColour (the query's own vector; the
  query setting does not apply);
* simulated photo queries (``rephotograph``, all four kinds in turn) of
  ``--simulated`` products, hit@1 against the whole catalog;
* the real photos of ``--photos`` (files named by product id): hit@1 and
  hit@10 against women's footwear (the photos of such products) and against
  the whole catalog (all photos).

The random baselines are printed beside them. At the end, whether the
simulated queries order the query settings as the real photos do (Kendall's
tau of the two columns, per backbone and features).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import ImageOps

FEATURES = ("raw", "cosine", "power", "pca-white")
QUERIES = ("as-is", "size", "size+jpeg", "size+jpeg+flip")
WOMEN_FOOTWEAR = {"gender": "Women", "masterCategory": "Footwear"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", action="append", required=True, type=Path)
    parser.add_argument("--photos", type=Path, default=Path(__file__).resolve().parents[2] / "shared" /
                        "photo-queries" / "sq224")
    parser.add_argument("--loo-sample", type=int, default=3000)
    parser.add_argument("--simulated", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--resampling", action="store_true",
                        help="also compare resampling filters and JPEG qualities of the catalog look (first index, raw)")
    parser.add_argument("--speed", type=int, default=0, metavar="N",
                        help="also time N photo queries of the first index, brought to the catalog look or not")
    args = parser.parse_args()
    if args.speed:
        query_speed(args.index[0], args.photos, args.speed)
    if args.resampling:
        resampling(args.index[0], args.photos)
    rows = []
    for index in args.index:
        rows += measure_backbone(index, args)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


def l2(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def transform(name: str, catalog: np.ndarray):
    """The feature transform ``name`` fitted on the catalog's vectors (float64): a function of (n, D) arrays."""
    if name == "raw":
        return lambda a: a
    if name == "cosine":
        return l2
    if name == "power":
        return lambda a: l2(np.sign(a) * np.sqrt(np.abs(a)))
    if name == "pca-white":
        mean = catalog.mean(0)
        values, vectors = np.linalg.eigh(np.cov((catalog - mean).T))
        top = np.argsort(values)[::-1][:512]
        whiten = vectors[:, top] / np.sqrt(values[top])
        return lambda a: l2((a - mean) @ whiten)
    raise ValueError(name)


def ranks_of(queries: np.ndarray, catalog: np.ndarray, truth: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    """0-based rank of each query's true row among ``catalog`` rows (Euclidean), within ``allowed`` rows."""
    sq = (catalog ** 2).sum(1)
    out = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), 256):
        q = queries[start : start + 256]
        d = sq[None] - 2 * q @ catalog.T
        if allowed is not None:
            d[:, ~allowed] = np.inf
        t = truth[start : start + 256]
        own = d[np.arange(len(q)), t]
        out[start : start + 256] = (d < own[:, None]).sum(1)
    return out


def loo_precision(vectors: np.ndarray, labels: list[np.ndarray], sample: np.ndarray, k: int = 10) -> list[float]:
    sq = (vectors ** 2).sum(1)
    hits = [[] for _ in labels]
    for start in range(0, len(sample), 256):
        rows = sample[start : start + 256]
        d = sq[None] - 2 * vectors[rows] @ vectors.T
        d[np.arange(len(rows)), rows] = np.inf
        top = np.argpartition(d, k, axis=1)[:, :k]
        for h, label in zip(hits, labels):
            h.append((label[top] == label[rows][:, None]).mean(1))
    return [float(np.concatenate(h).mean()) for h in hits]


def measure_backbone(index_dir: Path, args) -> list[dict]:
    from fashionrec.evaluation.photo_queries import SIMULATIONS, rephotograph
    from fashionrec.evaluation.real_photos import photo_files
    from fashionrec.recommend import Recommender

    started = time.perf_counter()
    rec = Recommender.load(index_dir)
    products = rec.products
    look = rec.catalog_look
    raw = np.asarray(rec.index.embeddings, dtype=np.float64)
    backbone = str(rec.index.backbone)
    article = products["articleType"].astype(str).to_numpy()
    colour = (products["articleType"].astype(str) + "|" + products["baseColour"].astype(str)).to_numpy()
    women_footwear = np.ones(len(products), dtype=bool)
    for key, value in WOMEN_FOOTWEAR.items():
        women_footwear &= (products[key] == value).fillna(False).to_numpy()
    rng = np.random.default_rng(args.seed)
    loo_rows = rng.choice(len(products), size=min(args.loo_sample, len(products)), replace=False)

    # Real photos of products of the index, as the query settings make them.
    files = [p for p in photo_files(args.photos) if rec.has_product(p.stem)]
    truth = np.array([rec.row_of(p.stem) for p in files])
    from PIL import Image

    originals = [Image.open(p).convert("RGB") for p in files]
    # Simulated photos: products drawn at random, each kind in turn.
    sim_rows = rng.choice(len(products), size=min(args.simulated, len(products)), replace=False)
    simulated = []
    for n, row in enumerate(sim_rows):
        with Image.open(rec.image_source(rec.products["id"].iloc[row])) as picture:
            simulated.append(rephotograph(picture.convert("RGB"), rng, SIMULATIONS[n % len(SIMULATIONS)]))

    def query_vectors(pictures, setting: str) -> np.ndarray:
        made = pictures
        if setting == "size":
            made = [p.resize((look.width, look.height), Image.Resampling.LANCZOS, reducing_gap=None) for p in pictures]
        elif setting.startswith("size+jpeg"):
            made = [look.apply(p) for p in pictures]
        vectors = rec.embed(made).astype(np.float64)
        if setting.endswith("+flip"):
            vectors = (vectors + rec.embed([ImageOps.mirror(p) for p in made]).astype(np.float64)) / 2
        return vectors

    real_q = {setting: query_vectors(originals, setting) for setting in QUERIES}
    sim_q = {setting: query_vectors(simulated, setting) for setting in QUERIES}
    rows = []
    for features in FEATURES:
        f = transform(features, raw)
        catalog = f(raw)
        p_type, p_colour = loo_precision(catalog, [article, colour], loo_rows)
        for setting in QUERIES:
            real = f(real_q[setting])
            whole = ranks_of(real, catalog, truth)
            wf = women_footwear[truth]
            in_wf = ranks_of(real[wf], catalog, truth[wf], women_footwear)
            sim = ranks_of(f(sim_q[setting]), catalog, sim_rows)
            row = {
                "backbone": backbone, "features": features, "query": setting,
                "loo_p10_type": p_type, "loo_p10_type_colour": p_colour,
                "simulated_hit1": float((sim == 0).mean()),
                "wf_hit1": float((in_wf == 0).mean()), "wf_hit10": float((in_wf < 10).mean()),
                "all_hit1": float((whole == 0).mean()), "all_hit10": float((whole < 10).mean()),
                "wf_photos": int(wf.sum()), "all_photos": len(files),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    labels, counts = np.unique(article, return_counts=True)
    chance_type = float(((counts / len(article)) ** 2).sum())
    print(f"{backbone}: {len(files)} real photos, {len(simulated)} simulated; random baselines: P@10 same type "
          f"{chance_type:.3f}, hit@1 whole catalog {1 / len(products):.6f}, women's footwear "
          f"{1 / women_footwear.sum():.5f}; {time.perf_counter() - started:.0f} s", flush=True)
    return rows


def query_speed(index_dir: Path, photos: Path, n: int) -> None:
    """Median time of ``Recommender.similar_to_image(path, k=10)`` with and without the catalog look, interleaved."""
    from fashionrec.evaluation.real_photos import photo_files
    from fashionrec.recommend import Recommender

    rec = Recommender.load(index_dir)
    files = [p for p in photo_files(photos) if rec.has_product(p.stem)][:n]
    rec.similar_to_image(files[0], k=10)  # the model, the engine and the look made before timing
    times: dict[bool, list[float]] = {True: [], False: []}
    for path in files:
        for matched in (False, True):
            started = time.perf_counter()
            rec.similar_to_image(path, k=10, match_catalog=matched)
            times[matched].append(time.perf_counter() - started)
    plain, matched = (float(np.median(times[m])) * 1000 for m in (False, True))
    print(f"photo query (file of 224x224, k=10, {len(files)} photos, {rec.index.backbone}, exact over {len(rec):,}): "
          f"as it is {plain:.1f} ms, brought to the catalog look {matched:.1f} ms (median), "
          f"ratio {matched / plain:.3f}", flush=True)


def resampling(index_dir: Path, photos: Path) -> None:
    """Real-photo hit@1 (raw features) with each resampling filter (JPEG at the catalog's quality), then each quality."""
    import dataclasses

    from fashionrec.evaluation.real_photos import photo_files
    from fashionrec.recommend import Recommender

    rec = Recommender.load(index_dir)
    look = rec.catalog_look
    files = [p for p in photo_files(photos) if rec.has_product(p.stem)]
    truth = np.array([rec.row_of(p.stem) for p in files])
    catalog = np.asarray(rec.index.embeddings, dtype=np.float64)
    women_footwear = np.ones(len(rec.products), dtype=bool)
    for key, value in WOMEN_FOOTWEAR.items():
        women_footwear &= (rec.products[key] == value).fillna(False).to_numpy()
    wf = women_footwear[truth]
    from PIL import Image

    originals = [Image.open(p).convert("RGB") for p in files]
    variants = [(f"{name}, JPEG {look.quality}", name, look) for name in ("lanczos", "bicubic", "bilinear", "box")]
    variants += [(f"lanczos, JPEG {q}", "lanczos", dataclasses.replace(look, quality=q)) for q in (50, 90)]
    for label, name, variant in variants:
        vectors = rec.embed([variant.apply(p, resampling=name) for p in originals]).astype(np.float64)
        whole = ranks_of(vectors, catalog, truth)
        in_wf = ranks_of(vectors[wf], catalog, truth[wf], women_footwear)
        print(f"{rec.index.backbone}, raw, {label}: real hit@1 women's footwear {(in_wf == 0).mean():.3f}, "
              f"whole catalog {(whole == 0).mean():.3f}", flush=True)


def kendall_tau(a: list[float], b: list[float]) -> float:
    concordant = discordant = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            s = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
            concordant += s > 0
            discordant += s < 0
    pairs = concordant + discordant
    return float((concordant - discordant) / pairs) if pairs else float("nan")


def print_table(rows: list[dict]) -> None:
    print("| backbone | features | query | LOO P@10 type | LOO P@10 type+colour | simulated hit@1 | "
          "real WF hit@1 / @10 | real whole hit@1 / @10 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backbone']} | {r['features']} | {r['query']} | {r['loo_p10_type']:.3f} | "
              f"{r['loo_p10_type_colour']:.3f} | {r['simulated_hit1']:.3f} | {r['wf_hit1']:.3f} / {r['wf_hit10']:.3f} | "
              f"{r['all_hit1']:.3f} / {r['all_hit10']:.3f} |")
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["backbone"], r["features"]), []).append(r)
    taus = [kendall_tau([r["simulated_hit1"] for r in g], [r["all_hit1"] for r in g]) for g in groups.values()]
    print("ordering of the query settings, simulated vs real (whole catalog), Kendall's tau per backbone and features: "
          + ", ".join(f"{b}/{f} {t:+.2f}" for (b, f), t in zip(groups, taus)))
    by_query: dict[tuple, list[dict]] = {}
    for r in rows:
        by_query.setdefault((r["backbone"], r["query"]), []).append(r)
    taus = [kendall_tau([r["simulated_hit1"] for r in g], [r["all_hit1"] for r in g]) for g in by_query.values()]
    print("ordering of the features, simulated vs real (whole catalog), Kendall's tau per backbone and query setting: "
          + ", ".join(f"{b}/{q} {t:+.2f}" for (b, q), t in zip(by_query, taus)))


if __name__ == "__main__":
    sys.exit(main())
