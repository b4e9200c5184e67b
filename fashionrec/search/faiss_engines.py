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
    ``nprobe``, the lists visited per query. Vectors are removed and added in
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

    def _train(self, index: Any, sample: np.ndarray) -> None:
        index.train(sample)
        # The mean squared distance of training points to their list's centre: the yardstick of drift.
        distances, _ = index.quantizer.search(sample[: 20_000], 1)
        self.build_info["train_residual"] = float(np.mean(distances))

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
            distances, _ = self._index.quantizer.search(np.ascontiguousarray(added_reduced[:20_000]), 1)
            ratio = float(np.mean(distances)) / base
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
