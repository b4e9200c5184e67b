"""Near-duplicate products: groups of products whose feature vectors lie within a distance of each other.

A catalog holds the same picture under several ids (re-listed items, colour
variants photographed once, data-entry copies). :func:`duplicate_groups` finds
them as the connected components of the graph whose edges join products at
distance ``<= threshold``, built from the engine's ``range_search`` a block of
queries at a time, so it runs on every engine: blockwise exact search at tens
of thousands of products, an approximate engine at millions.

Byte-identical image files give identical vectors (distance 0), so any
threshold finds them; how far above 0 a threshold should go is a calibration
(see the README's "Near-duplicates").
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..search import SearchEngine

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class DuplicateGroup:
    """Products that are near-duplicates of each other (a connected component of the threshold graph).

    ``ids`` are the engine ids of the products, ascending; ``pairs`` the edges
    found, ``(id_a, id_b, distance)`` with ``id_a < id_b``, by distance then ids.
    """

    ids: tuple[int, ...]
    pairs: tuple[tuple[int, int, float], ...]

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class DuplicateScan:
    """What :func:`duplicate_groups` found: groups largest first (ties: smallest first id)."""

    threshold: float
    groups: list[DuplicateGroup]
    searched: int
    """Products searched (those the filter keeps)."""
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def products_in_groups(self) -> int:
        return sum(len(group) for group in self.groups)


def duplicate_groups(
    engine: SearchEngine,
    vectors: np.ndarray,
    ids: np.ndarray,
    threshold: float,
    *,
    rows: np.ndarray | None = None,
    filter: Mapping[str, Any] | None = None,
    block_size: int = 512,
    progress: ProgressCallback | None = None,
) -> DuplicateScan:
    """Groups of products within ``threshold`` of each other (see the module docstring).

    ``engine`` holds ``vectors`` (N, D) under ``ids`` (N,) int64. ``rows``
    (positions) are the products searched, and ``filter`` the one the engine
    applies to the neighbours: give both to look within a selection (the
    filter's rows). ``progress(done, total)`` is called after each block.
    Raises ValueError for a negative or non-finite ``threshold``.
    """
    threshold = float(threshold)
    if not math.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite distance >= 0, got {threshold!r}")
    started = time.perf_counter()
    ids = np.asarray(ids, dtype=np.int64)
    rows = np.arange(len(ids)) if rows is None else np.asarray(rows, dtype=np.int64)
    position = {int(i): p for p, i in enumerate(ids.tolist())}
    left: list[np.ndarray] = []
    right: list[np.ndarray] = []
    dist: list[np.ndarray] = []
    for start in range(0, len(rows), block_size):
        block = rows[start : start + block_size]
        found = engine.range_search(np.ascontiguousarray(vectors[block]), threshold, filter=filter,
                                    exclude_ids=[[int(ids[r])] for r in block])
        counts = np.diff(found.lims)
        if len(found.ids):
            source = np.repeat(block, counts)
            target = np.array([position[int(i)] for i in found.ids.tolist()], dtype=np.int64)
            keep = source < target  # each pair once
            left.append(source[keep])
            right.append(target[keep])
            dist.append(found.distances[keep])
        if progress:
            progress(min(start + block_size, len(rows)), len(rows))
    a = np.concatenate(left) if left else np.zeros(0, np.int64)
    b = np.concatenate(right) if right else np.zeros(0, np.int64)
    d = np.concatenate(dist) if dist else np.zeros(0)
    return _scan_of_edges(ids, a, b, d, threshold, len(rows), started)


def _scan_of_edges(ids: np.ndarray, a: np.ndarray, b: np.ndarray, d: np.ndarray, threshold: float, searched: int,
                   started: float) -> DuplicateScan:
    """The groups (connected components) of the edges ``a[i] - b[i]`` (row positions, ``a < b``) at distances ``d``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(ids)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    members: dict[int, list[int]] = {}
    for r in np.unique(np.concatenate([a, b])).tolist():
        members.setdefault(int(label[r]), []).append(r)
    edges: dict[int, list[tuple[int, int, float]]] = {}
    for x, y, w in zip(a.tolist(), b.tolist(), d.tolist()):
        i, j = sorted((int(ids[x]), int(ids[y])))
        edges.setdefault(int(label[x]), []).append((i, j, float(w)))
    groups = [
        DuplicateGroup(tuple(sorted(int(ids[r]) for r in rs)), tuple(sorted(edges[c], key=lambda e: (e[2], e[0], e[1]))))
        for c, rs in members.items()
    ]
    groups.sort(key=lambda g: (-len(g), g.ids[0]))
    return DuplicateScan(threshold, groups, int(searched), time.perf_counter() - started)


def auto_duplicate_groups(
    engine: SearchEngine,
    vectors: np.ndarray,
    ids: np.ndarray,
    *,
    rows: np.ndarray | None = None,
    filter: Mapping[str, Any] | None = None,
    threshold: tuple[float, str] | None = None,
    block_size: int = 512,
    progress: ProgressCallback | None = None,
) -> DuplicateScan:
    """:func:`duplicate_groups` at the threshold :func:`estimate_threshold` picks over the whole engine.

    ``threshold`` is an already estimated ``(threshold, why)``, to skip the
    estimate. The threshold is the engine's, not the selection's: how far
    apart two copies of one picture lie is a property of the backbone, and a
    selection's products lie farther from their nearest neighbours than the
    catalog's. The reason for it is in ``notes["threshold"]``.
    """
    started = time.perf_counter()
    value, why = threshold if threshold is not None else estimate_threshold(engine, vectors, ids)
    scan = duplicate_groups(engine, vectors, ids, value, rows=rows, filter=filter, block_size=block_size,
                            progress=progress)
    scan.seconds = time.perf_counter() - started
    scan.notes["threshold"] = why
    return scan


THRESHOLD_SAMPLE = 2000
"""Products whose nearest-neighbour distance :func:`estimate_threshold` measures (all when fewer)."""


def estimate_threshold(engine: SearchEngine, vectors: np.ndarray, ids: np.ndarray, *,
                       sample: int = THRESHOLD_SAMPLE, seed: int = 0) -> tuple[float, str]:
    """The duplicate threshold of an engine's vectors, and why: :func:`auto_threshold` over a fixed sample.

    The median nearest-neighbour distance of ``sample`` products drawn with
    ``seed`` (every product when there are fewer): one search of ``sample``
    queries instead of one per product, and the same threshold on every call
    for the same vectors.
    """
    ids = np.asarray(ids, dtype=np.int64)
    rows = None
    if len(ids) > sample:
        rows = np.sort(np.random.default_rng(seed).choice(len(ids), size=sample, replace=False))
    value, why = auto_threshold(nearest_distances(engine, vectors, ids, rows=rows))
    if rows is not None:
        why += f", measured on {sample} products drawn at random"
    return value, why


def nearest_distances(engine: SearchEngine, vectors: np.ndarray, ids: np.ndarray, *, rows: np.ndarray | None = None,
                      filter: Mapping[str, Any] | None = None, block_size: int = 1024) -> np.ndarray:
    """Each searched product's distance to its nearest other product (inf when it has none), in ``rows`` order."""
    ids = np.asarray(ids, dtype=np.int64)
    rows = np.arange(len(ids)) if rows is None else np.asarray(rows, dtype=np.int64)
    out = np.full(len(rows), np.inf)
    for start in range(0, len(rows), block_size):
        block = rows[start : start + block_size]
        d, _ = engine.search(np.ascontiguousarray(vectors[block]), 1, filter=filter,
                             exclude_ids=[[int(ids[r])] for r in block])
        out[start : start + len(block)] = d[:, 0]
    return out


@dataclass
class Collapsed:
    """A ranking with its near-duplicates collapsed (see :func:`collapse`); positions into the ranking."""

    kept: list[int]
    """Positions of the results kept, in ranking order."""
    twins: list[list[int]]
    """Per kept result, the positions collapsed into it."""
    query_twins: list[int]
    """Positions collapsed into the query product itself."""


def collapse(candidates: np.ndarray, threshold: float, k: int, *, metric: str = "euclidean",
             query: np.ndarray | None = None) -> Collapsed:
    """Keep, in ranking order, the results farther than ``threshold`` from every result kept before and the query.

    ``candidates`` (C, D) are the vectors of a ranking's results, nearest
    first; ``query`` (D,) the query product's vector (None for a photo: a
    photo's nearest product is what it looks for, not a copy to hide).
    Distances are ``metric``'s, computed in float64. A dropped result is
    reported with the first kept result (or the query) it lies within
    ``threshold`` of. At most ``k`` results are kept; the ranking is read
    until then.
    """
    vectors = np.asarray(candidates, dtype=np.float64)
    if metric == "cosine":  # 1 - cos: compare unit vectors
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)

    def distances(of: np.ndarray, to: np.ndarray) -> np.ndarray:
        if metric == "cosine":
            return 1.0 - to @ of
        return np.sqrt(((to - of) ** 2).sum(axis=-1))

    result = Collapsed([], [], [])
    to_query = None
    if query is not None:
        q = np.asarray(query, dtype=np.float64)
        if metric == "cosine":
            n = np.linalg.norm(q)
            q = q / n if n > 0 else q
        to_query = distances(q, vectors)
    for position in range(len(vectors)):
        if to_query is not None and to_query[position] <= threshold:
            result.query_twins.append(position)
            continue
        if result.kept:
            near = distances(vectors[position], vectors[result.kept])
            first = int(np.argmax(near <= threshold))
            if near[first] <= threshold:
                result.twins[first].append(position)
                continue
        if len(result.kept) == k:
            break
        result.kept.append(position)
        result.twins.append([])
    return result


AUTO_FRACTION = 0.2
"""``--auto`` threshold: this fraction of the median nearest-neighbour distance (calibration: README, "Near-duplicates")."""


def auto_threshold(nearest: np.ndarray) -> tuple[float, str]:
    """The threshold ``--auto`` picks from the products' nearest-neighbour distances, and why.

    A fixed fraction (:data:`AUTO_FRACTION`) of the median distance to the
    nearest other product: it scales with the backbone's distances, and on the
    real catalog (EfficientNet-Lite0) it admits only pairs that show the same
    product picture (the README has the sample).
    """
    finite = nearest[np.isfinite(nearest)]
    if not len(finite):
        return 0.0, "no product has another product to compare with: only identical vectors can be grouped"
    median = float(np.median(finite))
    threshold = AUTO_FRACTION * median
    identical = int((finite == 0).sum())
    return threshold, (
        f"{AUTO_FRACTION:g} x the median distance of a product to its nearest other product ({median:.4g}); "
        f"{identical} of {len(finite)} products have an identical twin (distance 0)"
    )
