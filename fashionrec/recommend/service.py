"""The recommendation service: the object behind every interface (CLI, web, Python).

:class:`Recommender` answers "more like this" for a product of the index or for
any picture (file, URL, PIL image), optionally within a filter such as
``{"gender": "Women", "articleType": ["Heels", "Flats"]}``::

    rec = Recommender.load("index/")
    rec.similar(15970, k=5, where={"gender": "Women"})
    rec.similar_to_image("photo.jpg", k=5)

Both return a DataFrame ordered by distance (ties by id): ``id``,
``distance``, then the catalog attributes and ``image`` (and ``link`` when
known). The query product never recommends itself. Searches go through a
search engine of the registry (:mod:`fashionrec.search`), one per metric, made
on first use.

A Recommender is safe to call from many threads at once: its lazily made
parts (engines, the image embedder) are made under a lock, and the rest is read-only.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.internals import create_dataframe_from_blocks

from ..catalog import coerce_id
from ..catalog.filters import Filter
from ..errors import CatalogError, QueryError
from ..index import IndexFolder
from ..search import DEFAULT_ENGINE, SearchEngine, create_engine, engine_class, load_engine
from ..search.base import read_engine_file
from ..validation import check_filter, check_k, check_metric

log = logging.getLogger(__name__)

HIDDEN_COLUMNS: tuple[str, ...] = ("image_signature", "has_image")
"""Bookkeeping columns of the index left out of results."""


class Recommender:
    """Recommendations from one index folder.

    Parameters
    ----------
    index:
        A loaded :class:`~fashionrec.index.IndexFolder`.
    embedder:
        Optional object with ``embed(list_of_PIL_images) -> ndarray (n, dim)``
        used by :meth:`similar_to_image`; by default
        ``fashionrec.embedding.ImageEmbedder.from_manifest(manifest, weights=weights)``
        is created on first use, so the index's own backbone and preprocessing
        embed the query.
    catalog_root:
        Folder the ``image`` paths are relative to; defaults to the manifest's
        ``catalog.root``.
    weights:
        Local weights file for the embedder (as given to ``fashionrec index``).
    engine:
        Name of the search engine (see :func:`fashionrec.search.list_engines`);
        an engine saved in the index folder (``engines/<name>/``) is opened,
        otherwise one is built over the index's vectors.
    """

    def __init__(
        self,
        index: IndexFolder,
        *,
        embedder: Any = None,
        catalog_root: str | os.PathLike | None = None,
        weights: str | os.PathLike | None = None,
        engine: str = DEFAULT_ENGINE,
    ):
        self.index = index
        self.embedder = embedder
        self.weights = weights
        self.engine_name = engine_class(engine).name  # unknown names fail here, not on the first query
        self.catalog_root = Path(catalog_root) if catalog_root is not None else index.catalog_root
        self.products: pd.DataFrame = index.products.drop(
            columns=[c for c in HIDDEN_COLUMNS if c in index.products.columns]
        ).reset_index(drop=True)
        self._result_rows = _ResultRows(self.products)
        ids = self.products["id"]
        self._ids = ids
        # The vectors as a plain ndarray view of the memory map (no copy): slicing
        # a np.memmap costs several microseconds of Python per query.
        self._vectors = np.asarray(index.embeddings)
        # A NumPy-backed index: id lookups are hash lookups, not extension-array scans.
        self._row_of = pd.Index(ids.to_numpy(dtype=np.int64) if _plain_int(ids) else ids.to_numpy(dtype=object))
        if not self._row_of.is_unique:
            dup = ids[ids.duplicated()].iloc[0]
            raise QueryError(f"index {index.path} has duplicate product id {dup!r}; rebuild it with `fashionrec index`")
        # Engines hold vectors under int64 ids (the product ids, or their ranks):
        # ties resolve by product id, and exclusion is by id.
        self._vector_ids = index.vector_ids
        self._row_of_vector_id = dict(zip(self._vector_ids.tolist(), range(len(self._vector_ids))))
        self._columns = list(self.products.columns)
        self._engines: dict[str, SearchEngine] = {}
        self._lock = threading.Lock()  # guards the lazily made engines and embedder

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        weights: str | os.PathLike | None = None,
        catalog_root: str | os.PathLike | None = None,
        embedder: Any = None,
        engine: str = DEFAULT_ENGINE,
    ) -> Recommender:
        """Open an index folder (memory-mapped) for recommendations."""
        return cls(IndexFolder.load(path), embedder=embedder, catalog_root=catalog_root, weights=weights, engine=engine)

    def __len__(self) -> int:
        return len(self.products)

    def __repr__(self) -> str:
        return (f"Recommender(index={str(self.index.path)!r}, products={len(self)}, "
                f"backbone={self.index.backbone!r}, engine={self.engine_name!r})")

    # ------------------------------------------------------------------ queries

    def similar(
        self,
        product_id: Any,
        k: int = 5,
        where: Mapping[str, Any] | None = None,
        metric: str = "euclidean",
    ) -> pd.DataFrame:
        """The ``k`` products most similar to ``product_id`` (itself excluded, by id)."""
        k = check_k(k)
        flt = self._filter(where)
        row = self.row_of(product_id)
        query = self._vectors[row : row + 1]
        dist, ids = self.engine(metric).search(query, k, filter=flt, exclude_ids=[[int(self._vector_ids[row])]])
        return self._results(dist[0], ids[0], flt)

    def similar_to_image(
        self,
        image: Any,
        k: int = 5,
        where: Mapping[str, Any] | None = None,
        metric: str = "euclidean",
    ) -> pd.DataFrame:
        """The ``k`` products most similar to a picture (path, http(s) URL or PIL image)."""
        from ..images import open_image

        k = check_k(k)
        flt = self._filter(where)
        engine = self.engine(metric)
        picture = open_image(image)
        vector = self.embed([picture])
        dist, ids = engine.search(vector, k, filter=flt)
        return self._results(dist[0], ids[0], flt)

    def embed(self, pictures: list) -> np.ndarray:
        """Embed PIL images with the index's backbone; (n, dim) float32."""
        vectors = np.asarray(self._embedder().embed(list(pictures)), dtype=np.float32)
        expected = (len(pictures), self.index.dim)
        if vectors.shape != expected:
            raise QueryError(
                f"the embedder returned vectors of shape {vectors.shape}, expected {expected} "
                f"({self.index.backbone} as in {self.index.path}/manifest.json)"
            )
        return vectors

    def query_product(self, product_id: Any) -> dict[str, Any]:
        """The catalog row of ``product_id`` as a dict (``id``, attributes, ``image``...)."""
        row = self.row_of(product_id)
        return {k: (None if _isna(v) else v) for k, v in self.products.iloc[row].to_dict().items()}

    def has_product(self, product_id: Any) -> bool:
        try:
            self.row_of(product_id)
        except QueryError:
            return False
        return True

    def row_of(self, product_id: Any) -> int:
        """Row position of a product id (given as int or str); QueryError when unknown."""
        ids = self._ids  # kept: selecting the column anew is slow after a scan has evicted the caches
        try:
            key = coerce_id(product_id, ids)
        except CatalogError as exc:
            raise QueryError(str(exc)) from None
        try:
            row = self._row_of.get_loc(key)
        except (KeyError, TypeError):
            examples = ", ".join(str(v) for v in ids.iloc[:3])
            raise QueryError(
                f"unknown product id {product_id!r}: not in index {self.index.path} "
                f"({len(ids)} products, e.g. {examples})"
            ) from None
        if not isinstance(row, (int, np.integer)):
            raise QueryError(f"product id {product_id!r} is not unique in index {self.index.path}")
        return int(row)

    def image_source(self, row: Any) -> Path | str | None:
        """Where a product's picture is: the local file under the catalog root, else its ``link`` URL.

        ``row`` is a result row (mapping / Series with ``image`` and maybe ``link``)
        or a product id. None when neither exists.
        """
        if not isinstance(row, (Mapping, pd.Series)):
            row = self.query_product(row)
        rel = row.get("image")
        if not _isna(rel) and rel and self.catalog_root is not None:
            path = self.catalog_root / str(rel)
            if path.is_file():
                return path
        link = row.get("link")
        if not _isna(link) and link:
            return str(link)
        return None

    # ------------------------------------------------------------------ internals

    def engine(self, metric: str = "euclidean") -> SearchEngine:
        """The search engine for ``metric``, opened or built on first use (thread-safe)."""
        engine = self._engines.get(metric)
        if engine is not None:
            return engine
        metric = check_metric(metric)
        with self._lock:
            engine = self._engines.get(metric)
            if engine is None:
                engine = self._open_engine(metric)
                self._engines[metric] = engine
        return engine

    def _open_engine(self, metric: str) -> SearchEngine:
        folder = self.index.engine_dir(self.engine_name)
        if folder.is_dir() and read_engine_file(folder).get("metric", metric) == metric:
            log.debug("opening the %s engine saved in %s", self.engine_name, folder)
            return load_engine(self.engine_name, folder, self._vectors, self._vector_ids, self.products)
        log.debug("building the %s engine (%s) over %d vectors", self.engine_name, metric, len(self))
        return create_engine(self.engine_name, metric=metric).build(self._vectors, self._vector_ids, self.products)

    def _embedder(self) -> Any:
        """The embedder of photo queries; the index's own backbone, made on first use (thread-safe)."""
        if self.embedder is not None:
            return self.embedder
        with self._lock:
            if self.embedder is None:
                from ..embedding import ImageEmbedder  # lazy: torch loads only for image queries

                embedder = ImageEmbedder.from_manifest(self.index.manifest, weights=self.weights)
                embedder.extractor  # load the model now, once, not in each thread that asks first
                self.embedder = embedder
        return self.embedder

    def _filter(self, where: Mapping[str, Any] | Filter | None) -> Filter | None:
        """The validated filter (None for none); FilterError names an unknown attribute."""
        if not where:
            return None
        return check_filter(where, self._columns)

    def _results(self, dist: np.ndarray, ids: np.ndarray, flt: Filter | None) -> pd.DataFrame:
        keep = ids >= 0
        row_of = self._row_of_vector_id
        rows = np.fromiter((row_of[i] for i in ids[keep].tolist()), dtype=np.int64, count=int(keep.sum()))
        if not len(rows) and flt is not None:
            self._check_filter_matches(flt)
        return self._result_rows.take(rows, dist[keep])

    def _check_filter_matches(self, flt: Filter) -> None:
        """QueryError, with examples of the values, when no product at all matches ``flt``."""
        if flt.mask(self.products).any():
            return  # products match, but none is left once the query product is excluded
        hints = []
        for key in flt.attributes:
            values = self.products[key].dropna().astype(str).value_counts().index[:8]
            hints.append(f"{key} has e.g. {', '.join(values)}")
        raise QueryError(f"no product matches the filter {flt.to_dict()!r}; {'; '.join(hints)}")


def _plain_int(ids: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(ids.dtype) and not ids.isna().any()


class _ResultRows:
    """Builds result frames (``id``, ``distance``, attributes) for given rows, fast.

    A query's own work is a scan of a few milliseconds or less, so the result
    frame must cost far less; ``DataFrame.take`` and setting ``distance`` cost
    more than the scan of a small index (``benchmarks/RESULTS.md``). Instead the
    column blocks are laid out once — all text columns in one object block,
    other columns as they are — and each query takes its rows from every block
    and assembles them with pandas' documented low-level constructor.
    """

    def __init__(self, products: pd.DataFrame):
        columns = ["id", "distance"] + [c for c in products.columns if c != "id"]
        self.columns = pd.Index(columns)
        position = {c: np.array([i]) for i, c in enumerate(columns)}
        text = [c for c in products.columns if pd.api.types.is_string_dtype(products[c].dtype)]
        # (array, placement) pairs; 2-D NumPy blocks are (columns, rows) as pandas lays them out.
        self._blocks: list[tuple[Any, np.ndarray]] = []
        if text:
            block = np.ascontiguousarray(products[text].to_numpy(dtype=object).T)
            self._blocks.append((block, np.concatenate([position[c] for c in text])))
        for column in products.columns:
            if column not in text:
                values = products[column].array
                if isinstance(values, pd.arrays.NumpyExtensionArray):
                    values = np.asarray(values)[None, :]
                self._blocks.append((values, position[column]))
        self._distance_at = position["distance"]

    def take(self, rows: np.ndarray, distances: np.ndarray) -> pd.DataFrame:
        """Rows ``rows`` (int positions) with their ``distances``, indexed 0..len(rows)-1."""
        blocks = [(np.asarray(distances, dtype=np.float64)[None, :], self._distance_at)]
        for values, placement in self._blocks:
            taken = values[:, rows] if isinstance(values, np.ndarray) else values.take(rows)
            blocks.append((taken, placement))
        return create_dataframe_from_blocks(blocks, index=pd.RangeIndex(len(rows)), columns=self.columns)


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
