"""Stage 6 — measured retrieval quality of an index.

Leave-one-out: every product with a relevance label queries all the other
products of the index (itself excluded by id); a result is *relevant* when it
shares the query's ``articleType`` (or its ``articleType`` and ``baseColour``
for ``relevance="articleType+baseColour"``). Products without a label are still
searched among but never query. Queries with no other relevant product in the
index are skipped (no metric is defined for them) and counted.

Metrics at k (binary relevance, ``R`` = relevant products other than the query):

``precision@k``  relevant among the top k, divided by k.
``mAP@k``        mean over queries of AP@k = sum_j rel_j * precision@j / min(k, R).
``nDCG@k``       DCG = sum_j rel_j / log2(j + 1); ideal DCG has min(k, R) hits first.
``hit@1``        the first result is relevant.

The random baseline is the expectation of each metric under a uniformly random
ranking of the N - 1 other products, computed analytically per query (for
precision and hit@1 it is R / (N - 1)) and averaged like the model's metrics.

Search is exact and batched: blocks of queries are scored with one matrix
product each (:class:`~fashionrec.search.ExactIndex`).
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import FashionrecError, QueryError
from .index import IndexFolder
from .output import atomic_write, json_value
from .search import METRICS, ExactIndex, id_tie_order

log = logging.getLogger(__name__)

RELEVANCE: dict[str, tuple[str, ...]] = {
    "articleType": ("articleType",),
    "articleType+baseColour": ("articleType", "baseColour"),
}
"""Relevance definitions: the attributes a result must share with the query."""

EVALUATION_FILE = "evaluation.json"
CHART_FILE = "precision_by_articleType.png"


# --------------------------------------------------------------------------- metrics on one ranking


def precision_at_k(rel, k: int) -> float:
    """Fraction of the first ``k`` results that are relevant (missing results count as not relevant)."""
    rel = _rel(rel, k)
    return float(rel.sum() / k)


def average_precision_at_k(rel, k: int, n_relevant: int) -> float:
    """AP@k: sum of precision@j at each relevant rank j <= k, divided by min(k, n_relevant).

    0.0 when ``n_relevant`` is 0.
    """
    rel = _rel(rel, k)
    denom = min(k, int(n_relevant))
    if denom <= 0:
        return 0.0
    hits = np.cumsum(rel)
    ranks = np.arange(1, len(rel) + 1)
    return float((rel * hits / ranks).sum() / denom)


def ndcg_at_k(rel, k: int, n_relevant: int) -> float:
    """nDCG@k with binary gains and discount 1 / log2(rank + 1); 0.0 when ``n_relevant`` is 0."""
    rel = _rel(rel, k)
    ideal = min(k, int(n_relevant))
    if ideal <= 0:
        return 0.0
    disc = _discounts(k)
    return float((rel * disc[: len(rel)]).sum() / disc[:ideal].sum())


def hit_at_1(rel) -> float:
    rel = np.asarray(rel, dtype=float).ravel()
    return float(len(rel) > 0 and rel[0] > 0)


def _rel(rel, k: int) -> np.ndarray:
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return np.asarray(rel, dtype=float).ravel()[:k]


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def batch_metrics(rel: np.ndarray, n_relevant: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """The metrics above for many rankings at once: ``rel`` (Q, k) bool, ``n_relevant`` (Q,)."""
    rel = np.asarray(rel, dtype=float)[:, :k]
    n_relevant = np.asarray(n_relevant)
    ideal = np.minimum(k, n_relevant)
    ranks = np.arange(1, rel.shape[1] + 1)
    disc = _discounts(k)
    ideal_dcg = np.concatenate([[0.0], np.cumsum(disc)])[ideal]
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.where(ideal > 0, (rel * np.cumsum(rel, axis=1) / ranks).sum(1) / np.maximum(ideal, 1), 0.0)
        ndcg = np.where(ideal > 0, (rel * disc[: rel.shape[1]]).sum(1) / np.where(ideal > 0, ideal_dcg, 1.0), 0.0)
    return {
        "precision": rel.sum(1) / k,
        "ap": ap,
        "ndcg": ndcg,
        "hit1": rel[:, 0] if rel.shape[1] else np.zeros(len(rel)),
    }


def random_baseline(n_relevant: np.ndarray, n_candidates: int, k: int) -> dict[str, np.ndarray]:
    """Expected metrics of a uniformly random ranking of ``n_candidates`` items, ``n_relevant`` of them relevant.

    Each of the first min(k, M) ranks is relevant with probability p = R / M, and
    two distinct ranks both are with probability R (R - 1) / (M (M - 1)); the
    expectations of precision, AP and DCG are linear in those.
    """
    R = np.asarray(n_relevant, dtype=float)
    M = int(n_candidates)
    kk = min(k, M)
    p = R / M if M > 0 else np.zeros_like(R)
    ranks = np.arange(1, kk + 1, dtype=float)
    pair = R * (R - 1) / (M * (M - 1)) if M > 1 else np.zeros_like(R)
    # E[rel_j * hits_j / j] = (p + (j - 1) * pair) / j
    ap_sum = (p[:, None] + (ranks[None, :] - 1) * pair[:, None]) / ranks[None, :]
    ideal = np.minimum(k, R).astype(int)
    disc = _discounts(k)
    ideal_dcg = np.concatenate([[0.0], np.cumsum(disc)])[ideal]
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = np.where(ideal > 0, ap_sum.sum(1) / np.maximum(ideal, 1), 0.0)
        ndcg = np.where(ideal > 0, p * disc[:kk].sum() / np.where(ideal > 0, ideal_dcg, 1.0), 0.0)
    return {"precision": p * kk / k, "ap": ap, "ndcg": ndcg, "hit1": p}


# --------------------------------------------------------------------------- evaluation


@dataclass
class EvaluationResult:
    """Outcome of :func:`evaluate_index`.

    ``overall`` and ``baseline`` map metric names (``precision@k``, ``mAP@k``,
    ``nDCG@k``, ``hit@1``) to means over queries; ``per_class`` has one row per
    query articleType with ``n_queries``, the metrics and ``random_precision@k``;
    ``per_query`` holds each query's values (not written to JSON).
    """

    overall: dict[str, float]
    per_class: pd.DataFrame
    baseline: dict[str, float]
    k: int
    relevance: str
    metric: str
    n_queries: int
    normalize: bool = False
    n_products: int = 0
    n_skipped: int = 0
    sample: int | None = None
    seed: int = 0
    seconds: float = 0.0
    source: dict[str, Any] = field(default_factory=dict)
    per_query: pd.DataFrame | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (plain floats, NaN as None)."""
        per_class = [
            {key: json_value(value) for key, value in record.items()} for record in self.per_class.to_dict(orient="records")
        ]
        return {
            "k": self.k,
            "relevance": self.relevance,
            "metric": self.metric,
            "normalize": self.normalize,
            "n_products": self.n_products,
            "n_queries": self.n_queries,
            "n_skipped": self.n_skipped,
            "sample": self.sample,
            "seed": self.seed,
            "seconds": round(self.seconds, 3),
            "source": {key: json_value(value) for key, value in self.source.items()},
            "overall": {key: json_value(value) for key, value in self.overall.items()},
            "baseline": {key: json_value(value) for key, value in self.baseline.items()},
            "per_class": per_class,
        }


def evaluate_index(
    index: IndexFolder | tuple[np.ndarray, pd.DataFrame] | str | os.PathLike,
    k: int = 10,
    relevance: str = "articleType",
    metric: str = "euclidean",
    sample: int | None = None,
    seed: int = 0,
    *,
    normalize: bool = False,
    block_size: int = 1024,
) -> EvaluationResult:
    """Leave-one-out retrieval quality of an index (see the module docstring).

    ``index`` is an :class:`IndexFolder`, its path, or ``(embeddings, products)``.
    ``sample`` evaluates a seeded random subset of the queries (all products
    remain searchable). ``normalize`` L2-normalises the features first (compare
    raw vs normalised features under the euclidean metric).
    """
    started = time.perf_counter()
    if isinstance(index, (str, os.PathLike)):
        index = IndexFolder.load(index)
    if isinstance(index, IndexFolder):
        embeddings, products = index.embeddings, index.products
        source = {"index": str(index.path), "backbone": index.manifest.get("backbone"), "dim": index.dim}
    else:
        embeddings, products = index
        source = {}
    embeddings = np.asarray(embeddings)
    products = products.reset_index(drop=True)
    k = int(k)
    if k < 1:
        raise QueryError(f"k must be at least 1, got {k}")
    if metric not in METRICS:
        raise QueryError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    if relevance not in RELEVANCE:
        raise QueryError(f"unknown relevance {relevance!r}; expected one of {', '.join(RELEVANCE)}")
    if embeddings.ndim != 2 or len(embeddings) != len(products):
        raise QueryError(f"embeddings of shape {embeddings.shape} do not match {len(products)} products")
    attrs = RELEVANCE[relevance]
    missing = [a for a in attrs if a not in products.columns]
    if missing:
        raise QueryError(
            f"relevance {relevance!r} needs the attribute(s) {missing}; the index has {list(products.columns)}"
        )
    n = len(products)

    labels = _labels(products, attrs)
    codes, _ = pd.factorize(labels, use_na_sentinel=True)
    counts = np.bincount(codes[codes >= 0], minlength=max(int(codes.max()) + 1, 1)) if n else np.zeros(1, int)
    n_rel_all = np.where(codes >= 0, counts[np.maximum(codes, 0)] - 1, 0)
    query_rows = np.flatnonzero((codes >= 0) & (n_rel_all > 0))
    n_skipped = n - len(query_rows)
    if sample is not None and int(sample) < 1:
        raise QueryError(f"sample must be a positive number of queries, got {sample!r}")
    if sample is not None and int(sample) < len(query_rows):
        rng = np.random.default_rng(seed)
        query_rows = np.sort(rng.choice(query_rows, size=int(sample), replace=False))
    if len(query_rows) == 0:
        raise QueryError(
            f"no product can be evaluated: none of the {n} products shares its {relevance} with another product"
        )

    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    if normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms > 0, norms, 1.0).astype(np.float32)
    engine = ExactIndex(metric, tie_order=id_tie_order(products["id"]), block_size=block_size).fit(vectors)

    rel = np.zeros((len(query_rows), k), dtype=bool)
    for start in range(0, len(query_rows), block_size):
        block = query_rows[start : start + block_size]
        _, rows = engine.search(vectors[block], k, exclude=[[r] for r in block])
        found = rows >= 0
        rel[start : start + len(block)] = found & (codes[np.maximum(rows, 0)] == codes[block][:, None])
        log.debug("evaluated %d / %d queries", start + len(block), len(query_rows))

    n_rel = n_rel_all[query_rows]
    model = batch_metrics(rel, n_rel, k)
    rand = random_baseline(n_rel, n - 1, k)
    names = {"precision": f"precision@{k}", "ap": f"mAP@{k}", "ndcg": f"nDCG@{k}", "hit1": "hit@1"}

    per_query = pd.DataFrame(
        {
            "id": products["id"].to_numpy()[query_rows],
            "articleType": products["articleType"].to_numpy()[query_rows],
            "n_relevant": n_rel,
            **{names[key]: values for key, values in model.items()},
            f"random_precision@{k}": rand["precision"],
        }
    )
    grouped = per_query.groupby("articleType", sort=False, observed=True)
    per_class = grouped[[names[key] for key in model] + [f"random_precision@{k}"]].mean()
    per_class.insert(0, "n_queries", grouped.size())
    per_class = (
        per_class.reset_index()
        .sort_values(["n_queries", "articleType"], ascending=[False, True], kind="stable")
        .reset_index(drop=True)
    )
    result = EvaluationResult(
        overall={names[key]: float(values.mean()) for key, values in model.items()},
        per_class=per_class,
        baseline={names[key]: float(values.mean()) for key, values in rand.items()},
        k=k,
        relevance=relevance,
        metric=metric,
        n_queries=len(query_rows),
        normalize=bool(normalize),
        n_products=n,
        n_skipped=n_skipped,
        sample=None if sample is None else int(sample),
        seed=int(seed),
        seconds=time.perf_counter() - started,
        source=source,
        per_query=per_query,
    )
    log.info(
        "evaluated %d queries over %d products in %.1f s: %s",
        result.n_queries,
        n,
        result.seconds,
        ", ".join(f"{key} {value:.3f}" for key, value in result.overall.items()),
    )
    return result


def _labels(products: pd.DataFrame, attrs: tuple[str, ...]) -> pd.Series:
    """One relevance label per product (missing when any attribute is missing)."""
    parts = [products[a].astype("string").str.strip().replace("", pd.NA) for a in attrs]
    label = parts[0]
    for part in parts[1:]:
        label = label + "\x1f" + part  # NA propagates
    return label.astype(object).where(label.notna(), None)


def write_evaluation(
    result: EvaluationResult, out_dir: str | os.PathLike, *, top: int = 25, photo_queries: PhotoQueryResult | None = None
) -> dict[str, Path]:
    """Write ``evaluation.json`` and a per-articleType precision chart; returns their paths."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FashionrecError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    json_path = out / EVALUATION_FILE
    payload = result.to_dict()
    if photo_queries is not None:
        payload["photo_queries"] = photo_queries.to_dict()
    text = json.dumps(payload, indent=2, allow_nan=False)
    atomic_write(json_path, lambda f: f.write(text.encode()))
    chart_path = out / CHART_FILE
    png = _chart_png(result, top=top)
    atomic_write(chart_path, lambda f: f.write(png))
    log.info("wrote %s and %s", json_path, chart_path)
    return {"json": json_path, "chart": chart_path}


def _chart_png(result: EvaluationResult, *, top: int) -> bytes:
    import seaborn as sns
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = result.k
    classes = result.per_class.head(top)
    long = pd.concat(
        [
            pd.DataFrame(
                {"articleType": classes["articleType"], f"precision@{k}": classes[f"precision@{k}"], "ranking": "model"}
            ),
            pd.DataFrame(
                {
                    "articleType": classes["articleType"],
                    f"precision@{k}": classes[f"random_precision@{k}"],
                    "ranking": "random",
                }
            ),
        ],
        ignore_index=True,
    )
    labels = [f"{a} ({n})" for a, n in zip(classes["articleType"], classes["n_queries"])]
    long["articleType"] = long["articleType"].map(dict(zip(classes["articleType"], labels)))
    fig = Figure(figsize=(8, max(3.0, 0.32 * len(classes) + 1.6)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    sns.barplot(data=long, y="articleType", x=f"precision@{k}", hue="ranking", ax=ax, orient="h",
                palette={"model": "#3a6ea5", "random": "#bbbbbb"})
    ax.set_xlim(0, 1)
    ax.set_ylabel(f"articleType (queries) — top {len(classes)} by count")
    norm = ", L2-normalised" if result.normalize else ""
    ax.set_title(
        f"precision@{k} by articleType ({result.metric}{norm}; relevance {result.relevance})\n"
        f"overall {result.overall[f'precision@{k}']:.3f} vs random {result.baseline[f'precision@{k}']:.3f}, "
        f"{result.n_queries} queries",
        fontsize=10,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# --------------------------------------------------------------------------- photo queries


def rephotograph(image, rng: np.random.Generator):
    """Simulate a shopper's photo of a catalog product: the same item, taken elsewhere.

    A random re-framing (crop 80–95 % of each side, off-centre), a small
    rotation, brightness/contrast/colour-temperature changes, an off-white
    background with a margin, a different resolution (2–4x the original, as a
    phone photo is larger), a slight blur and a JPEG re-encoding.
    """
    from PIL import Image, ImageEnhance, ImageFilter

    from .images import to_rgb

    image = to_rgb(image)
    w, h = image.size
    fw, fh = rng.uniform(0.80, 0.95, size=2)
    left = rng.uniform(0, 1 - fw) * w
    top = rng.uniform(0, 1 - fh) * h
    image = image.crop((int(left), int(top), int(left + fw * w), int(top + fh * h)))
    scale = rng.uniform(2.0, 4.0)
    image = image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))), Image.Resampling.BICUBIC)
    background = tuple(int(v) for v in rng.integers(225, 250, size=3))
    image = image.rotate(float(rng.uniform(-8, 8)), resample=Image.Resampling.BICUBIC, expand=True, fillcolor=background)
    margin = int(rng.uniform(0.0, 0.15) * max(image.size))
    canvas = Image.new("RGB", (image.width + 2 * margin, image.height + 2 * margin), background)
    canvas.paste(image, (margin, margin))
    image = ImageEnhance.Brightness(canvas).enhance(float(rng.uniform(0.85, 1.15)))
    image = ImageEnhance.Contrast(image).enhance(float(rng.uniform(0.85, 1.15)))
    tint = np.array([1.0, 1.0, 1.0]) + rng.uniform(-0.05, 0.05, size=3)
    pixels = np.clip(np.asarray(image, dtype=np.float32) * tint.astype(np.float32), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 1.2))))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(50, 85)))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


@dataclass
class PhotoQueryResult:
    """Outcome of :func:`evaluate_photo_queries`: how often a new photo finds its product.

    ``hit@1`` is the fraction of photos whose own product ranks first, ``recall@k``
    within the top k, ``MRR`` the mean reciprocal rank (0 beyond k); ``chance``
    holds the same figures for a random ranking of the ``n_products``.
    """

    n_queries: int
    n_products: int
    k: int
    overall: dict[str, float]
    chance: dict[str, float]
    ranks: list[int | None] = field(default_factory=list, repr=False)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_queries": self.n_queries,
            "n_products": self.n_products,
            "k": self.k,
            "overall": {key: json_value(value) for key, value in self.overall.items()},
            "chance": {key: json_value(value) for key, value in self.chance.items()},
            "seconds": round(self.seconds, 3),
        }


def evaluate_photo_queries(rec, n: int = 200, k: int = 10, seed: int = 0, metric: str = "euclidean") -> PhotoQueryResult:
    """Query the index with simulated new photos (:func:`rephotograph`) of its own products.

    ``rec`` is a :class:`~fashionrec.recommend.Recommender` whose catalog images
    are reachable. Each photo is embedded with the index's backbone and
    preprocessing and searched among all products; the rank of the product it
    was taken of is recorded.
    """
    from .images import open_image

    started = time.perf_counter()
    if n < 1 or k < 1:
        raise QueryError(f"need n >= 1 photo queries and k >= 1, got n={n}, k={k}")
    rng = np.random.default_rng(seed)
    ids = rec.products["id"].to_numpy()
    chosen = rng.choice(len(ids), size=min(n, len(ids)), replace=False)
    ranks: list[int | None] = []
    for row in chosen:
        source = rec.image_source(ids[row])
        if source is None:
            continue
        photo = rephotograph(open_image(source), rng)
        found = rec.similar_to_image(photo, k=k, metric=metric)["id"].tolist()
        ranks.append(found.index(ids[row]) + 1 if ids[row] in found else None)
    if not ranks:
        raise QueryError(f"no product image of index {rec.index.path} could be opened for photo queries")
    hits = np.array([r is not None for r in ranks])
    reciprocal = np.array([1.0 / r if r is not None else 0.0 for r in ranks])
    n_products = len(ids)
    overall = {
        "hit@1": float(np.mean([r == 1 for r in ranks])),
        f"recall@{k}": float(hits.mean()),
        "MRR": float(reciprocal.mean()),
    }
    chance = {
        "hit@1": 1.0 / n_products,
        f"recall@{k}": min(k, n_products) / n_products,
        "MRR": float(sum(1.0 / r for r in range(1, min(k, n_products) + 1)) / n_products),
    }
    result = PhotoQueryResult(len(ranks), n_products, k, overall, chance, ranks, time.perf_counter() - started)
    log.info("photo queries: %d photos, hit@1 %.3f (chance %.5f)", len(ranks), overall["hit@1"], chance["hit@1"])
    return result
