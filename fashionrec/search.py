"""Stage 4 — nearest-neighbour search behind one small interface.

:class:`VectorIndex` is the contract every search engine follows, so that
approximate engines (FAISS HNSW / IVF-PQ, a Milvus server) can later be added
beside :class:`ExactIndex` without changing the callers::

    index = ExactIndex("euclidean").fit(vectors)            # (N, D) float32
    distances, rows = index.search(queries, k,              # (Q, D)
                                   allowed=mask,            # (N,) bool or None
                                   exclude=[[row_of_query]])  # per query or None

Results are sorted by ascending distance, ties broken by the lower tie rank
(the row position unless ``tie_order`` was given), and padded with row ``-1``
and distance ``inf`` when fewer than ``k`` candidates remain.

Distances
---------
``euclidean``
    the true L2 distance ``||q - x||`` (not squared), as in the original design.
``cosine``
    ``1 - cos(q, x)``; a zero vector has cosine similarity 0 to everything.

How :class:`ExactIndex` stays fast *and* exact
----------------------------------------------
A single query is one BLAS matrix-vector product over the stored vectors,
which is bound by memory bandwidth (the vectors are read once, in place — a
memory-mapped index is never copied). Candidates are chosen from the float32
scores with a *rigorous* rounding margin: every row whose approximate distance
lies within the worst-case float32 error of the k-th best is kept, then the
candidates are re-ranked with float64 distances computed directly from the
vectors. The result therefore equals a float64 brute-force ranking, ties
included. NumPy/BLAS was measured ~3x faster than ``faiss.IndexFlatL2`` for
single queries (see :class:`ExactIndex`); FAISS is left for the approximate
engines to come.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("euclidean", "cosine")

_U32 = float(np.finfo(np.float32).eps) / 2  # unit round-off of float32


@runtime_checkable
class VectorIndex(Protocol):
    """What every search engine offers.

    ``fit(vectors)`` takes (N, D) float32 vectors and returns the index itself.
    ``search(queries, k, allowed=None, exclude=None)`` takes (Q, D) queries and
    returns ``(distances, rows)``, both (Q, k), sorted ascending by distance,
    ties broken by lower row, padded with ``inf`` / ``-1``. ``allowed`` is an
    (N,) bool mask of rows that may be returned; ``exclude`` gives, per query,
    row positions that must not be returned (e.g. the query product itself).
    """

    metric: str

    def fit(self, vectors: np.ndarray) -> VectorIndex: ...

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        exclude: Sequence[Sequence[int]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...


class _Scored(NamedTuple):
    """The rows one search scores: all rows (``rows`` None) or a gathered subset."""

    rows: np.ndarray | None  # row positions of the scored subset, or None for all rows
    sq_norms32: np.ndarray  # float32 squared norms of the scored rows
    inv_norms32: np.ndarray  # float32 inverse norms of the scored rows (0 for zero vectors)
    masked_out: np.ndarray | None  # bool, scored rows the filter rejects (all-rows scans only)


class ExactIndex:
    """Exact (brute-force) search, float64-exact results, BLAS speed.

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

    Measured on 2 shared CPU cores (random float32, one query, k=10, p50;
    "gemv" is a bare BLAS ``X @ q``; "bound" is vector bytes / single-thread
    read bandwidth of a 1 GiB ``sum``, as in ``benchmarks/query.py``):

    * quiet machine, 44k x 1280: gemv 7-9 ms, ``faiss.IndexFlatL2`` 28 ms,
      ExactIndex 9.6 ms (44k x 2048: gemv 15 ms, FAISS 46 ms).
    * load average ~5 (other jobs), bound 45 ms / 2.8 ms:
      44k x 1280 — ExactIndex 26-28 ms, 10 % filter 9-10 ms, 50 % filter 29 ms
      (FAISS ``IDSelectorBatch`` 10 % filter: 1.5 ms);
      2.8k x 1280 — ExactIndex 0.7 ms, 10 % filter 0.5 ms, bare gemv 12 ms.
    * quiet machine, real Lite0 features, 2.8k x 1280, after reworking the
      per-query bookkeeping into few NumPy calls (:meth:`_rank`): gemv 0.29 ms,
      ExactIndex 0.43-0.50 ms (0.50-0.55 ms before).

    FAISS's flat index is slower unfiltered, wins only for selective filters
    (where both are far below the unfiltered cost) and would hold a second,
    in-memory copy of the vectors, so it is not used; its single-threaded
    ``fvec_inner_products_ny`` kernel scans small matrices in place (see
    :func:`_dot_one`).
    """

    def __init__(
        self,
        metric: str = "euclidean",
        *,
        tie_order: np.ndarray | None = None,
        block_size: int = 1024,
        gather_fraction: float = 0.25,
    ):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        self.metric = metric
        self.block_size = int(block_size)
        self.gather_fraction = float(gather_fraction)
        self._tie_order = None if tie_order is None else np.asarray(tie_order, dtype=np.int64)
        self._vectors: np.ndarray | None = None

    # ------------------------------------------------------------------ fit

    def fit(self, vectors: np.ndarray) -> ExactIndex:
        """Keep a reference to ``vectors`` (no copy when already float32, C order)."""
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be a 2-D (N, D) array, got shape {vectors.shape}")
        if vectors.dtype != np.float32 or not vectors.flags.c_contiguous:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, d = vectors.shape
        if self._tie_order is not None and self._tie_order.shape != (n,):
            raise ValueError(f"tie_order has shape {self._tie_order.shape}, expected ({n},)")
        self._vectors = vectors
        sq = np.empty(n, dtype=np.float64)
        for start in range(0, n, 4096):  # float64 squared norms without a full float64 copy
            chunk = vectors[start : start + 4096].astype(np.float64)
            sq[start : start + len(chunk)] = np.einsum("ij,ij->i", chunk, chunk)
        self._sq_norms = sq
        self._norms = np.sqrt(sq)
        self._max_norm = float(self._norms.max()) if n else 0.0
        with np.errstate(divide="ignore"):
            inv = np.where(self._norms > 0, 1.0 / self._norms, 0.0)
        self._inv_norms32 = inv.astype(np.float32)
        self._sq_norms32 = sq.astype(np.float32)
        # gamma_D: worst-case relative error of a float32 dot product of length D
        self._gamma = d * _U32 / (1 - d * _U32) if d * _U32 < 0.5 else 1.0
        log.debug("ExactIndex(%s) fitted on %d x %d vectors", self.metric, n, d)
        return self

    @property
    def ntotal(self) -> int:
        return 0 if self._vectors is None else len(self._vectors)

    @property
    def dim(self) -> int:
        if self._vectors is None:
            raise RuntimeError("ExactIndex is not fitted; call fit(vectors) first")
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
        """The ``k`` nearest rows of each query; see :class:`VectorIndex`.

        Returns float64 distances (Q, k) and int64 rows (Q, k).
        """
        if self._vectors is None:
            raise RuntimeError("ExactIndex is not fitted; call fit(vectors) first")
        X = self._vectors
        n, d = X.shape
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != d:
            raise ValueError(f"queries must have shape (Q, {d}), got {queries.shape}")
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        nq = len(queries)
        if exclude is not None and len(exclude) != nq:
            raise ValueError(f"exclude must give one list of rows per query ({nq}), got {len(exclude)}")

        # Which rows are scored: all of them, or a gathered subset.
        rows: np.ndarray | None = None  # None = all rows, in order
        mask: np.ndarray | None = None
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (n,):
                raise ValueError(f"allowed must be a bool mask of shape ({n},), got {allowed.shape}")
            n_allowed = int(allowed.sum())
            if n_allowed <= self.gather_fraction * n:
                rows = np.flatnonzero(allowed)
            else:
                mask = allowed

        out_d = np.full((nq, k), np.inf, dtype=np.float64)
        out_i = np.full((nq, k), -1, dtype=np.int64)
        if rows is not None and len(rows) == 0:
            return out_d, out_i
        if rows is not None:
            scored = _Scored(rows, self._sq_norms32[rows], self._inv_norms32[rows], None)
        else:
            scored = _Scored(None, self._sq_norms32, self._inv_norms32, None if mask is None else ~mask)

        for start in range(0, nq, self.block_size):
            qb = queries[start : start + self.block_size]
            if rows is not None:
                scores = self._gathered_scores(qb, rows)
            elif len(qb) == 1:
                scores = _dot_one(X, qb[0])[None, :]  # one pass over the vectors, in place
            else:
                scores = qb @ X.T  # BLAS gemm
            for j in range(len(qb)):
                qi = start + j
                dist, found = self._rank(qb[j], scores[j], k, scored, None if exclude is None else exclude[qi])
                out_d[qi, : len(found)] = dist
                out_i[qi, : len(found)] = found
        return out_d, out_i

    # ------------------------------------------------------------------ internals

    def _rank(
        self, q: np.ndarray, scores: np.ndarray, k: int, scored: _Scored, excl
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact top ``k`` of one query from its float32 dot products ``scores`` (overwritten).

        Returns float64 distances and row positions, sorted (ties by tie rank),
        at most ``k`` of them. Every step is one NumPy call over the scored rows:
        for a small index this bookkeeping, not the scan, would otherwise dominate.
        """
        q64 = q.astype(np.float64)
        q_norm = math.sqrt(float(q64 @ q64))
        g = self._gamma + 4 * _U32
        # ``approx`` ranks like the distance: |x|^2 - 2 q.x (= d^2 - |q|^2) for euclidean,
        # -q.x / |x| (= |q| (cos distance - 1)) for cosine. ``tol`` bounds the float32 error
        # between two rows' values: q.x is off by at most gamma_D |q||x|, the other
        # operations by a few ulps of (|q| + |x|)^2 (euclidean) or of |q| (cosine).
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
        if k <= len(approx):
            kth = np.float64(np.partition(approx, k - 1)[k - 1])
        else:
            kth = np.float64(np.inf)  # fewer rows than k: every finite one is a candidate
        cand = np.flatnonzero(approx <= kth + tol) if np.isfinite(kth) else np.flatnonzero(np.isfinite(approx))
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
        xc = self._vectors[cand_rows]  # float32; the arithmetic below promotes it to float64
        if self.metric == "euclidean":
            diff = np.subtract(xc, q64)
            diff *= diff
            return np.sqrt(diff.sum(axis=1))
        dots = np.multiply(xc, q64).sum(axis=1)
        denom = self._norms[cand_rows] * qn
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = np.where(denom > 0, dots / np.where(denom > 0, denom, 1.0), 0.0)
        return 1.0 - sim


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
    than one core; on a quiet 2-core machine 0.30 ms instead of 0.63 ms for
    2.8k x 1280). Smaller ones use FAISS's single-threaded SIMD
    ``fvec_inner_products_ny`` (reading the matrix in place, memory maps
    included), where waking threads costs more than it saves. On a busy machine
    a multi-threaded gemv can wait for descheduled threads (measured p50 12 ms
    instead of 0.6 ms for 2.8k x 1280 at load average 6): limit BLAS threads
    (``OMP_NUM_THREADS=1``) when serving many queries at once. Falls back to BLAS
    when FAISS is unavailable.
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
    """Rank of each row's id (0 = smallest), for ``ExactIndex(tie_order=...)``: ties resolve by id."""
    ids = pd.Series(ids).reset_index(drop=True)
    order = np.asarray(ids.argsort(kind="stable"), dtype=np.int64)
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[order] = np.arange(len(ids))
    return ranks
