"""The FAISS engines of the registry: ``ivf`` (inverted lists) and ``hnsw`` (a graph).

Both are :class:`~fashionrec.search.approximate.ApproximateEngine` s: they find
candidates in a FAISS index over PCA-reduced vectors and re-rank them exactly.
Which to choose, with measurements, is in the README ("Search engines").
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .approximate import ApproximateEngine
from .faiss_setup import import_faiss

_ENCODINGS = ("sq8", "flat")


class IVFEngine(ApproximateEngine):
    """``ivf``: k-means coarse quantiser with ``nlist`` lists of scalar-quantised (8 bits) or flat codes.

    ``nlist`` None chooses a power of two near ``4 * sqrt(N)`` (at most N / 39,
    FAISS's least training points per list). The search-time parameter is
    ``nprobe``, the lists visited per query; under a filter, the query's
    nearest lists are visited until they hold :data:`FILTER_DEPTH` times as
    many of the filter's products as an unfiltered search scans (a category
    far from the query has its products in other lists than the query's
    neighbours). Vectors are removed and added in
    place on updates; see :meth:`needs_retraining` for when it is trained again.
    Other parameters: :class:`~fashionrec.search.approximate.ApproximateEngine`.
    """

    name = "ivf"
    search_param = "nprobe"
    search_values = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024, 2048, 4096)

    def __init__(self, metric: str = "euclidean", *, nlist: int | None = None, encoding: str = "sq8", **options: Any):
        if encoding not in _ENCODINGS:
            raise ValueError(f"encoding must be one of {_ENCODINGS}, got {encoding!r}")
        if nlist is not None and (isinstance(nlist, bool) or not isinstance(nlist, int) or nlist < 1):
            raise ValueError(f"nlist must be a whole number >= 1 or None, got {nlist!r}")
        super().__init__(metric, **options)
        self.nlist = nlist
        self.encoding = encoding
        self._centres: np.ndarray | None = None  # the list centres, (nlist, d), for NumPy's coarse assignment
        self._centre_norms: np.ndarray | None = None

    def _index_params(self) -> dict[str, Any]:
        return {"nlist": self.nlist, "encoding": self.encoding}

    @staticmethod
    def lists_for(n: int) -> int:
        """The default number of lists for ``n`` vectors."""
        if n < 78:
            return 1
        target = 4 * math.sqrt(n)
        return int(min(2 ** round(math.log2(target)), max(1, n // 39)))

    def _training_size(self, n: int) -> int:
        return max(self.train_size, 40 * (self.nlist or self.lists_for(n)))  # enough points per list to train

    def _new_index(self, d: int, n: int, n_train: int) -> Any:
        faiss = import_faiss()
        nlist = self.nlist or min(self.lists_for(n), max(1, n_train // 39))
        self.nlist = nlist
        quantizer = faiss.IndexFlatL2(d)
        if self.encoding == "flat":
            return faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_L2)
        return faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_L2)

    # The list centres are found with scikit-learn's k-means and the nearest lists of a vector with a NumPy
    # product, not with FAISS's own: those run on FAISS's bundled BLAS, measured many times slower than
    # NumPy's here (benchmarks/RESULTS.md). FAISS then stores and scans the lists.

    def _train(self, index: Any, sample: np.ndarray) -> None:
        from sklearn.cluster import KMeans

        kmeans = KMeans(self.nlist, init="random", n_init=1, max_iter=20, random_state=self.seed, algorithm="lloyd")
        centres = np.ascontiguousarray(kmeans.fit(sample).cluster_centers_, dtype=np.float32)
        index.quantizer.add(centres)
        self._set_centres(centres)
        # The codes' value ranges, learnt on residuals: a sample is plenty (FAISS assigns it with its own BLAS).
        index.train(np.ascontiguousarray(sample[:: max(1, len(sample) // 20_000)]))
        # The mean squared distance of training points to their list's centre: the yardstick of drift.
        self.build_info["train_residual"] = float(np.mean(self._nearest_lists(sample[:20_000], 1)[0]))

    def _set_centres(self, centres: np.ndarray) -> None:
        self._centres = np.ascontiguousarray(centres, dtype=np.float32)
        self._centre_norms = np.einsum("ij,ij->i", self._centres, self._centres)

    def _nearest_lists(self, x: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, nprobe) squared distances and numbers of the nearest lists of each of the (n, d) vectors, nearest first."""
        if self._centres is None:
            quantizer = self._index.quantizer
            self._set_centres(quantizer.reconstruct_n(0, quantizer.ntotal))
        x = np.ascontiguousarray(x, dtype=np.float32)
        nprobe = min(nprobe, len(self._centres))
        if len(x) < 20:  # a few queries: FAISS's SIMD scan (no BLAS below 20 queries) beats a NumPy product
            dist, lists = self._index.quantizer.search(x, nprobe)
            return np.ascontiguousarray(dist), np.ascontiguousarray(lists)
        dist = np.empty((len(x), nprobe), dtype=np.float32)
        lists = np.empty((len(x), nprobe), dtype=np.int64)
        for start in range(0, len(x), 8192):
            block = x[start : start + 8192]
            d = self._centre_norms - 2 * (block @ self._centres.T)  # + |x|^2, the same for every list
            part = np.argpartition(d, nprobe - 1, axis=1)[:, :nprobe] if nprobe < d.shape[1] else \
                np.broadcast_to(np.arange(d.shape[1]), d.shape).copy()
            part_d = np.take_along_axis(d, part, axis=1)
            order = np.argsort(part_d, axis=1)
            lists[start : start + len(block)] = np.take_along_axis(part, order, axis=1)
            dist[start : start + len(block)] = np.take_along_axis(part_d, order, axis=1) + \
                np.einsum("ij,ij->i", block, block)[:, None]
        return dist, lists

    def _add_reduced(self, index: Any, reduced: np.ndarray, ids: np.ndarray) -> None:
        faiss = import_faiss()
        lists = np.ascontiguousarray(self._nearest_lists(reduced, 1)[1][:, 0])
        reduced, ids = np.ascontiguousarray(reduced), np.ascontiguousarray(ids, dtype=np.int64)
        index.add_core(len(reduced), faiss.swig_ptr(reduced), faiss.swig_ptr(ids), faiss.swig_ptr(lists))

    def _candidates(self, reduced: np.ndarray, wanted: int, scale: float, selector: Any) -> np.ndarray:
        faiss = import_faiss()
        params = self._search_parameters(self._search_value(), scale, wanted, selector)
        counts = getattr(selector, "list_counts", None)
        if counts is not None:
            coarse, lists = self._lists_holding_eligible(reduced, counts)
        else:
            coarse, lists = self._nearest_lists(reduced, params.nprobe)
        params.nprobe = lists.shape[1]
        reduced = np.ascontiguousarray(reduced, dtype=np.float32)
        n = len(reduced)
        distances = np.empty((n, wanted), dtype=np.float32)
        found = np.empty((n, wanted), dtype=np.int64)
        # The C++ call: the Python wrapper of search_preassigned takes no search parameters (selector, nprobe).
        self._index.search_preassigned_c(n, faiss.swig_ptr(reduced), wanted, faiss.swig_ptr(lists),
                                         faiss.swig_ptr(coarse), faiss.swig_ptr(distances), faiss.swig_ptr(found),
                                         False, params)
        return found

    FILTER_DEPTH = 4
    """A filtered search visits lists until they hold this many times the vectors an unfiltered search scans."""

    def _lists_holding_eligible(self, reduced: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per query, its nearest lists until they hold as many of a filter's vectors as an unfiltered search scans.

        An unfiltered search scans the vectors of ``nprobe`` lists; visiting a
        fixed 1/fraction times more lists gives as many eligible vectors only
        when the filter's products are spread evenly. A filter of one category
        has its products in other lists than the query's neighbours (a shoe's
        nearest T-shirts lie far from it): so lists are taken in order of
        distance until the eligible vectors they hold (``counts``, per list)
        reach that number. Lists past a query's own are -1 (FAISS skips them).
        """
        value = self._search_value()
        total = int(counts.sum())
        target = min(total, self.FILTER_DEPTH * value * self._index.ntotal / max(1, len(counts)))
        dist, order = self._nearest_lists(reduced, len(counts))
        held = np.cumsum(counts[order], axis=1)
        spread = min(len(counts), math.ceil(value * self._index.ntotal / max(1, total)))  # 1/fraction more lists
        needed = np.maximum(spread, 1 + np.argmax(held >= target, axis=1))
        width = int(needed.max())
        lists = np.ascontiguousarray(order[:, :width])
        coarse = np.ascontiguousarray(dist[:, :width])
        beyond = np.arange(width)[None, :] >= needed[:, None]
        lists[beyond] = -1
        coarse[beyond] = np.inf
        return coarse, lists

    def _bitmap_selector(self, mask: np.ndarray) -> Any:
        """The selector of :meth:`ApproximateEngine._bitmap_selector`, with the filter's vectors counted per list."""
        faiss = import_faiss()
        selector = super()._bitmap_selector(mask)
        eligible = np.sort(self._exact._ids[mask])
        invlists = self._index.invlists
        counts = np.zeros(invlists.nlist, dtype=np.int64)
        for number in range(invlists.nlist):
            size = invlists.list_size(number)
            if size:
                ids = faiss.rev_swig_ptr(invlists.get_ids(number), size)
                counts[number] = np.count_nonzero(np.isin(ids, eligible, assume_unique=True))
        selector.list_counts = counts
        return selector

    def _search_parameters(self, value: int, scale: float, k: int, selector: Any) -> Any:
        faiss = import_faiss()
        nprobe = int(min(self.nlist, math.ceil(value * max(1.0, scale))))
        params = faiss.SearchParametersIVF(nprobe=nprobe)
        if selector is not None:
            params.sel = selector
        return params

    def _remove(self, ids: np.ndarray) -> None:
        faiss = import_faiss()
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids):
            self._index.remove_ids(faiss.IDSelectorBatch(len(ids), faiss.swig_ptr(ids)))

    def _update_blocker(self, n_now: int, added_reduced: np.ndarray, gone: np.ndarray) -> str | None:
        """Why the lists no longer fit the data, so the engine is trained again (None when they do).

        Retrained when the number of vectors has more than doubled or halved
        since training (``nlist`` chosen for another size), or when the vectors
        added lie on average more than 1.5 times farther (squared) from their
        nearest list centre than the training vectors did (the data drifted).
        """
        trained_for = int(self.build_info.get("vectors", n_now))
        if n_now > 2 * trained_for or 2 * n_now < trained_for:
            return f"{n_now} vectors, trained for {trained_for}"
        base = self.build_info.get("train_residual")
        if base and len(added_reduced):
            ratio = float(np.mean(self._nearest_lists(added_reduced[:20_000], 1)[0])) / base
            if ratio > 1.5:
                return f"new vectors {ratio:.2f} times farther from their lists than the training vectors"
        return None


class HNSWEngine(ApproximateEngine):
    """``hnsw``: a hierarchical navigable small-world graph (``M`` links per vector) over the reduced vectors.

    The search-time parameter is ``efSearch``, the candidate list kept while
    walking the graph. A graph cannot drop vectors: an update that removes or
    changes vectors rebuilds it; one that only adds inserts them.
    """

    name = "hnsw"
    search_param = "efSearch"
    search_values = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048)
    MAX_EF = 4096

    def __init__(self, metric: str = "euclidean", *, M: int = 32, ef_construction: int = 40, **options: Any):
        for name, value in (("M", M), ("ef_construction", ef_construction)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ValueError(f"{name} must be a whole number >= 2, got {value!r}")
        super().__init__(metric, **options)
        self.M = M
        self.ef_construction = ef_construction

    def _index_params(self) -> dict[str, Any]:
        return {"M": self.M, "ef_construction": self.ef_construction}

    def _new_index(self, d: int, n: int, n_train: int) -> Any:
        faiss = import_faiss()
        graph = faiss.IndexHNSWFlat(d, self.M)
        graph.hnsw.efConstruction = self.ef_construction
        return faiss.IndexIDMap2(graph)

    def _train(self, index: Any, sample: np.ndarray) -> None:
        pass  # a graph needs no training; the projection is fitted by the base class

    def _search_parameters(self, value: int, scale: float, k: int, selector: Any) -> Any:
        faiss = import_faiss()
        ef = int(min(self.MAX_EF, max(k, math.ceil(value * max(1.0, scale)))))
        params = faiss.SearchParametersHNSW(efSearch=ef)
        if selector is not None:
            params.sel = selector
        return params
