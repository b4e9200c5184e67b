"""The contract every search engine follows.

A search engine holds N feature vectors, each under an int64 *id* (the product
id; see :attr:`fashionrec.index.IndexFolder.vector_ids`), and answers nearest
neighbour queries over them::

    engine = create_engine("exact", metric="euclidean")
    engine.build(vectors, ids, attributes)          # (N, D) float32, (N,) int64, N rows or None
    distances, found = engine.search(queries, k,    # (Q, D) -> two (Q, min(k, N)) arrays
                                     filter=Filter.from_where({"gender": "Women"}),
                                     exclude_ids=[[59051]])     # per query, or None
    lims, dist, ids = engine.range_search(queries, radius)      # everything within ``radius``

Results of :meth:`SearchEngine.search` have ``min(k, N)`` columns: ``k`` is
capped to the number of vectors held *before* anything of size ``k`` is
allocated, so any ``k`` a caller passes (the CLI has no upper bound) costs at
most what ``k = N`` costs. They are sorted by ascending distance, ties broken
by the lower id, and padded with distance ``inf`` and id ``-1`` only when the
filter and exclusions leave fewer than ``min(k, N)`` vectors eligible. Distances are float64 and exact for the
metric (:data:`fashionrec.validation.METRICS`): approximate engines may miss
neighbours, never misstate a distance.

``filter`` is a :class:`~fashionrec.catalog.filters.Filter` over the
attributes given at build time; ``exclude_ids`` lists, per query, ids that must
not be returned (the query product itself): exclusion is by id, never by
position, so it means the same thing to an engine that stores vectors elsewhere.

Engines keep their own files in the index folder, under ``engines/<name>/``
(:meth:`SearchEngine.save` / :meth:`SearchEngine.load`); the vectors and
products stay in the index folder's own files.

A new engine subclasses :class:`SearchEngine` and registers itself with
:func:`fashionrec.search.register_engine`; the conformance tests
(``tests/test_search.py``) then run over it too.
"""

from __future__ import annotations

import json
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd

from ..catalog.filters import Filter
from ..errors import IndexFolderError
from ..output import atomic_write
from ..validation import check_metric

ENGINE_FILE = "engine.json"
"""File in an engine's folder naming the engine and its parameters."""


class RangeResult(NamedTuple):
    """Everything within a radius of each query, in FAISS's layout.

    The neighbours of query ``i`` are ``ids[lims[i]:lims[i + 1]]`` at
    ``distances[lims[i]:lims[i + 1]]``, sorted by ascending distance, ties by id.
    ``lims`` is (Q + 1,) int64; ``distances`` float64 and ``ids`` int64, both (M,).
    """

    lims: np.ndarray
    distances: np.ndarray
    ids: np.ndarray

    def neighbours(self, query: int) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, ids)`` of query number ``query``."""
        start, stop = int(self.lims[query]), int(self.lims[query + 1])
        return self.distances[start:stop], self.ids[start:stop]


class SearchEngine(ABC):
    """Nearest-neighbour search over id-labelled vectors (see the module docstring).

    Parameters
    ----------
    metric:
        ``"euclidean"`` or ``"cosine"``.

    Subclasses set :attr:`name`, take their own parameters as keyword
    arguments and return them from :meth:`params`, so that ``save``/``load``
    round-trip them.
    """

    name: ClassVar[str] = ""
    exact_answers: ClassVar[bool] = True
    """True when :meth:`search` always returns the true nearest vectors; False for approximate engines,
    which may miss some (their distances are still exact)."""
    needs_build: ClassVar[bool] = False
    """True when building takes long enough that the engine must be built ahead and saved in the index folder."""

    def __init__(self, metric: str = "euclidean"):
        self.metric = check_metric(metric)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({params}, ntotal={self.ntotal})"

    def params(self) -> dict[str, Any]:
        """The constructor arguments, JSON-ready."""
        return {"metric": self.metric}

    # ------------------------------------------------------------------ building

    @abstractmethod
    def build(self, vectors: np.ndarray, ids: np.ndarray, attributes: pd.DataFrame | None = None) -> SearchEngine:
        """Index ``vectors`` (N, D) float32 under ``ids`` (N,) int64, replacing any content; returns self.

        ``attributes`` (N rows, same order) are what filters are evaluated on;
        without them a filtered search raises :class:`~fashionrec.errors.FilterError`.
        """

    @abstractmethod
    def add(self, vectors: np.ndarray, ids: np.ndarray, attributes: pd.DataFrame | None = None) -> SearchEngine:
        """Add more vectors (ids not yet present); returns self."""

    @property
    @abstractmethod
    def ntotal(self) -> int:
        """Number of vectors held."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Vector dimension D."""

    # ------------------------------------------------------------------ queries

    @abstractmethod
    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        filter: Filter | Mapping[str, Any] | None = None,
        exclude_ids: Sequence[Sequence[int]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest vectors of each query: ``(distances, ids)``, both (Q, min(k, N)).

        ``queries`` is (Q, D) or a single (D,) vector. ``k`` is capped to N
        before allocating. Sorted, ties by id, padded with ``inf`` / ``-1``
        where fewer than min(k, N) vectors are eligible.
        """

    @abstractmethod
    def range_search(
        self,
        queries: np.ndarray,
        radius: float,
        *,
        filter: Filter | Mapping[str, Any] | None = None,
        exclude_ids: Sequence[Sequence[int]] | None = None,
    ) -> RangeResult:
        """Every vector at distance ``<= radius`` of each query (see :class:`RangeResult`)."""

    # ------------------------------------------------------------------ persistence

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the engine's files into ``folder`` (made if needed); returns it.

        The base engine writes only :data:`ENGINE_FILE` (name and parameters):
        an engine with data structures of its own writes them too.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"engine": self.name, "params": self.params()}, indent=2) + "\n"
        atomic_write(folder / ENGINE_FILE, lambda f: f.write(text.encode()))
        return folder

    @classmethod
    def load(
        cls,
        folder: str | os.PathLike,
        vectors: np.ndarray,
        ids: np.ndarray,
        attributes: pd.DataFrame | None = None,
    ) -> SearchEngine:
        """Open an engine saved in ``folder`` over the index's ``vectors``, ``ids`` and ``attributes``.

        The base version reads the parameters and rebuilds; engines with data
        structures of their own read them instead.
        """
        params = read_engine_file(folder, expected=cls.name)
        return cls(**params).build(vectors, ids, attributes)


def range_by_growing_k(engine: SearchEngine, queries: np.ndarray, radius: float, *, filter: Any = None,
                       exclude_ids: Sequence[Sequence[int]] | None = None) -> RangeResult:
    """``engine.range_search`` for engines without a native one: per query, k-nearest searches with k grown
    fourfold (from 16) while every result found lies within ``radius``; as exact as ``engine.search``.

    ``queries`` is (Q, D) float32; ValueError for a negative or non-finite ``radius``.
    """
    radius = float(radius)
    if not math.isfinite(radius) or radius < 0:
        raise ValueError(f"radius must be a finite distance >= 0, got {radius!r}")
    lims, dists, found = [0], [], []
    for qi in range(len(queries)):
        excl = None if exclude_ids is None else [exclude_ids[qi]]
        k = 16
        while True:
            d, i = engine.search(queries[qi : qi + 1], k, filter=filter, exclude_ids=excl)
            d, i = d[0], i[0]
            valid = i >= 0
            if k >= engine.ntotal or not valid.all() or d[-1] > radius:
                break
            k *= 4
        keep = valid & (d <= radius)
        dists.append(d[keep])
        found.append(i[keep])
        lims.append(lims[-1] + int(keep.sum()))
    return RangeResult(np.array(lims, dtype=np.int64), np.concatenate(dists) if dists else np.zeros(0),
                       np.concatenate(found).astype(np.int64) if found else np.zeros(0, np.int64))


def read_engine_file(folder: str | os.PathLike, *, expected: str | None = None) -> dict[str, Any]:
    """The parameters stored in ``folder/engine.json``; IndexFolderError when absent or foreign."""
    return read_description(folder, expected=expected)["params"]


def read_description(folder: str | os.PathLike, *, expected: str | None = None) -> dict[str, Any]:
    """The whole ``folder/engine.json`` (``engine``, ``params``, and what the engine records besides).

    Raises IndexFolderError when it is absent, unreadable, or names another engine than ``expected``.
    """
    file = Path(folder) / ENGINE_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexFolderError(f"no search engine saved in {folder}: {ENGINE_FILE} is missing") from None
    except (OSError, ValueError) as exc:
        raise IndexFolderError(f"cannot read {file}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("params"), dict):
        raise IndexFolderError(f"{file}: expected {{'engine': name, 'params': {{...}}}}, got {str(data)[:80]}")
    if expected is not None and data.get("engine") != expected:
        raise IndexFolderError(f"{file} holds engine {data.get('engine')!r}, expected {expected!r}")
    return data


def check_vectors(vectors: Any, ids: Any, attributes: pd.DataFrame | None, *, dim: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Validate build/add input: (N, D) float vectors, (N,) distinct non-negative integer ids, N attribute rows.

    Returns the vectors (float32, C order; no copy when already so) and the ids (int64).
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be a 2-D (N, D) array, got shape {vectors.shape}")
    if dim is not None and vectors.shape[1] != dim:
        raise ValueError(f"vectors have dimension {vectors.shape[1]}, the engine holds {dim}")
    if vectors.dtype != np.float32 or not vectors.flags.c_contiguous:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids_array = np.asarray(ids)
    if ids_array.shape != (len(vectors),):
        raise ValueError(f"ids must have shape ({len(vectors)},) like the vectors, got {ids_array.shape}")
    if len(ids_array) and not np.issubdtype(ids_array.dtype, np.integer):
        raise ValueError(f"ids must be integers, got dtype {ids_array.dtype}")
    ids_array = ids_array.astype(np.int64, copy=False)
    if len(ids_array) and ids_array.min() < 0:
        raise ValueError(f"ids must be non-negative (-1 pads results), got {int(ids_array.min())}")
    if len(np.unique(ids_array)) != len(ids_array):
        raise ValueError("ids must be distinct")
    if attributes is not None and len(attributes) != len(vectors):
        raise ValueError(f"attributes have {len(attributes)} rows, expected {len(vectors)} like the vectors")
    return vectors, ids_array
