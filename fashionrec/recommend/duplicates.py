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
    neighbours: int = 32,
    block_size: int = 512,
) -> DuplicateScan:
    """:func:`duplicate_groups` at the threshold :func:`auto_threshold` picks, in one pass over the products.

    Each product's ``neighbours`` nearest give both its nearest-neighbour
    distance (for the threshold) and its edges; a product whose farthest
    listed neighbour is still within the threshold is searched again by range,
    so no edge is missed. The reason for the threshold is in ``notes``.
    """
    started = time.perf_counter()
    ids = np.asarray(ids, dtype=np.int64)
    rows = np.arange(len(ids)) if rows is None else np.asarray(rows, dtype=np.int64)
    position = {int(i): p for p, i in enumerate(ids.tolist())}
    found_d, found_i = [], []
    for start in range(0, len(rows), block_size):
        block = rows[start : start + block_size]
        d, i = engine.search(np.ascontiguousarray(vectors[block]), neighbours, filter=filter,
                             exclude_ids=[[int(ids[r])] for r in block])
        found_d.append(d)
        found_i.append(i)
    dist = np.concatenate(found_d) if found_d else np.zeros((0, neighbours))
    nbr = np.concatenate(found_i) if found_i else np.zeros((0, neighbours), np.int64)
    threshold, why = auto_threshold(dist[:, 0] if dist.shape[1] else np.zeros(0))
    within = (dist <= threshold) & (nbr >= 0)
    full = np.flatnonzero(within.all(axis=1)) if dist.shape[1] else np.zeros(0, np.int64)
    keep = within.copy()
    keep[full] = False  # searched again by range below
    src = np.repeat(rows, keep.sum(axis=1))
    dst = np.array([position[int(j)] for j in nbr[keep].tolist()], dtype=np.int64)
    w = dist[keep]
    if len(full):
        extra = duplicate_groups(engine, vectors, ids, threshold, rows=rows[full], filter=filter)
        pairs = [(position[a], position[b], d) for g in extra.groups for a, b, d in g.pairs]
        if pairs:
            pa, pb, pd_ = (np.array(v) for v in zip(*pairs))
            src, dst, w = np.concatenate([src, pa]), np.concatenate([dst, pb]), np.concatenate([w, pd_])
    lo, hi = np.minimum(src, dst), np.maximum(src, dst)
    if len(lo):  # each pair once
        _, first = np.unique(np.stack([lo, hi]), axis=1, return_index=True)
        lo, hi, w = lo[first], hi[first], w[first]
    scan = _scan_of_edges(ids, lo.astype(np.int64), hi.astype(np.int64), np.asarray(w, dtype=np.float64), threshold,
                          len(rows), started)
    scan.notes["threshold"] = why
    return scan


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


def collapse(distances: np.ndarray, found: np.ndarray, pairwise: Callable[[int, int], float], threshold: float, k: int,
             query_id: int | None = None, query_distance: Callable[[int], float] | None = None,
             ) -> list[tuple[int, float, list[int]]]:
    """Keep, in ranking order, results farther than ``threshold`` from every result kept before (and the query).

    ``found`` / ``distances`` are one query's ranked results (ids, padding -1
    ignored); ``pairwise(a, b)`` the distance between two results' vectors;
    ``query_distance(id)`` the distance to the query (its ranking distance by
    default). Returns up to ``k`` ``(id, distance, collapsed ids)`` triples:
    each dropped result is reported with the kept one it duplicates.
    """
    kept: list[tuple[int, float, list[int]]] = []
    for pid, dist in zip(found.tolist(), distances.tolist()):
        if pid < 0:
            continue
        to_query = query_distance(pid) if query_distance is not None else dist
        if query_id is not None and to_query <= threshold:
            continue  # a copy of the query product itself
        twin = next((entry for entry in kept if pairwise(entry[0], pid) <= threshold), None)
        if twin is not None:
            twin[2].append(pid)
            continue
        if len(kept) < k:
            kept.append((pid, dist, []))
        else:
            break
    return kept


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
