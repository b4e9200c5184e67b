"""Approximate engines: candidates from a FAISS index, answers from the exact vectors.

An :class:`ApproximateEngine` finds *candidates* in a compact FAISS index built
over a reduced copy of the vectors (a PCA projection to ``reduced_dim``
dimensions, fitted on a sample of the catalog), then re-ranks them with the
index folder's own float32 vectors (:meth:`ExactScan.rerank`, the arithmetic
of the exact engine). So:

* every distance returned is exactly the one the exact engine gives for that
  product, and ties resolve by id; an approximate engine can *miss* a
  neighbour, never misstate one;
* the recall it reaches is measured when it is built: on ``tune_queries``
  catalog vectors held out from training, against exact search (query product
  excluded), for increasing values of the search-time parameter (``nprobe`` or
  ``efSearch``); the smallest value whose recall reaches ``target_recall`` with
  95 % confidence (the one-sided lower bound over the held-out queries) is
  kept, and the whole curve with its latencies is stored (:attr:`ApproximateEngine.tuning`);
* a filter that leaves at most ``exact_below`` products is answered by the exact
  engine over those products (faster there, and exact); the cut-over is
  measured at build time unless given. Larger filters search the FAISS index
  through an ID selector, widening the search in proportion to the fraction of
  products they keep, so that about as many eligible candidates are seen as
  without a filter (``ivf`` goes further: it picks its lists by how many of
  the filter's products they hold, see :class:`~.faiss_engines.IVFEngine`);
* the query product (``exclude_ids``) is excluded by id.

Subclasses (:mod:`.faiss_engines`) say how their FAISS index is made, trained,
searched and saved. The vectors themselves stay in the index folder (memory-
mapped); the engine's folder holds the FAISS index, the projection, the
fingerprint of each vector (to tell what changed on an update) and
``engine.json`` with the parameters, build time and measured recall.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import zlib
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..catalog.filters import Filter
from ..errors import IndexFolderError
from ..output import atomic_folder, atomic_write
from ..validation import check_k
from .base import ENGINE_FILE, RangeResult, SearchEngine, check_vectors, range_by_growing_k, read_description
from .exact import ExactEngine
from .faiss_setup import import_faiss, kernel_report

log = logging.getLogger(__name__)

RECALL_K = 10
"""Recall is measured at this k: the share of the true 10 nearest products an engine returns."""

FAISS_FILE = "faiss.index"
PROJECTION_FILE = "projection.npz"
FINGERPRINTS_FILE = "fingerprints.npz"
NORMS_FILE = "norms.npy"
"""Squared norms of the vectors: opening the engine then reads no vector it does not need."""


def vector_ids_checksum(ids: np.ndarray) -> int:
    """CRC-32 of an (N,) int64 id array, in order: which vectors an engine was built over."""
    return zlib.crc32(np.ascontiguousarray(ids, dtype=np.int64).tobytes())


def fingerprints(vectors: np.ndarray, block: int = 4096) -> np.ndarray:
    """(N,) uint64 fingerprint of each row's bytes: equal rows, equal fingerprints; a changed row, almost surely not.

    Integer arithmetic (a fixed random linear form modulo 2^64 over the float32
    bit patterns), so the result does not depend on BLAS, threads or position.
    """
    n, d = vectors.shape
    weights = np.random.default_rng(20261129).integers(1, 2**63, size=d, dtype=np.uint64) | np.uint64(1)
    out = np.empty(n, dtype=np.uint64)
    for start in range(0, n, block):
        bits = np.ascontiguousarray(vectors[start : start + block], dtype=np.float32).view(np.uint32).astype(np.uint64)
        out[start : start + len(bits)] = (bits * weights).sum(axis=1)  # wraps modulo 2^64
    return out


class Projection:
    """Centring and PCA projection of (N, D) vectors to ``d`` dimensions, fitted on a sample (NumPy only).

    For the cosine metric rows are L2-normalised first, so that Euclidean
    distance between projected vectors ranks like cosine distance.
    """

    def __init__(self, mean: np.ndarray, components: np.ndarray, normalise: bool):
        self.mean = np.asarray(mean, dtype=np.float32)  # (D,)
        self.components = np.ascontiguousarray(components, dtype=np.float32)  # (D, d)
        self.normalise = bool(normalise)

    @property
    def dim(self) -> int:
        return self.components.shape[1]

    @classmethod
    def fit(cls, sample: np.ndarray, d: int, normalise: bool) -> Projection:
        x = _normalised(sample) if normalise else np.asarray(sample, dtype=np.float32)
        mean = x.mean(axis=0, dtype=np.float64)
        centred = (x - mean).astype(np.float64)
        cov = centred.T @ centred / max(1, len(x) - 1)
        values, vectors = np.linalg.eigh(cov)  # ascending
        order = np.argsort(values)[::-1][: min(d, x.shape[1])]
        return cls(mean, vectors[:, order], normalise)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(n, D) float32 → (n, d) float32, C order."""
        x = np.asarray(x, dtype=np.float32)
        if self.normalise:
            x = _normalised(x)
        return np.ascontiguousarray((x - self.mean) @ self.components, dtype=np.float32)

    def save(self, path: Path) -> None:
        atomic_write(path, lambda f: np.savez(f, mean=self.mean, components=self.components,
                                               normalise=np.array(self.normalise)))

    @classmethod
    def load(cls, path: Path) -> Projection:
        with np.load(path, allow_pickle=False) as data:
            return cls(data["mean"], data["components"], bool(data["normalise"]))


class FileRows:
    """Reads rows of a memory-mapped (N, D) float32 array from its file with ``pread``, not through the map.

    Each page touched through a memory map brings its neighbours into the
    process's resident memory too (the kernel maps cached pages around a
    fault: 64 KiB for a 5 KiB row), so re-ranking a hundred random rows per
    query would grow the query process by gigabytes over a million-vector
    index. Reading them with ``pread`` copies only the rows; the page cache
    serves them just as fast. ``FileRows.of(array)`` is None for an array in memory.
    """

    def __init__(self, path: str, offset: int, shape: tuple[int, int]):
        self.path, self.offset, self.shape = path, int(offset), shape
        self.row_bytes = shape[1] * 4
        self._fd = os.open(path, os.O_RDONLY)

    @classmethod
    def of(cls, array: np.ndarray) -> FileRows | None:
        if not isinstance(array, np.memmap) or array.filename is None or array.dtype != np.float32:
            return None
        if array.ndim != 2 or not array.flags.c_contiguous:
            return None
        try:  # the whole array of a file (as numpy.load maps an .npy): its rows are where the offset says
            whole = array.offset + array.nbytes == os.path.getsize(array.filename)
        except OSError:
            return None
        return cls(array.filename, array.offset, array.shape) if whole else None

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        view = memoryview(out).cast("B")
        size = self.row_bytes
        for i, row in enumerate(np.asarray(rows).tolist()):
            os.preadv(self._fd, [view[i * size : (i + 1) * size]], self.offset + row * size)
        return out

    def __del__(self):
        fd = getattr(self, "_fd", None)
        if fd is not None:
            os.close(fd)


def _normalised(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


class ApproximateEngine(SearchEngine):
    """Base of the FAISS engines (see the module docstring).

    Parameters
    ----------
    metric:
        ``"euclidean"`` or ``"cosine"``.
    reduced_dim:
        Dimensions the FAISS index works in (PCA of the vectors); at most D.
    rerank:
        Candidates fetched per result wanted (``rerank * k``, at least
        ``min_candidates``), re-ranked with the exact vectors.
    min_candidates:
        Fewest candidates fetched per query.
    target_recall:
        Recall@10 the tuning aims for (0 < target <= 1).
    search_value:
        The search-time parameter (``nprobe`` / ``efSearch``); None: tuned when built.
    exact_below:
        Filters keeping at most this many products are answered exactly; None:
        measured when built.
    train_size:
        Vectors sampled to fit the projection and train the index.
    tune_queries:
        Catalog vectors held out from training, used to measure recall.
    seed:
        Seed of the samples.
    """

    search_param: ClassVar[str] = ""
    search_values: ClassVar[tuple[int, ...]] = ()
    """Values of :attr:`search_param` the tuning tries, in increasing order of effort."""
    exact_answers = False
    needs_build = True
    MASK_SELECTORS = 16
    FULL_SCAN_SHARE = 0.25
    """When the candidates to fetch are at least this share of the eligible products, scanning them all
    costs about as much: the exact engine answers (k near N, small indexes)."""

    def __init__(
        self,
        metric: str = "euclidean",
        *,
        reduced_dim: int = 256,
        rerank: int = 4,
        min_candidates: int = 40,
        target_recall: float = 0.95,
        search_value: int | None = None,
        exact_below: int | None = None,
        train_size: int = 100_000,
        tune_queries: int = 500,
        seed: int = 0,
    ):
        super().__init__(metric)
        if not (0 < float(target_recall) <= 1):
            raise ValueError(f"target_recall must be in (0, 1], got {target_recall!r}")
        for name, value in (("reduced_dim", reduced_dim), ("rerank", rerank), ("min_candidates", min_candidates),
                            ("train_size", train_size), ("tune_queries", tune_queries)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        self.reduced_dim = reduced_dim
        self.rerank = rerank
        self.min_candidates = min_candidates
        self.target_recall = float(target_recall)
        self.search_value = search_value
        self.exact_below = exact_below
        self.train_size = train_size
        self.tune_queries = tune_queries
        self.seed = seed
        self.tuning: dict[str, Any] = {}
        self.build_info: dict[str, Any] = {}
        self.description: dict[str, Any] | None = None  # engine.json as read, for an engine opened from its folder
        self.index_generation: str | None = None  # the index folder generation the engine was built or updated for
        self._value: int | None = search_value  # the search value in use (tuned when search_value is None)
        self._cutover: int = exact_below or 0  # filters keeping at most this many products are scanned exactly
        self._exact: ExactEngine | None = None
        self._id_order: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))
        self._projection: Projection | None = None
        self._index: Any = None
        self._fingerprints: np.ndarray | None = None
        self._old: tuple[np.ndarray, np.ndarray] | None = None  # (ids, fingerprints) saved, for update()
        self._selectors: OrderedDict[Filter, Any] = OrderedDict()
        self._lock = threading.Lock()

    def params(self) -> dict[str, Any]:
        return {
            "metric": self.metric, "reduced_dim": self.reduced_dim, "rerank": self.rerank,
            "min_candidates": self.min_candidates, "target_recall": self.target_recall,
            "search_value": self.search_value, "exact_below": self.exact_below, "train_size": self.train_size,
            "tune_queries": self.tune_queries, "seed": self.seed, **self._index_params(),
        }

    # ------------------------------------------------------------------ what subclasses provide

    @abstractmethod
    def _index_params(self) -> dict[str, Any]:
        """The subclass's own constructor arguments."""

    @abstractmethod
    def _new_index(self, d: int, n: int, n_train: int) -> Any:
        """An empty FAISS index for ``n`` vectors of ``d`` dimensions (ids given on add), trained on ``n_train``."""

    def _training_size(self, n: int) -> int:
        """How many of ``n`` vectors to train on (the projection and the index)."""
        return self.train_size

    @abstractmethod
    def _train(self, index: Any, sample: np.ndarray) -> None:
        """Train ``index`` on the (m, d) reduced ``sample`` (nothing to do for a graph)."""

    @abstractmethod
    def _search_parameters(self, value: int, scale: float, k: int, selector: Any) -> Any:
        """FAISS search parameters for search value ``value``, widened ``scale`` times for a filter."""

    def _add_reduced(self, index: Any, reduced: np.ndarray, ids: np.ndarray) -> None:
        index.add_with_ids(reduced, ids)

    def _candidates(self, reduced: np.ndarray, wanted: int, scale: float, selector: Any) -> np.ndarray:
        """(Q, wanted) int64 ids of candidates (-1 where fewer) for the (Q, d) reduced queries."""
        params = self._search_parameters(self._search_value(), scale, wanted, selector)
        return self._index.search(reduced, wanted, params=params)[1]

    # ------------------------------------------------------------------ building

    def build(self, vectors, ids, attributes=None) -> ApproximateEngine:
        """Fit the projection, train and fill the FAISS index, measure recall and tune (see the module)."""
        started = time.perf_counter()
        vectors, ids = check_vectors(vectors, ids, attributes)
        n = len(vectors)
        exact = ExactEngine(self.metric).build(vectors, ids, attributes)
        order = np.random.default_rng(self.seed).permutation(n)
        held_out = np.sort(order[: self._tune_count(n)])
        train_rows = np.sort(order[len(held_out) :][: self._training_size(n)])
        projection = Projection.fit(vectors[train_rows] if len(train_rows) else vectors, self.reduced_dim,
                                    normalise=self.metric == "cosine")
        index = self._new_index(projection.dim, n, max(1, len(train_rows)))
        trained = time.perf_counter()
        self._train(index, projection(vectors[train_rows]) if len(train_rows) else projection(vectors))
        train_seconds = time.perf_counter() - trained
        for start in range(0, n, 65536):  # projected a block at a time: no reduced copy of everything at once
            block = slice(start, start + 65536)
            self._add_reduced(index, projection(vectors[block]), ids[block])
        with self._lock:
            self._projection, self._index = projection, index
            self._set_exact(exact)
            self._fingerprints = fingerprints(vectors)
            self._selectors.clear()
        self.build_info = {
            "vectors": n, "dim": int(vectors.shape[1]), "reduced_dim": projection.dim,
            "trained_on": int(len(train_rows)), "train_seconds": round(train_seconds, 3), "kernels": kernel_report(),
        }
        self._tune(vectors, ids, held_out)
        self.build_info["seconds"] = round(time.perf_counter() - started, 3)
        log.info("%s engine: %d vectors, %s=%s, recall@%d %.3f, built in %.1f s", self.name, n, self.search_param,
                 self._value, RECALL_K, self.tuning.get("recall", float("nan")), self.build_info["seconds"])
        return self

    def add(self, vectors, ids, attributes=None) -> ApproximateEngine:
        """Add vectors under new ids (projected with the fitted projection; no retraining)."""
        exact = self._fitted()
        vectors, ids = check_vectors(vectors, ids, attributes, dim=self.dim)
        merged = exact.add(vectors, ids, attributes)  # raises on ids already present
        with self._lock:
            self._add_reduced(self._index, self._projection(vectors), ids)
            self._fingerprints = np.concatenate([self._fingerprints, fingerprints(vectors)])
            self._set_exact(merged)
            self._selectors.clear()
        return self

    @property
    def ntotal(self) -> int:
        return 0 if self._exact is None else self._exact.ntotal

    @property
    def dim(self) -> int:
        return self._fitted().dim

    # ------------------------------------------------------------------ queries

    def search(self, queries, k, *, filter=None, exclude_ids=None):
        exact = self._fitted()
        k = check_k(k)
        queries = _as_queries(queries, self.dim)
        n = self.ntotal
        k = min(k, n)
        mask = exact._mask(filter)
        eligible = n if mask is None else int(np.count_nonzero(mask))
        extra = max((len(e) for e in exclude_ids), default=0) if exclude_ids is not None else 0
        wanted = min(n, max(self.min_candidates, self.rerank * k) + extra)
        if (mask is not None and eligible <= self._exact_below()) or wanted >= self.FULL_SCAN_SHARE * eligible:
            return exact.search(queries, k, filter=filter, exclude_ids=exclude_ids)
        out_d = np.full((len(queries), k), np.inf, dtype=np.float64)
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        if k == 0:
            return out_d, out_i
        selector = self._selector(filter, mask) if mask is not None else None
        found = self._candidates(self._projection(queries), wanted, n / eligible, selector)
        scan = exact._scan
        sorted_ids, sorted_rows = self._id_order
        for qi in range(len(queries)):
            candidates = found[qi][found[qi] >= 0]
            if exclude_ids is not None and len(exclude_ids[qi]):
                candidates = candidates[~np.isin(candidates, np.asarray(exclude_ids[qi], dtype=np.int64))]
            if len(candidates):
                rows = sorted_rows[np.searchsorted(sorted_ids, candidates)]  # FAISS returns ids: back to rows
                dist, best = scan.rerank(queries[qi], rows, k)
                out_d[qi, : len(best)] = dist
                out_i[qi, : len(best)] = exact._ids[best]
        return out_d, out_i

    def range_search(self, queries, radius, *, filter=None, exclude_ids=None) -> RangeResult:
        """Everything within ``radius`` that the engine finds: k-nearest searches with k doubled while
        every result found lies within the radius (approximate: may miss some, like :meth:`search`)."""
        return range_by_growing_k(self, _as_queries(queries, self._fitted().dim), radius, filter=filter,
                                  exclude_ids=exclude_ids)

    # ------------------------------------------------------------------ tuning

    def _tune(self, vectors: np.ndarray, ids: np.ndarray, held_out: np.ndarray) -> None:
        """Measure recall@10 and latency on the held-out vectors for each search value; keep the smallest
        value reaching the target (or the given one), and the exact cut-over for filters."""
        if len(held_out) == 0:
            self.tuning = {"queries": 0, "value": self._search_value(), "exact_below": self._cutover}
            return
        queries = np.ascontiguousarray(vectors[held_out])
        own = [[int(i)] for i in ids[held_out]]
        k = min(RECALL_K, self.ntotal - 1) or 1
        _, truth = self._exact.search(queries, k, exclude_ids=own)
        curve = []
        for value in ([self.search_value] if self.search_value is not None else self.search_values):
            self._value = value
            found = self.search(queries, k, exclude_ids=own)[1]
            per_query = np.array([len(set(t[t >= 0]) & set(f)) / max(1, int((t >= 0).sum()))
                                  for t, f in zip(truth, found)])
            recall = float(per_query.mean())
            # One-sided 95 % lower bound of the recall over all queries, not only these held-out ones:
            # a value that reaches the target on the sample by chance is not kept.
            low = recall - 1.645 * float(per_query.std(ddof=1)) / math.sqrt(len(per_query)) if len(per_query) > 1 \
                else recall
            p50, p99 = self._latency(queries[:100], k, own[:100])
            curve.append({self.search_param: value, "recall": round(recall, 4), "recall_low": round(low, 4),
                          "p50_ms": p50, "p99_ms": p99})
            if low >= self.target_recall:
                break
        chosen = curve[-1]
        self._value = chosen[self.search_param]
        self.tuning = {
            "k": k, "queries": int(len(held_out)), "target_recall": self.target_recall, "param": self.search_param,
            "value": self._value, "recall": chosen["recall"], "recall_low": chosen["recall_low"],
            "p50_ms": chosen["p50_ms"], "p99_ms": chosen["p99_ms"],
            "reached": chosen["recall_low"] >= self.target_recall, "curve": curve,
        }
        self._cutover = self.exact_below if self.exact_below is not None else self._measure_cutover(queries[:20], k)
        self.tuning["exact_below"] = self._cutover

    def _tune_count(self, n: int) -> int:
        """Held-out queries for ``n`` vectors: ``tune_queries``, at most a tenth of them (none for one vector)."""
        return min(self.tune_queries, max(1, n // 10)) if n > 1 else 0

    def _latency(self, queries: np.ndarray, k: int, own) -> tuple[float, float]:
        times = []
        for qi in range(len(queries)):
            started = time.perf_counter()
            self.search(queries[qi], k, exclude_ids=[own[qi]])
            times.append((time.perf_counter() - started) * 1000)
        return round(float(np.percentile(times, 50)), 3), round(float(np.percentile(times, 99)), 3)

    def _measure_cutover(self, queries: np.ndarray, k: int) -> int:
        """The largest filter size (products kept) at which the exact scan of those products is still faster
        than this engine's filtered search: timed on random filters of growing size."""
        n = self.ntotal
        rng = np.random.default_rng(self.seed + 1)
        cutover = 0
        size = 256
        while size < n:
            rows = np.sort(rng.choice(n, size=size, replace=False))
            allowed = np.zeros(n, dtype=bool)
            allowed[rows] = True
            exact_ms = _timed(lambda q: self._exact._scan.search(q, k, allowed=allowed), queries)
            selector = self._bitmap_selector(allowed)
            wanted = max(self.min_candidates, self.rerank * k)
            approx_ms = _timed(lambda q: self._candidates(q, wanted, n / size, selector), self._projection(queries))
            if exact_ms > approx_ms:
                break
            cutover = size
            size *= 2
        return cutover

    # ------------------------------------------------------------------ persistence

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the engine into ``folder`` as a whole (the previous content is replaced in one rename)."""
        self._fitted()
        faiss = import_faiss()
        data = faiss.serialize_index(self._index)
        description = {
            "engine": self.name, "params": self.params(), "build": self.build_info, "tuning": self.tuning,
            "vectors": {"count": self.ntotal, "ids_crc32": vector_ids_checksum(self._exact._ids),
                        "index_generation": self.index_generation},
            "saved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

        def fill(new: Path) -> None:
            atomic_write(new / FAISS_FILE, lambda f: f.write(memoryview(data)))
            self._projection.save(new / PROJECTION_FILE)
            atomic_write(new / FINGERPRINTS_FILE,
                         lambda f: np.savez(f, ids=self._exact._ids, fingerprints=self._fingerprints))
            atomic_write(new / NORMS_FILE, lambda f: np.save(f, self._exact._scan._sq_norms))
            text = json.dumps(description, indent=2) + "\n"
            atomic_write(new / ENGINE_FILE, lambda f: f.write(text.encode()))

        return atomic_folder(folder, fill)

    @classmethod
    def load(cls, folder, vectors, ids, attributes=None) -> ApproximateEngine:
        """Open a saved engine over the index's vectors; IndexFolderError when it was built over other vectors."""
        folder = Path(folder)
        reader = FileRows.of(vectors)  # before check_vectors, which gives a plain view of a memory map
        vectors, ids = check_vectors(vectors, ids, attributes)
        engine, saved_ids, prints, sq_norms = cls._read_saved(folder)
        recorded = (engine.description or {}).get("vectors") or {}
        if recorded.get("count") != len(ids) or recorded.get("ids_crc32") != vector_ids_checksum(ids):
            index_dir = folder.parents[2] if folder.parent.parent.name == "engines" else "INDEX_DIR"
            raise IndexFolderError(
                f"the {cls.name} engine in {folder} was built over other vectors ({recorded.get('count')} of them) "
                f"than the index holds now ({len(ids)}); update it with `fashionrec engine {index_dir} {cls.name}`"
            )
        if sq_norms.shape != (len(ids),) or len(prints) != len(ids):
            raise IndexFolderError(f"the {cls.name} engine in {folder} is damaged: its files do not match its "
                                   f"{len(ids)} vectors; rebuild it with `fashionrec engine INDEX_DIR {cls.name} --rebuild`")
        exact = ExactEngine(engine.metric).build(vectors, ids, attributes, sq_norms=sq_norms)
        exact._scan.row_reader = reader
        engine._set_exact(exact)
        engine._fingerprints = prints
        return engine

    @classmethod
    def _read_saved(cls, folder: Path) -> tuple[ApproximateEngine, np.ndarray, np.ndarray, np.ndarray]:
        """A saved engine with its FAISS index, projection and measured state, without vectors; and its saved
        ids, fingerprints and squared norms. IndexFolderError when a file is missing or unreadable."""
        description = read_description(folder, expected=cls.name)
        engine = cls(**description["params"])
        faiss = import_faiss()
        try:
            engine._index = faiss.read_index(str(folder / FAISS_FILE))
            engine._projection = Projection.load(folder / PROJECTION_FILE)
            with np.load(folder / FINGERPRINTS_FILE, allow_pickle=False) as data:
                ids, prints = np.asarray(data["ids"]), np.asarray(data["fingerprints"])
            sq_norms = np.load(folder / NORMS_FILE, allow_pickle=False)
        except (OSError, RuntimeError, ValueError, KeyError) as exc:
            raise IndexFolderError(f"cannot read the {cls.name} engine in {folder}: {exc}") from None
        engine._restore(description)
        return engine, ids, prints, sq_norms

    def _restore(self, description: Mapping[str, Any]) -> None:
        """Take the measured state (tuning, build record, generation) from a saved ``engine.json``."""
        self.description = dict(description)
        self.tuning = dict(description.get("tuning") or {})
        self.build_info = dict(description.get("build") or {})
        self.index_generation = (description.get("vectors") or {}).get("index_generation")
        if self.search_value is None and isinstance(self.tuning.get("value"), int):
            self._value = self.tuning["value"]
        if self.exact_below is None and isinstance(self.tuning.get("exact_below"), int):
            self._cutover = self.tuning["exact_below"]

    # ------------------------------------------------------------------ updates

    @classmethod
    def open_for_update(cls, folder: str | os.PathLike) -> ApproximateEngine:
        """A saved engine without its vectors, to :meth:`update` it to the index's vectors of now."""
        engine, ids, prints, _ = cls._read_saved(Path(folder))
        engine._old = (ids, prints)
        return engine

    def update(self, vectors, ids, attributes=None) -> str:
        """Bring an engine opened with :meth:`open_for_update` to ``vectors``/``ids``; returns what was done.

        Vectors new or changed since the engine was saved are added, those
        gone (or changed) removed — where the FAISS index allows it and its
        training still fits (:meth:`_update_blocker`); otherwise it is built
        again. Recall is measured again either way.
        """
        vectors, ids = check_vectors(vectors, ids, attributes)
        old_ids, old_prints = self._old
        prints = fingerprints(vectors)
        before = dict(zip(old_ids.tolist(), old_prints.tolist()))
        fresh = np.array([row for row, (vid, fp) in enumerate(zip(ids.tolist(), prints.tolist()))
                          if before.get(vid) != fp], dtype=np.int64)
        changed = {int(v) for v in ids[fresh]}
        now = set(ids.tolist())
        gone = np.array([vid for vid in old_ids.tolist() if vid not in now or vid in changed], dtype=np.int64)
        if not len(fresh) and not len(gone):
            action = "unchanged"
        else:
            reason = self._update_blocker(len(ids), self._projection(vectors[fresh]), gone)
            if reason is not None:
                self.build(vectors, ids, attributes)
                return f"rebuilt ({reason})"
            self._remove(gone)
            for start in range(0, len(fresh), 65536):
                rows = fresh[start : start + 65536]
                self._add_reduced(self._index, self._projection(vectors[rows]), ids[rows])
            action = f"updated (+{len(fresh)} added, -{len(gone)} removed)"
        with self._lock:
            self._set_exact(ExactEngine(self.metric).build(vectors, ids, attributes))
            self._fingerprints = prints
            self._selectors.clear()
        held_out = np.sort(np.random.default_rng(self.seed).permutation(len(ids))[: self._tune_count(len(ids))])
        self.build_info["vectors_now"] = int(len(ids))
        self._tune(vectors, ids, held_out)
        return action

    def _update_blocker(self, n_now: int, added_reduced: np.ndarray, gone: np.ndarray) -> str | None:
        """Why the engine must be built again rather than updated in place (None: it can be updated)."""
        return "this index cannot remove vectors" if len(gone) else None

    def _remove(self, ids: np.ndarray) -> None:
        if len(ids):
            raise NotImplementedError(f"the {self.name} engine cannot remove vectors")

    # ------------------------------------------------------------------ internals

    def _set_exact(self, exact: ExactEngine) -> None:
        """Take ``exact`` as the engine's exact side, with the sorted ids that map FAISS's ids back to rows."""
        order = np.argsort(exact._ids, kind="stable")
        self._id_order = (exact._ids[order], order.astype(np.int64))
        self._exact = exact

    def _fitted(self) -> ExactEngine:
        if self._exact is None:
            raise RuntimeError(f"the {self.name} engine is empty; call build(vectors, ids) first")
        return self._exact

    def _search_value(self) -> int:
        return int(self._value if self._value is not None else self.search_values[-1])

    def _exact_below(self) -> int:
        return self._cutover

    def _selector(self, flt, mask: np.ndarray) -> Any:
        """The FAISS ID selector of a filter's products, cached per filter."""
        key = flt if isinstance(flt, Filter) else Filter.from_where(flt)
        with self._lock:
            selector = self._selectors.get(key)
            if selector is not None:
                self._selectors.move_to_end(key)
                return selector
        selector = self._bitmap_selector(mask)
        with self._lock:
            self._selectors[key] = selector
            while len(self._selectors) > self.MASK_SELECTORS:
                self._selectors.popitem(last=False)
        return selector

    def _bitmap_selector(self, mask: np.ndarray) -> Any:
        """An ID selector accepting the ids of the rows ``mask`` allows: a bitmap over ids when they are small
        enough (as product ids are), else a hash set."""
        faiss = import_faiss()
        ids = self._exact._ids[mask]
        top = int(self._exact._ids.max()) + 1 if self.ntotal else 1
        if top <= 64 * self.ntotal + (1 << 20):
            bits = np.zeros(top, dtype=bool)
            bits[ids] = True
            packed = np.packbits(bits, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(packed), faiss.swig_ptr(packed))
            selector.keep_alive = packed  # the selector reads this buffer: keep it alive with it
            return selector
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        selector = faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids))
        selector.keep_alive = ids
        return selector


def _as_queries(queries: Any, d: int) -> np.ndarray:
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim == 1:
        queries = queries[None, :]
    if queries.ndim != 2 or queries.shape[1] != d:
        raise ValueError(f"queries must have shape (Q, {d}), got {queries.shape}")
    return np.ascontiguousarray(queries)


def _timed(run, queries: np.ndarray) -> float:
    """Median milliseconds of ``run(query[None])`` over the queries."""
    times = []
    for q in queries:
        started = time.perf_counter()
        run(q[None, :])
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000
