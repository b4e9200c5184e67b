"""Leave-one-out retrieval quality of an index.

Every product with a relevance label queries all the other products of the
index (itself excluded by id); a result is *relevant* when it shares the
query's ``articleType`` (or its ``articleType`` and ``baseColour`` for
``relevance="articleType+baseColour"``). Products without a label are still
searched among but never query. Queries with no other relevant product in the
index are skipped (no metric is defined for them) and counted.

The metrics are those of :mod:`.metrics` (precision@k, mAP@k, nDCG@k, hit@1).
A ``k`` above N - 1 (more results than there are other products) costs what
``k = N - 1`` costs: every other product is ranked, precision@k still divides
by the ``k`` asked for (so it is at most (N - 1) / k), and mAP@k, nDCG@k and
hit@1 equal their values at k = N - 1 (they depend on k only through
min(k, R) and R <= N - 1).
The random baseline is the expectation of each metric under a uniformly random
ranking of the N - 1 other products, computed analytically per query (for
precision and hit@1 it is R / (N - 1)) and averaged like the model's metrics.

Search goes through a search engine of the registry (``exact`` by default),
blocks of queries at a time, each query product excluded by id, all in
:func:`_nearest_others`. An engine built ahead and saved in the index folder
(``ivf``, ``hnsw``: see :mod:`fashionrec.search.saved`) is opened from there,
so the figures are those of the engine users query, approximation included.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import QueryError
from ..index import IndexFolder, vector_ids
from ..search import DEFAULT_ENGINE, SearchEngine, create_engine, engine_class, open_saved_engine
from ..validation import check_k, check_metric
from .metrics import batch_metrics, random_baseline
from .summary import ClassRow, EvaluationSummary, IndexSource, NoSource

if TYPE_CHECKING:
    from .photo_queries import PhotoQueryResult
    from .real_photos import PhotoFolderResult

__all__ = ["RELEVANCE", "EvaluationResult", "evaluate_index"]

log = logging.getLogger(__name__)

RELEVANCE: dict[str, tuple[str, ...]] = {
    "articleType": ("articleType",),
    "articleType+baseColour": ("articleType", "baseColour"),
}
"""Relevance definitions: the attributes a result must share with the query."""


@dataclass
class EvaluationResult:
    """Outcome of :func:`evaluate_index`.

    ``overall`` and ``baseline`` map metric names (``precision@k``, ``mAP@k``,
    ``nDCG@k``, ``hit@1``) to means over queries; ``per_class`` has one row per
    query articleType with ``n_queries``, the metrics and ``random_precision@k``,
    most queries first; ``per_query`` holds each query's values (``id``,
    ``articleType``, ``n_relevant``, the metrics, ``random_precision@k``; not
    written to JSON). ``seconds`` is wall-clock time; ``source`` describes the
    index folder (empty when arrays were given); ``engine`` the search engine
    that ranked the products.
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
    engine: str = DEFAULT_ENGINE

    def summary(self, photo_queries: PhotoQueryResult | None = None,
                real_photos: PhotoFolderResult | None = None) -> EvaluationSummary:
        """The typed summary written to ``evaluation.json``, with the photo blocks when given."""
        return EvaluationSummary(
            k=self.k,
            relevance=self.relevance,
            metric=self.metric,
            engine=self.engine,
            normalize=self.normalize,
            n_products=self.n_products,
            n_queries=self.n_queries,
            n_skipped=self.n_skipped,
            sample=self.sample,
            seed=self.seed,
            seconds=round(self.seconds, 3),
            source=IndexSource(**self.source) if self.source else NoSource(),
            overall=self.overall,
            baseline=self.baseline,
            per_class=[_class_row(record) for record in self.per_class.to_dict(orient="records")],
            photo_queries=None if photo_queries is None else photo_queries.summary(),
            real_photos=None if real_photos is None else real_photos.summary(),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (plain floats, NaN as None), without the photo-query block."""
        return self.summary().model_dump(mode="json")


def _class_row(record: dict[str, Any]) -> ClassRow:
    """A per_class record as a :class:`ClassRow`; the label is written as a string."""
    label = record.pop("articleType")
    return ClassRow(articleType=str(label), **record)


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
    engine: str = DEFAULT_ENGINE,
) -> EvaluationResult:
    """Leave-one-out retrieval quality of an index (see the module docstring).

    ``index`` is an :class:`IndexFolder`, its path, or ``(embeddings, products)``
    with (N, D) embeddings and N product rows (``id``, ``articleType``, and
    ``baseColour`` for the combined relevance). ``sample`` evaluates a seeded
    random subset of the queries (all products remain searchable).
    ``normalize`` L2-normalises the features first (compare raw vs normalised
    features under the euclidean metric). ``block_size`` queries are searched
    at a time, with the search engine ``engine``: one that is built ahead
    (``needs_build``: ``ivf``, ``hnsw``) is opened from the index folder where it
    was saved for ``metric`` (:class:`~fashionrec.errors.IndexFolderError` when
    it is not saved there or is out of date, and with ``normalize``, which it
    cannot search), or built over the arrays when arrays are given. Raises
    :class:`QueryError` for an unknown ``relevance``, ``metric`` or ``engine``,
    ``k`` < 1, ``sample`` < 1, or when no product can query.
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
    k = check_k(k)
    metric = check_metric(metric)
    saved = engine_class(engine).needs_build and isinstance(index, IndexFolder)
    if saved and normalize:
        raise QueryError(
            f"normalised features cannot be searched with the {engine} engine saved in {index.path}: it holds the "
            "vectors as stored; evaluate with the cosine metric instead (it ranks like normalised features)"
        )
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
    # No query has more than n - 1 others to rank: cap the arrays' k before allocating (Q, k).
    ranked = min(k, n - 1)
    keys = vector_ids(products["id"])
    if saved:
        searcher = open_saved_engine(index, engine, metric)  # the vectors and keys the index holds
    else:
        searcher = create_engine(engine, metric=metric).build(vectors, keys)
    rows = _nearest_others(searcher, vectors, keys, query_rows, ranked, block_size)
    rel = (rows >= 0) & (codes[np.maximum(rows, 0)] == codes[query_rows][:, None])

    n_rel = n_rel_all[query_rows]
    model = batch_metrics(rel, n_rel, ranked)
    rand = random_baseline(n_rel, n - 1, ranked)
    if ranked < k:
        # AP, nDCG and hit@1 depend on k only through min(k, R) and ranks <= n - 1: the same at
        # k and n - 1. precision@k divides by the k asked for (missing results are not relevant).
        model["precision"] = rel.sum(axis=1) / k
        rand["precision"] = n_rel / (n - 1) * ranked / k
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
        engine=engine,
    )
    log.info(
        "evaluated %d queries over %d products in %.1f s: %s",
        result.n_queries,
        n,
        result.seconds,
        ", ".join(f"{key} {value:.3f}" for key, value in result.overall.items()),
    )
    return result


# --------------------------------------------------------------------------- search: the only call into the engine


def _nearest_others(
    engine: SearchEngine, vectors: np.ndarray, keys: np.ndarray, query_rows: np.ndarray, k: int, block_size: int,
) -> np.ndarray:
    """Rows (Q, k) int64 of the k products nearest each of the Q ``query_rows``, the query itself excluded.

    The caller caps ``k`` to N - 1 (the engine caps it to N only).

    ``engine`` holds the (N, D) float32 ``vectors`` under the (N,) int64 ``keys``
    (:func:`~fashionrec.index.vector_ids` of the product ids: ties are broken by
    product id); -1 pads a row when fewer than k other products exist. Queries
    go ``block_size`` at a time.
    """
    by_key = np.argsort(keys, kind="stable")  # engine ids -> rows
    rows = np.full((len(query_rows), k), -1, dtype=np.int64)
    for start in range(0, len(query_rows), block_size):
        block = query_rows[start : start + block_size]
        _, found = engine.search(vectors[block], k, exclude_ids=[[key] for key in keys[block].tolist()])
        hit = found >= 0
        rows[start : start + len(block)][hit] = by_key[np.searchsorted(keys[by_key], found[hit])]
        log.debug("evaluated %d / %d queries", start + len(block), len(query_rows))
    return rows


# --------------------------------------------------------------------------- labels


def _labels(products: pd.DataFrame, attrs: tuple[str, ...]) -> pd.Series:
    """One relevance label per product (missing when any attribute is missing)."""
    parts = [products[a].astype("string").str.strip().replace("", pd.NA) for a in attrs]
    label = parts[0]
    for part in parts[1:]:
        label = label + "\x1f" + part  # NA propagates
    return label.astype(object).where(label.notna(), None)
