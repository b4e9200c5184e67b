"""The exact engine: brute-force search, float64-exact results at memory-bandwidth speed.

:class:`ExactEngine` is the ``"exact"`` engine of the registry (the contract is
in :mod:`fashionrec.search.base`). It works on row positions through
:class:`ExactScan`, the scanning kernel, and translates ids, filters and
exclusions to rows and back.

How :class:`ExactScan` stays fast *and* exact
--------------------------------------------
A single query is one matrix-vector product over the stored vectors, which is
bound by memory bandwidth (the vectors are read once, in place — a
memory-mapped index is never copied). Candidates are chosen from the float32
scores with a *rigorous* rounding margin: every row whose approximate distance
lies within the worst-case float32 error of the k-th best (or of the radius) is
kept, then the candidates are re-ranked with float64 distances computed
directly from the vectors. The result therefore equals a float64 brute-force
ranking, ties included. A flat FAISS index was measured slower for single
queries and would hold a second copy of the vectors
(``benchmarks/RESULTS.md``), so FAISS is used here only for its small-matrix
dot-product kernel (:func:`_dot_one`).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from ..catalog.filters import Filter
from ..errors import FilterError
from ..validation import check_k, check_metric
from .base import RangeResult, SearchEngine, check_vectors

log = logging.getLogger(__name__)


_U32 = float(np.finfo(np.float32).eps) / 2  # unit round-off of float32


class _Scored(NamedTuple):
    """The rows one search scores: all rows (``rows`` None) or a gathered subset."""

    rows: np.ndarray | None  # row positions of the scored subset, or None for all rows
    sq_norms32: np.ndarray  # float32 squared norms of the scored rows
    inv_norms32: np.ndarray  # float32 inverse norms of the scored rows (0 for zero vectors)
    masked_out: np.ndarray | None  # bool, scored rows the filter rejects (all-rows scans only)


class ExactScan:
    """The exact scanning kernel over row positions: float64-exact results, BLAS speed.

    Parameters
    ----------
    metric:
        ``"euclidean"`` (L2 distance) or ``"cosine"`` (1 - cosine similarity).
    tie_order:
        Optional (N,) integer rank per row used to break distance ties (lower
        first); by default the row position. :class:`~fashionrec.recommend.Recommender`
        passes the rank of each product id so that ties resolve by id.
    block_size:
        Queries per matrix product when many queries are searched at once.
    gather_fraction:
        With a filter selecting at most this fraction of rows, only those rows
        are read (gathered); otherwise all rows are scored and masked.

    Results are row positions, (Q, min(k, N)), sorted by distance with ties by
    ``tie_order``, padded with ``inf`` / ``-1`` where fewer rows are eligible; ``allowed`` is an (N,) bool mask of rows that
    may be returned, ``exclude`` lists per query rows that must not be.
    """

    def __init__(
        self,
        metric: str = "euclidean",
        *,
        tie_order: np.ndarray | None = None,
        block_size: int = 1024,
        gather_fraction: float = 0.25,
    ):
        self.metric = check_metric(metric)
        self.block_size = int(block_size)
        self.gather_fraction = float(gather_fraction)
        self._tie_order = None if tie_order is None else np.asarray(tie_order, dtype=np.int64)
        self._vectors: np.ndarray | None = None
        self.row_reader: Callable[[np.ndarray], np.ndarray] | None = None
        """Optional ``reader(rows) -> (len(rows), D) float32`` used to fetch candidate rows for re-ranking
        instead of indexing the vectors (an approximate engine reads them from the file: see FileRows)."""

    # ------------------------------------------------------------------ fit

    def fit(self, vectors: np.ndarray, *, sq_norms: np.ndarray | None = None) -> ExactScan:
        """Keep a reference to ``vectors`` (no copy when already float32, C order).

        ``sq_norms``: the rows' float64 squared norms when already known (an
        engine saves them), so that fitting does not read every vector.
        """
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be a 2-D (N, D) array, got shape {vectors.shape}")
        if vectors.dtype != np.float32 or not vectors.flags.c_contiguous:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = vectors.shape
        if self._tie_order is not None and self._tie_order.shape != (n,):
            raise ValueError(f"tie_order has shape {self._tie_order.shape}, expected ({n},)")
        self._vectors = vectors
        if sq_norms is not None:
            sq = np.asarray(sq_norms, dtype=np.float64)
            if sq.shape != (n,):
                raise ValueError(f"sq_norms has shape {sq.shape}, expected ({n},)")
        else:
            sq = squared_norms(vectors)
        self._sq_norms = sq
        self._norms = np.sqrt(sq)
        self._max_norm = float(self._norms.max()) if n else 0.0
        with np.errstate(divide="ignore"):
            inv = np.where(self._norms > 0, 1.0 / self._norms, 0.0)
        self._inv_norms32 = inv.astype(np.float32)
        self._sq_norms32 = sq.astype(np.float32)
        # gamma_D: worst-case relative error of a float32 dot product of length D
        self._gamma = d * _U32 / (1 - d * _U32) if d * _U32 < 0.5 else 1.0
        log.debug("ExactScan(%s) fitted on %d x %d vectors", self.metric, n, d)
        return self

    @property
    def ntotal(self) -> int:
        return 0 if self._vectors is None else len(self._vectors)

    @property
    def dim(self) -> int:
        if self._vectors is None:
            raise RuntimeError("ExactScan is not fitted; call fit(vectors) first")
        return self._vectors.shape[1]

    # ------------------------------------------------------------------ search

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        exclude: Sequence[Sequence[int]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows of each query: float64 distances and int64 rows, both (Q, min(k, N)).

        ``queries`` is (Q, D) or (D,); ``allowed`` an (N,) bool mask or None;
        ``exclude`` one sequence of rows per query, or None. ``k`` is capped to
        the N rows held before anything is allocated, so a huge ``k`` costs no
        more than ``k = N``; padding (``inf`` / ``-1``) fills only the columns
        the filter and exclusions leave without a row.
        """
        k = check_k(k)
        queries, scored = self._prepare(queries, allowed, exclude)
        k = min(k, self.ntotal)  # no more results than rows: cap before allocating (Q, k)
        nq = len(queries)
        out_d = np.full((nq, k), np.inf, dtype=np.float64)
        out_i = np.full((nq, k), -1, dtype=np.int64)
        if scored is None or k == 0:
            return out_d, out_i
        for start in range(0, nq, self.block_size):
            qb = queries[start : start + self.block_size]
            scores = self._scores(qb, scored)
            for j in range(len(qb)):
                qi = start + j
                dist, found = self._rank(qb[j], scores[j], k, scored, None if exclude is None else exclude[qi])
                out_d[qi, : len(found)] = dist
                out_i[qi, : len(found)] = found
        return out_d, out_i

    def range_search(
        self,
        queries: np.ndarray,
        radius: float,
        *,
        allowed: np.ndarray | None = None,
        exclude: Sequence[Sequence[int]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every row within ``radius`` (inclusive) of each query: ``(lims, distances, rows)``.

        The rows of query ``i`` are ``rows[lims[i]:lims[i + 1]]``, sorted by
        distance, ties by tie rank (see :class:`fashionrec.search.RangeResult`).
        """
        radius = float(radius)
        if not math.isfinite(radius) or radius < 0:
            raise ValueError(f"radius must be a finite distance >= 0, got {radius!r}")
        queries, scored = self._prepare(queries, allowed, exclude)
        nq = len(queries)
        lims = np.zeros(nq + 1, dtype=np.int64)
        dists: list[np.ndarray] = []
        found: list[np.ndarray] = []
        if scored is not None:
            for start in range(0, nq, self.block_size):
                qb = queries[start : start + self.block_size]
                scores = self._scores(qb, scored)
                for j in range(len(qb)):
                    qi = start + j
                    dist, rows = self._within(qb[j], scores[j], radius, scored,
                                              None if exclude is None else exclude[qi])
                    dists.append(dist)
                    found.append(rows)
                    lims[qi + 1] = lims[qi] + len(rows)
        if dists:
            return lims, np.concatenate(dists), np.concatenate(found)
        return lims, np.zeros(0, np.float64), np.zeros(0, np.int64)

    def rerank(self, query: np.ndarray, rows: np.ndarray, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact float64 distances of one (D,) ``query`` to the candidate ``rows``, sorted; the first ``k``.

        The same arithmetic as :meth:`search`, so a row gets bit-for-bit the
        distance the exact scan gives it, and ties resolve by tie rank. This is
        how approximate engines turn their candidates into exact answers.
        """
        if self._vectors is None:
            raise RuntimeError("ExactScan is not fitted; call fit(vectors) first")
        q64 = np.asarray(query, dtype=np.float32).astype(np.float64)
        rows = np.asarray(rows, dtype=np.int64)
        dist = self._exact(q64, math.sqrt(float(q64 @ q64)), rows)
        tie = rows if self._tie_order is None else self._tie_order[rows]
        order = np.lexsort((tie, dist))[:k]
        return dist[order], rows[order]

    # ------------------------------------------------------------------ internals

    def _prepare(self, queries, allowed, exclude) -> tuple[np.ndarray, _Scored | None]:
        """Validated (Q, D) float32 queries, and the rows to score (None when no row is allowed)."""
        if self._vectors is None:
            raise RuntimeError("ExactScan is not fitted; call fit(vectors) first")
        n, d = self._vectors.shape
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != d:
            raise ValueError(f"queries must have shape (Q, {d}), got {queries.shape}")
        if exclude is not None and len(exclude) != len(queries):
            raise ValueError(f"exclude must give one list of rows per query ({len(queries)}), got {len(exclude)}")
        if allowed is None:
            return queries, _Scored(None, self._sq_norms32, self._inv_norms32, None)
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.shape != (n,):
            raise ValueError(f"allowed must be a bool mask of shape ({n},), got {allowed.shape}")
        if int(allowed.sum()) > self.gather_fraction * n:  # score all rows, mask the others
            return queries, _Scored(None, self._sq_norms32, self._inv_norms32, ~allowed)
        rows = np.flatnonzero(allowed)  # few rows: read only those
        if len(rows) == 0:
            return queries, None
        return queries, _Scored(rows, self._sq_norms32[rows], self._inv_norms32[rows], None)

    def _scores(self, qb: np.ndarray, scored: _Scored) -> np.ndarray:
        """float32 dot products (len(qb), scored rows) of a block of queries."""
        if scored.rows is not None:
            return self._gathered_scores(qb, scored.rows)
        if len(qb) == 1:
            return _dot_one(self._vectors, qb[0])[None, :]  # one pass over the vectors, in place
        return qb @ self._vectors.T  # BLAS gemm

    def _approx(self, q: np.ndarray, scores: np.ndarray, scored: _Scored, excl):
        """Rank-preserving float32 distances of one query (``scores`` overwritten), with their error bound.

        Returns ``(approx, tol, q64, q_norm)``. ``approx`` ranks like the distance:
        |x|^2 - 2 q.x (= d^2 - |q|^2) for euclidean, -q.x / |x| (= |q| (cos distance - 1))
        for cosine; rows filtered out or excluded are inf. ``tol`` bounds the float32
        error between two rows' values: q.x is off by at most gamma_D |q||x|, the
        other operations by a few ulps of (|q| + |x|)^2 (euclidean) or of |q| (cosine).
        Every step is one NumPy call over the scored rows: for a small index this
        bookkeeping, not the scan, would otherwise dominate.
        """
        q64 = q.astype(np.float64)
        q_norm = math.sqrt(float(q64 @ q64))
        g = self._gamma + 4 * _U32
        approx = scores
        if self.metric == "euclidean":
            approx *= np.float32(-2.0)
            approx += scored.sq_norms32
            tol = 2 * (2 * g * q_norm * self._max_norm + 4 * _U32 * (q_norm + self._max_norm) ** 2)
        else:
            approx *= scored.inv_norms32
            np.negative(approx, out=approx)
            tol = 2 * (g + 8 * _U32) * q_norm
        tol = np.float64(tol * 1.01 + 1e-30)
        if scored.masked_out is not None:
            approx[scored.masked_out] = np.inf
        if excl is not None:
            self._exclude(approx, excl, scored.rows, self.ntotal)
        return approx, tol, q64, q_norm

    def _rank(
        self, q: np.ndarray, scores: np.ndarray, k: int, scored: _Scored, excl
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact top ``k`` of one query from its float32 dot products ``scores`` (overwritten).

        Returns float64 distances and row positions, sorted (ties by tie rank),
        at most ``k`` of them.
        """
        approx, tol, q64, q_norm = self._approx(q, scores, scored, excl)
        if k <= len(approx):
            kth = np.float64(np.partition(approx, k - 1)[k - 1])
        else:
            kth = np.float64(np.inf)  # fewer rows than k: every finite one is a candidate
        cand = np.flatnonzero(approx <= kth + tol) if np.isfinite(kth) else np.flatnonzero(np.isfinite(approx))
        return self._sorted_exact(q64, q_norm, cand, scored, k)

    def _within(
        self, q: np.ndarray, scores: np.ndarray, radius: float, scored: _Scored, excl
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact distances and rows of one query's neighbours within ``radius``, sorted."""
        approx, tol, q64, q_norm = self._approx(q, scores, scored, excl)
        if self.metric == "euclidean":
            threshold = radius * radius - q_norm * q_norm
        else:
            threshold = q_norm * (radius - 1.0)
        cand = np.flatnonzero(approx <= threshold + tol)
        dist, rows = self._sorted_exact(q64, q_norm, cand, scored, None)
        keep = dist <= radius
        return dist[keep], rows[keep]

    def _sorted_exact(self, q64, q_norm, cand, scored: _Scored, k: int | None):
        """float64 distances of candidate positions ``cand`` (among the scored rows), sorted; the first ``k``."""
        if scored.rows is not None:
            cand = scored.rows[cand]
        dist = self._exact(q64, q_norm, cand)
        tie = cand if self._tie_order is None else self._tie_order[cand]
        order = np.lexsort((tie, dist))[:k]
        return dist[order], cand[order]

    def _gathered_scores(self, qb: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Dot products with the rows ``rows`` only, gathered in small cache-sized chunks."""
        X = self._vectors
        chunk = 256 if len(qb) == 1 else 2048
        scores = np.empty((len(qb), len(rows)), dtype=np.float32)
        buffer = np.empty((min(chunk, len(rows)), X.shape[1]), dtype=np.float32)
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            block = buffer[: len(part)]
            np.take(X, part, axis=0, out=block)
            if len(qb) == 1:
                scores[0, start : start + len(part)] = _dot_one(block, qb[0])
            else:
                scores[:, start : start + len(part)] = qb @ block.T
        return scores

    @staticmethod
    def _exclude(approx_row: np.ndarray, excl, rows: np.ndarray | None, n: int) -> None:
        """Set the approximate distance of excluded rows to inf (in place).

        A query excludes a row or a few: plain Python here costs less than
        NumPy's per-call overhead.
        """
        excl = [int(row) for row in excl]
        if rows is None:
            for row in excl:
                if 0 <= row < n:
                    approx_row[row] = np.inf
            return
        for row in excl:  # position of ``row`` among the gathered rows, if it is one of them
            pos = int(np.searchsorted(rows, row))
            if pos < len(rows) and rows[pos] == row:
                approx_row[pos] = np.inf

    def _exact(self, q64: np.ndarray, qn: float, cand_rows: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """float64 distances of ``q64`` (norm ``qn``) to rows ``cand_rows``.

        Chunked, so that many tied candidates stay cheap; row-wise element sums
        (not BLAS), so that identical vectors get bit-identical distances.
        """
        if len(cand_rows) > chunk:
            return np.concatenate([self._exact(q64, qn, cand_rows[start : start + chunk], chunk)
                                   for start in range(0, len(cand_rows), chunk)])
        # float32; the arithmetic below promotes it to float64
        xc = self._vectors[cand_rows] if self.row_reader is None else self.row_reader(cand_rows)
        if self.metric == "euclidean":
            diff = np.subtract(xc, q64)
            diff *= diff
            return np.sqrt(diff.sum(axis=1))
        dots = np.multiply(xc, q64).sum(axis=1)
        denom = self._norms[cand_rows] * qn
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = np.where(denom > 0, dots / np.where(denom > 0, denom, 1.0), 0.0)
        return 1.0 - sim


def squared_norms(vectors: np.ndarray) -> np.ndarray:
    """(N,) float64 squared norms of the rows of (N, D) ``vectors``, without a float64 copy of them all."""
    sq = np.empty(len(vectors), dtype=np.float64)
    for start in range(0, len(vectors), 4096):
        chunk = np.asarray(vectors[start : start + 4096]).astype(np.float64)
        sq[start : start + len(chunk)] = np.einsum("ij,ij->i", chunk, chunk)
    return sq


_faiss_module: object = None  # None: not tried yet; False: unavailable


def _faiss():
    global _faiss_module
    if _faiss_module is None:
        try:
            import faiss

            _faiss_module = faiss if hasattr(faiss, "fvec_inner_products_ny") else False
        except Exception:  # pragma: no cover - faiss missing or broken: NumPy/BLAS fallback
            log.debug("faiss unavailable; single queries use BLAS gemv")
            _faiss_module = False
    return _faiss_module


_BLAS_MIN_ELEMENTS = 1 << 20
"""Single-query scans of at least this many floats (4 MB) use multi-threaded BLAS."""


def _dot_one(matrix: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``matrix @ q`` for one query: float32, one streaming pass over ``matrix``.

    Scans of 4 MB and more use BLAS gemv (multi-threaded: more memory bandwidth
    than one core). Smaller ones use FAISS's single-threaded SIMD
    ``fvec_inner_products_ny`` (reading the matrix in place, memory maps
    included), where waking threads costs more than it saves. On a busy machine
    a multi-threaded gemv can wait for descheduled threads: limit BLAS threads
    (``OMP_NUM_THREADS=1``) when serving many queries at once (figures in
    ``benchmarks/RESULTS.md``). Falls back to BLAS when FAISS is unavailable.
    """
    n, d = matrix.shape
    if n * d < _BLAS_MIN_ELEMENTS and n and matrix.dtype == np.float32 and matrix.flags.c_contiguous:
        faiss = _faiss()
        if faiss:
            q = np.ascontiguousarray(q, dtype=np.float32)
            out = np.empty(n, dtype=np.float32)
            faiss.fvec_inner_products_ny(faiss.swig_ptr(out), faiss.swig_ptr(q), faiss.swig_ptr(matrix), d, n)
            return out
    return np.asarray(matrix @ q, dtype=np.float32)


def id_tie_order(ids) -> np.ndarray:
    """Rank of each row's id (0 = smallest), for ``ExactScan(tie_order=...)``: ties resolve by id."""
    ids = pd.Series(ids).reset_index(drop=True)
    order = np.asarray(ids.argsort(kind="stable"), dtype=np.int64)
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[order] = np.arange(len(ids))
    return ranks


class ExactEngine(SearchEngine):
    """The ``"exact"`` engine: every vector scanned for every query (see :class:`ExactScan`).

    Parameters
    ----------
    metric:
        ``"euclidean"`` or ``"cosine"``.
    block_size:
        Queries per matrix product when many queries are searched at once.
    gather_fraction:
        With a filter selecting at most this fraction of rows, only those rows
        are read (gathered); otherwise all rows are scored and masked.

    Building keeps a reference to the vectors (no copy of a float32 memory map),
    computes their norms and maps ids to rows. Filters are evaluated on the
    attributes given at build time, and the last 64 filter masks are kept.
    Safe to search from many threads at once.
    """

    name = "exact"
    MASK_CACHE_SIZE = 64

    def __init__(self, metric: str = "euclidean", *, block_size: int = 1024, gather_fraction: float = 0.25):
        super().__init__(metric)
        self.block_size = int(block_size)
        self.gather_fraction = float(gather_fraction)
        self._scan: ExactScan | None = None
        self._ids = np.zeros(0, np.int64)
        self._row_of: dict[int, int] = {}
        self._attributes: pd.DataFrame | None = None
        self._masks: OrderedDict[Filter, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def params(self) -> dict[str, Any]:
        return {"metric": self.metric, "block_size": self.block_size, "gather_fraction": self.gather_fraction}

    # ------------------------------------------------------------------ building

    def build(self, vectors: np.ndarray, ids: np.ndarray, attributes: pd.DataFrame | None = None, *,
              sq_norms: np.ndarray | None = None) -> ExactEngine:
        """See :meth:`SearchEngine.build`; ``sq_norms`` as for :meth:`ExactScan.fit`."""
        vectors, ids = check_vectors(vectors, ids, attributes)
        scan = ExactScan(self.metric, tie_order=id_tie_order(ids), block_size=self.block_size,
                         gather_fraction=self.gather_fraction).fit(vectors, sq_norms=sq_norms)
        with self._lock:
            self._scan = scan
            self._ids = ids
            self._row_of = dict(zip(ids.tolist(), range(len(ids))))
            self._attributes = None if attributes is None else attributes.reset_index(drop=True)
            self._masks.clear()
        return self

    def add(self, vectors: np.ndarray, ids: np.ndarray, attributes: pd.DataFrame | None = None) -> ExactEngine:
        if self._scan is None:
            return self.build(vectors, ids, attributes)
        vectors, ids = check_vectors(vectors, ids, attributes, dim=self.dim)
        clash = [int(i) for i in ids if int(i) in self._row_of]
        if clash:
            raise ValueError(f"ids already in the engine: {clash[:5]}; expected new ids")
        if (attributes is None) != (self._attributes is None):
            raise ValueError("attributes must be given on add exactly when they were given on build")
        merged = None if attributes is None else pd.concat([self._attributes, attributes], ignore_index=True)
        return self.build(np.concatenate([self._scan._vectors, vectors]), np.concatenate([self._ids, ids]), merged)

    @property
    def ntotal(self) -> int:
        return 0 if self._scan is None else self._scan.ntotal

    @property
    def dim(self) -> int:
        return self._fitted().dim

    # ------------------------------------------------------------------ queries

    def search(self, queries, k, *, filter=None, exclude_ids=None) -> tuple[np.ndarray, np.ndarray]:
        scan = self._fitted()
        allowed = self._mask(filter)
        dist, rows = scan.search(queries, k, allowed=allowed, exclude=self._rows_of(exclude_ids))
        return dist, self._ids_at(rows)

    def range_search(self, queries, radius, *, filter=None, exclude_ids=None) -> RangeResult:
        scan = self._fitted()
        allowed = self._mask(filter)
        lims, dist, rows = scan.range_search(queries, radius, allowed=allowed, exclude=self._rows_of(exclude_ids))
        return RangeResult(lims, dist, self._ids[rows])

    # ------------------------------------------------------------------ internals

    def _fitted(self) -> ExactScan:
        if self._scan is None:
            raise RuntimeError("the exact engine is empty; call build(vectors, ids) first")
        return self._scan

    def _ids_at(self, rows: np.ndarray) -> np.ndarray:
        ids = self._ids[rows]  # row -1 (padding) picks the last id: reset below
        ids[rows < 0] = -1
        return ids

    def _rows_of(self, exclude_ids) -> list[list[int]] | None:
        """Rows of the excluded ids, per query (ids not in the engine are ignored)."""
        if exclude_ids is None:
            return None
        row_of = self._row_of
        return [[row_of[i] for i in map(int, ids) if i in row_of] for ids in exclude_ids]

    def _mask(self, where: Filter | Mapping[str, Any] | None) -> np.ndarray | None:
        """The read-only (N,) bool mask of a filter (None: no filter), cached."""
        flt = where if isinstance(where, Filter) else Filter.from_where(where)
        if flt is None:
            return None
        with self._lock:
            mask = self._masks.get(flt)
            if mask is not None:
                self._masks.move_to_end(flt)
                return mask
            attributes = self._attributes
        if attributes is None:
            raise FilterError(f"cannot filter by {flt.to_dict()}: this engine was built without attributes")
        mask = flt.mask(attributes)
        mask.flags.writeable = False
        with self._lock:
            self._masks[flt] = mask
            while len(self._masks) > self.MASK_CACHE_SIZE:
                self._masks.popitem(last=False)
        return mask
