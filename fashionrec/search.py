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
included. NumPy/BLAS was measured faster than ``faiss.IndexFlatL2`` for single
queries (see ``ExactIndex``); FAISS is kept for the approximate engines to come.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

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

    Measured on 2 CPU cores (random float32, single query, k=10, p50):
    44k x 1280 — NumPy 7 ms vs ``faiss.IndexFlatL2`` 28 ms; 44k x 2048 — 15 ms
    vs 46 ms. With a 10 % filter FAISS's ``IDSelector`` (1.3 ms) and a NumPy
    gather (2.7 ms) are both far below the unfiltered cost, so one NumPy
    implementation is kept.
    """

    def __init__(
        self,
        metric: str = "euclidean",
        *,
        tie_order: np.ndarray | None = None,
        block_size: int = 1024,
        gather_fraction: float = 0.3,
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
        sub = X if rows is None else X[rows]  # gather only the allowed rows
        sq32 = self._sq_norms32 if rows is None else self._sq_norms32[rows]
        inv32 = self._inv_norms32 if rows is None else self._inv_norms32[rows]

        for start in range(0, nq, self.block_size):
            qb = queries[start : start + self.block_size]
            if len(qb) == 1:
                scores = (sub @ qb[0])[None, :]  # BLAS gemv: one pass over the vectors
            else:
                scores = qb @ sub.T  # BLAS gemm
            approx, tol = self._approx(qb, scores, sq32, inv32)
            if mask is not None:
                approx[:, ~mask] = np.inf
            if exclude is not None:
                for j in range(len(qb)):
                    self._exclude(approx[j], exclude[start + j], rows, n)
            kth = self._kth(approx, k)
            for j in range(len(qb)):
                qi = start + j
                if np.isfinite(kth[j]):
                    cand = np.flatnonzero(approx[j] <= kth[j] + tol[j])
                else:
                    cand = np.flatnonzero(np.isfinite(approx[j]))
                if len(cand) == 0:
                    continue
                cand_rows = cand if rows is None else rows[cand]
                dist = self._exact(qb[j], cand_rows)
                tie = cand_rows if self._tie_order is None else self._tie_order[cand_rows]
                order = np.lexsort((tie, dist))[:k]
                out_d[qi, : len(order)] = dist[order]
                out_i[qi, : len(order)] = cand_rows[order]
        return out_d, out_i

    # ------------------------------------------------------------------ internals

    def _approx(self, qb: np.ndarray, scores: np.ndarray, sq32: np.ndarray, inv32: np.ndarray):
        """Approximate distances (float32, in place of ``scores``) and per-query error margins."""
        q64 = qb.astype(np.float64)
        q_norm = np.sqrt(np.einsum("ij,ij->i", q64, q64))
        g = self._gamma + 4 * _U32
        if self.metric == "euclidean":
            # d^2 ~ |x|^2 - 2 q.x + |q|^2, evaluated in float32. Error of q.x is at most
            # gamma_D |q||x|; the additions add a few ulps of (|q| + |x|)^2.
            scores *= -2.0
            scores += sq32[None, :]
            scores += (q_norm**2).astype(np.float32)[:, None]
            tol = 2 * (2 * g * q_norm * self._max_norm + 4 * _U32 * (q_norm + self._max_norm) ** 2)
        else:
            # 1 - q.x / (|q||x|): error of the cosine is at most ~gamma_D + a few ulps.
            with np.errstate(divide="ignore"):
                inv_q = np.where(q_norm > 0, 1.0 / q_norm, 0.0).astype(np.float32)
            scores *= inv32[None, :]
            scores *= inv_q[:, None]
            np.subtract(np.float32(1.0), scores, out=scores)
            tol = 2 * (g + 8 * _U32) * np.ones(len(qb))
        return scores, tol * 1.01 + 1e-30

    @staticmethod
    def _exclude(approx_row: np.ndarray, excl, rows: np.ndarray | None, n: int) -> None:
        """Set the approximate distance of excluded rows to inf (in place)."""
        excl = np.asarray(excl, dtype=np.int64).ravel()
        if not len(excl):
            return
        if rows is None:
            approx_row[excl[(excl >= 0) & (excl < n)]] = np.inf
            return
        pos = np.searchsorted(rows, excl)
        inside = pos < len(rows)
        pos, excl = pos[inside], excl[inside]
        approx_row[pos[rows[pos] == excl]] = np.inf

    @staticmethod
    def _kth(approx: np.ndarray, k: int) -> np.ndarray:
        """Per query, the k-th smallest approximate distance (inf when fewer than k rows)."""
        m = approx.shape[1]
        if k > m:
            return np.full(len(approx), np.inf)
        if len(approx) == 1:
            return np.partition(approx[0], k - 1)[k - 1 : k]
        return np.partition(approx, k - 1, axis=1)[:, k - 1]

    def _exact(self, q: np.ndarray, cand_rows: np.ndarray) -> np.ndarray:
        """float64 distances of ``q`` to rows ``cand_rows``."""
        xc = np.asarray(self._vectors[cand_rows], dtype=np.float64)
        q64 = q.astype(np.float64)
        if self.metric == "euclidean":
            diff = xc - q64
            return np.sqrt(np.einsum("ij,ij->i", diff, diff))
        qn = float(np.sqrt(q64 @ q64))
        xn = self._norms[cand_rows]
        dots = xc @ q64
        denom = xn * qn
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = np.where(denom > 0, dots / np.where(denom > 0, denom, 1.0), 0.0)
        return 1.0 - sim
