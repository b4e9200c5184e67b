"""Stage 5 — recommendations: the object behind every interface.

:class:`Recommender` answers "more like this" for a product of the index or for
any picture (file, URL, PIL image), optionally within a filter such as
``{"gender": "Women", "articleType": ["Heels", "Flats"]}``::

    rec = Recommender.load("index/")
    rec.similar(15970, k=5, where={"gender": "Women"})
    rec.similar_to_image("photo.jpg", k=5)

Both return a DataFrame ordered by distance (ties by id): ``id``,
``distance``, then the catalog attributes and ``image`` (and ``link`` when
known). The query product never recommends itself. Search is exact; one
:class:`~fashionrec.search.ExactIndex` per metric is built on first use.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.internals import create_dataframe_from_blocks

from .catalog import coerce_id, normalize_where, where_mask
from .errors import CatalogError, FashionrecError, QueryError
from .index import IndexFolder
from .search import METRICS, ExactIndex, id_tie_order

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
    """

    def __init__(
        self,
        index: IndexFolder,
        *,
        embedder: Any = None,
        catalog_root: str | os.PathLike | None = None,
        weights: str | os.PathLike | None = None,
    ):
        self.index = index
        self.embedder = embedder
        self.weights = weights
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
        # Rank of each row's id: distance ties resolve by id, not by row position.
        self._tie_order = id_tie_order(ids)
        self._indexes: dict[str, ExactIndex] = {}
        self._masks: dict[tuple, np.ndarray] = {}  # recent filters (masks are read-only)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        weights: str | os.PathLike | None = None,
        catalog_root: str | os.PathLike | None = None,
        embedder: Any = None,
    ) -> Recommender:
        """Open an index folder (memory-mapped) for recommendations."""
        return cls(IndexFolder.load(path), embedder=embedder, catalog_root=catalog_root, weights=weights)

    def __len__(self) -> int:
        return len(self.products)

    def __repr__(self) -> str:
        return f"Recommender(index={str(self.index.path)!r}, products={len(self)}, backbone={self.index.backbone!r})"

    # ------------------------------------------------------------------ queries

    def similar(
        self,
        product_id: Any,
        k: int = 5,
        where: Mapping[str, Any] | None = None,
        metric: str = "euclidean",
    ) -> pd.DataFrame:
        """The ``k`` products most similar to ``product_id`` (itself excluded)."""
        k = _check_k(k)
        row = self.row_of(product_id)
        allowed = self._allowed(where)
        query = self._vectors[row : row + 1]
        dist, rows = self._search(metric).search(query, k, allowed=allowed, exclude=[[row]])
        return self._results(dist[0], rows[0])

    def similar_to_image(
        self,
        image: Any,
        k: int = 5,
        where: Mapping[str, Any] | None = None,
        metric: str = "euclidean",
    ) -> pd.DataFrame:
        """The ``k`` products most similar to a picture (path, http(s) URL or PIL image)."""
        from .images import open_image

        k = _check_k(k)
        allowed = self._allowed(where)
        search = self._search(metric)
        picture = open_image(image)
        vector = self.embed([picture])
        dist, rows = search.search(vector, k, allowed=allowed)
        return self._results(dist[0], rows[0])

    def embed(self, pictures: list) -> np.ndarray:
        """Embed PIL images with the index's backbone; (n, dim) float32."""
        if self.embedder is None:
            from .embedding import ImageEmbedder  # lazy: torch loads only for image queries

            self.embedder = ImageEmbedder.from_manifest(self.index.manifest, weights=self.weights)
        vectors = np.asarray(self.embedder.embed(list(pictures)), dtype=np.float32)
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
        ids = self._ids  # kept: selecting the column anew costs ~0.1 ms after a scan
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

    def _search(self, metric: str) -> ExactIndex:
        if metric not in METRICS:
            raise QueryError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        if metric not in self._indexes:
            log.debug("building %s index over %d vectors", metric, len(self))
            self._indexes[metric] = ExactIndex(metric, tie_order=self._tie_order).fit(self._vectors)
        return self._indexes[metric]

    def _allowed(self, where: Mapping[str, Any] | None) -> np.ndarray | None:
        if not where:
            return None
        if not isinstance(where, Mapping):
            raise QueryError(f"filter must be a mapping of attribute to value(s), got {type(where).__name__}")
        columns = list(self.products.columns)
        try:
            key = tuple(sorted((k, tuple(sorted(v.casefold() for v in values)))
                               for k, values in normalize_where(where, columns).items()))
            mask = self._masks.get(key)
            if mask is None:
                mask = where_mask(self.products, where).to_numpy(dtype=bool)
                mask.flags.writeable = False
                if len(self._masks) >= 64:
                    self._masks.pop(next(iter(self._masks)))
                self._masks[key] = mask
        except FashionrecError as exc:
            raise QueryError(str(exc)) from None
        if not mask.any():
            hints = []
            for key, value in where.items():
                values = self.products[key].dropna().astype(str).value_counts().index[:8]
                hints.append(f"{key} has e.g. {', '.join(values)}")
            raise QueryError(f"no product matches the filter {dict(where)!r}; {'; '.join(hints)}")
        return mask

    def _results(self, dist: np.ndarray, rows: np.ndarray) -> pd.DataFrame:
        keep = rows >= 0
        rows, dist = rows[keep], dist[keep]
        return self._result_rows.take(rows, dist)


def _plain_int(ids: pd.Series) -> bool:
    return pd.api.types.is_integer_dtype(ids.dtype) and not ids.isna().any()


class _ResultRows:
    """Builds result frames (``id``, ``distance``, attributes) for given rows, fast.

    A query's own work is a scan of a few milliseconds or less, so the result
    frame must cost far less: ``DataFrame.take`` plus setting ``distance`` and
    the index cost ~0.25 ms on a small index (more than its scan, measured after
    the scan has evicted the caches). Instead the column blocks are laid out once
    — all text columns in one object block, other columns as they are — and each
    query takes its rows from every block and assembles them with pandas'
    documented low-level constructor, ~0.1 ms.
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


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        try:
            k_int = int(str(k))
        except ValueError:
            raise QueryError(f"k must be a whole number of recommendations, got {k!r}") from None
    else:
        k_int = int(k)
    if k_int < 1:
        raise QueryError(f"k must be at least 1, got {k_int}")
    return k_int


def _isna(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
