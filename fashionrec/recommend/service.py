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

It also lists the catalog, a page at a time with facet counts
(:meth:`Recommender.browse`, see :mod:`.browse`), and describes its index
(:meth:`Recommender.info`)::

    rec.browse({"gender": "Women"}, text="party heels", page=1, per_page=48)
    rec.info().backbone

A Recommender is safe to call from many threads at once: its lazily made
parts (engines, the image embedder, the browse tables) are made under a lock,
and the rest is read-only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from pandas.api.internals import create_dataframe_from_blocks

from ..catalog import coerce_id
from ..catalog.look import CatalogLook
from ..catalog.filters import Filter
from ..evaluation import EVALUATION_FILE
from ..errors import CatalogError, FilterError, IndexFolderError, InvalidKError, QueryError, UnknownProductError
from ..index import IndexFolder
from ..search import (
    DEFAULT_ENGINE, SavedEngine, SearchEngine, create_engine, engine_class, load_engine, open_saved_engine,
    saved_engines,
)
from ..search.base import read_engine_file
from ..validation import METRICS, check_filter, check_k, check_metric
from .browse import FACETS, MAX_PER_PAGE, CatalogBrowser
from ..output import plain_values
from .kind import KIND_ATTRIBUTES, KIND_NEIGHBOURS, KindPrediction, predict_kind
from .duplicates import DuplicateGroup, DuplicateScan, auto_duplicate_groups, collapse, duplicate_groups, estimate_threshold
from .results import EngineInfo, IndexInfo, Product, ProductPage, Recommendations

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
    match_catalog:
        Whether photo queries are first made to look like a catalog image
        (:meth:`~fashionrec.catalog.look.CatalogLook.apply`: the catalog's
        size, JPEG compression and background, as the index measured them);
        on by default, each photo query may say otherwise.
    allow_private_urls:
        Whether picture URLs (photo queries, and the product pictures
        :func:`~fashionrec.reports.recommendation_figure` draws) may reach
        private, loopback, link-local or reserved addresses, for an intranet
        catalog. Off by default: such a URL raises
        :class:`~fashionrec.images.PrivateHostError`, checked at every redirect.
    """

    def __init__(
        self,
        index: IndexFolder,
        *,
        embedder: Any = None,
        catalog_root: str | os.PathLike | None = None,
        weights: str | os.PathLike | None = None,
        engine: str = DEFAULT_ENGINE,
        allow_private_urls: bool = False,
        match_catalog: bool = True,
    ):
        self.index = index
        self.match_catalog = bool(match_catalog)
        self.allow_private_urls = bool(allow_private_urls)
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
        self._fallbacks: dict[str, str] = {}  # metric -> why the exact engine answers instead of the chosen one
        self._lock = threading.Lock()  # guards the lazily made engines and embedder
        self._browser = CatalogBrowser(self.products, FACETS, self._plain_columns)  # tables made on first browse
        self._evaluation: tuple[Any, Any] = (None, None)  # (evaluation.json's stat key, its summary)
        self._plain: list[tuple[str, list[Any]]] | None = None  # columns as plain Python lists, made on first use
        self._thresholds: dict[str, tuple[float, str]] = {}  # metric -> duplicate threshold and why
        self._look: tuple[CatalogLook | None] | None = None  # (the catalog look,) once known
        self._threshold_lock = threading.Lock()  # apart from _lock: the estimate opens an engine under _lock

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        *,
        weights: str | os.PathLike | None = None,
        catalog_root: str | os.PathLike | None = None,
        embedder: Any = None,
        engine: str = DEFAULT_ENGINE,
        allow_private_urls: bool = False,
        match_catalog: bool = True,
    ) -> Recommender:
        """Open an index folder (memory-mapped) for recommendations; options as for the constructor."""
        return cls(IndexFolder.load(path), embedder=embedder, catalog_root=catalog_root, weights=weights, engine=engine,
                   allow_private_urls=allow_private_urls, match_catalog=match_catalog)

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
        *,
        dedupe: bool = False,
        dedupe_threshold: float | None = None,
    ) -> pd.DataFrame:
        """The ``k`` products most similar to ``product_id`` (itself excluded, by id).

        ``dedupe=True`` collapses near-duplicates: a product within the
        duplicate threshold (``dedupe_threshold``, default
        :meth:`duplicate_threshold`) of a result already returned, or of the
        query product, is left out, so the ``k`` results are ``k``
        different-looking products. The frame then has a last column
        ``duplicates`` (per result, the ids collapsed into it) and
        ``frame.attrs["query_duplicates"]`` (the ids collapsed into the query).
        """
        row, found = self._search_product(product_id, k, where, metric, dedupe, dedupe_threshold)
        return self._frame(found)

    def similar_to_image(
        self,
        image: Any,
        k: int = 5,
        where: Mapping[str, Any] | None = None,
        metric: str = "euclidean",
        *,
        dedupe: bool = False,
        dedupe_threshold: float | None = None,
        match_catalog: bool | None = None,
        prefer_kind: bool = False,
    ) -> pd.DataFrame:
        """The ``k`` products most similar to a picture (path, http(s) URL or PIL image).

        A URL is fetched within :func:`~fashionrec.images.open_image`'s limits,
        from a public host only unless the Recommender was made with
        ``allow_private_urls=True``. ``dedupe`` as for :meth:`similar` (a
        photo has no query product: only results are collapsed into results).
        ``match_catalog`` (default: the Recommender's) first makes the picture
        look like a catalog image (:attr:`catalog_look`). ``prefer_kind``
        predicts the photo's articleType and colour from its nearest products
        (:func:`~fashionrec.recommend.kind.predict_kind`) and ranks products of
        that articleType first; the prediction is in
        ``frame.attrs["predicted"]`` (:class:`KindPrediction` as a dict).
        """
        return self._frame(self._search_picture(image, k, where, metric, dedupe, dedupe_threshold, match_catalog,
                                                prefer_kind))

    def recommendations(
        self,
        product_id: Any,
        k: int = 5,
        where: Mapping[str, Any] | None = None,
        metric: str = "euclidean",
        *,
        dedupe: bool = False,
        dedupe_threshold: float | None = None,
    ) -> Recommendations:
        """:meth:`similar` as the result model (what ``--json`` and the web API write), without a DataFrame.

        With ``dedupe``, each result has ``duplicates`` (the ids collapsed into
        it) and the query has ``duplicates`` (those collapsed into the query product).
        """
        row, found = self._search_product(product_id, k, where, metric, dedupe, dedupe_threshold)
        return self._answer(self._record(row), found)

    def recommendations_many(
        self,
        product_ids: list[Any],
        k: int = 5,
        where: Mapping[str, Any] | None = None,
        metric: str = "euclidean",
        *,
        dedupe: bool = False,
        dedupe_threshold: float | None = None,
    ) -> list[Recommendations]:
        """:meth:`recommendations` for several products at once: one pass over the vectors for all of them.

        Answers are exactly those of one :meth:`recommendations` call per id
        (the exact engine scores a block of queries with one matrix product);
        a server batching concurrent requests uses it. UnknownProductError for
        any unknown id.
        """
        k = check_k(k)
        flt = self._filter(where)
        rows = [self.row_of(pid) for pid in product_ids]
        if not rows:
            return []
        found = self._ranked(self._vectors[rows], k, flt, metric, rows, dedupe, dedupe_threshold)
        return [self._answer(self._record(row), one) for row, one in zip(rows, found)]

    def image_recommendations(
        self,
        image: Any,
        k: int = 5,
        where: Mapping[str, Any] | None = None,
        metric: str = "euclidean",
        *,
        label: str | None = None,
        dedupe: bool = False,
        dedupe_threshold: float | None = None,
        match_catalog: bool | None = None,
        prefer_kind: bool = False,
    ) -> Recommendations:
        """:meth:`similar_to_image` as the result model; the query is ``{"image": label}``
        (default: the path or URL given, or ``"image"`` for a PIL image), with
        ``predicted`` when ``prefer_kind``."""
        found = self._search_picture(image, k, where, metric, dedupe, dedupe_threshold, match_catalog, prefer_kind)
        if label is None:
            label = str(image) if isinstance(image, (str, os.PathLike)) else "image"
        return self._answer({"image": label}, found)

    def duplicate_threshold(self, metric: str = "euclidean") -> float:
        """The distance below which two products count as near-duplicates (``--dedupe``, ``duplicates --auto``).

        :func:`~fashionrec.recommend.duplicates.estimate_threshold` over the
        index's vectors in ``metric``, computed on first use and kept
        (thread-safe); its reason is :meth:`duplicate_threshold_reason`.
        """
        return self._threshold(metric)[0]

    def duplicate_threshold_reason(self, metric: str = "euclidean") -> str:
        """Why :meth:`duplicate_threshold` is what it is (how it was measured)."""
        return self._threshold(metric)[1]

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

    def browse(
        self,
        where: Mapping[str, Any] | Filter | None = None,
        text: str | None = None,
        page: int = 1,
        per_page: int = 48,
    ) -> ProductPage:
        """One page of the products matching ``where`` and ``text``, in index order, with facet counts.

        ``where`` is a filter as for :meth:`similar`; every whitespace-separated
        word of ``text`` must occur in the product's ``productDisplayName``
        (case-insensitive). ``page`` counts from 1 (a page past the last one is
        empty); ``per_page`` is 1 to 200. ``facets`` counts the values of each
        of :data:`FACETS` the index has, disjunctively: over the products
        matching the text and every filter term but the attribute's own.

        Raises InvalidKError for a bad ``page`` / ``per_page``, FilterError for
        an unknown attribute or a text that is not a string.
        """
        page = check_k(page, name="page")
        per_page = check_k(per_page, name="per_page")
        if per_page > MAX_PER_PAGE:
            raise InvalidKError(f"per_page must be at most {MAX_PER_PAGE}, got {per_page}")
        if text is not None and not isinstance(text, str):
            raise FilterError(f"text must be words to look for in product names, got {type(text).__name__} {text!r}")
        return self._browser.page(self._filter(where), (text or "").split(), page, per_page)

    def product(self, product_id: Any) -> Product:
        """The catalog row of ``product_id`` as a :class:`Product` (UnknownProductError when unknown)."""
        return Product.from_record(self.query_product(product_id))

    def info(self) -> IndexInfo:
        """What the index is: backbone, weights, size, dates, engines, catalog, and its evaluation when it has one.

        ``engines`` are the search engines the manifest lists as saved in the
        folder (an entry that cannot be read is left out, logged as a warning);
        ``answering`` says, per metric, whether the chosen engine or the exact
        one answers. The evaluation is the index folder's ``evaluation.json``
        (``fashionrec demo`` writes one there; ``fashionrec evaluate INDEX --out
        INDEX`` does too), read again when the file changes; None when there is
        none or it cannot be read (logged as a warning).
        """
        manifest = self.index.manifest
        catalog = manifest.get("catalog") or {}
        preprocessing = manifest.get("preprocessing") or {}
        weights = manifest.get("weights")
        skipped = manifest.get("skipped")
        saved = [engine for engine in saved_engines(self.index) if engine.generation == manifest.get("generation")]
        return IndexInfo(
            backbone=str(manifest["backbone"]),
            weights=None if weights is None else str(weights),
            dim=self.index.dim,
            count=len(self),
            created=manifest.get("created"),
            updated=manifest.get("updated"),
            engine=self.engine_name,
            answering={metric: self._answering(metric, saved) for metric in METRICS},
            engines=self._engine_infos(),
            preprocessing=preprocessing.get("mode") if isinstance(preprocessing, Mapping) else None,
            features=str(manifest.get("features") or "raw"),
            catalog_look=manifest.get("catalog_look") if isinstance(manifest.get("catalog_look"), Mapping) else None,
            runtime=manifest.get("runtime"),
            precision=manifest.get("precision"),
            catalog_root=None if self.catalog_root is None else str(self.catalog_root),
            catalog_where=dict(catalog.get("where") or {}) if isinstance(catalog, Mapping) else {},
            skipped=len(skipped) if isinstance(skipped, list) else 0,
            evaluation=self._read_evaluation(),
        )

    def _engine_infos(self) -> list[EngineInfo]:
        """The manifest's ``engines`` entries as models (unreadable entries left out with a warning)."""
        entries = self.index.manifest.get("engines") or []
        infos = []
        for entry in entries if isinstance(entries, list) else []:
            try:
                infos.append(EngineInfo.model_validate(entry))
            except ValueError as exc:  # pydantic's ValidationError is a ValueError
                log.warning("ignoring an entry of %s/manifest.json's engines: %s", self.index.path,
                            str(exc).splitlines()[0])
        return infos

    def _answering(self, metric: str, current: list[SavedEngine]) -> str:
        """The engine that answers (or will answer) ``metric`` queries, without opening it.

        ``current`` are the engines saved for the index's generation, those
        :func:`~fashionrec.search.open_saved_engine` accepts.
        """
        opened = self._engines.get(metric)
        if opened is not None:
            return opened.name
        if not engine_class(self.engine_name).needs_build:
            return self.engine_name
        if any(e.name == self.engine_name and e.metric == metric for e in current):
            return self.engine_name
        return "exact"

    def duplicates(
        self,
        threshold: float | None = None,
        where: Mapping[str, Any] | None = None,
        metric: str = "euclidean",
        progress: Any = None,
    ) -> DuplicateScan:
        """Groups of near-duplicate products of the index (see :mod:`fashionrec.recommend.duplicates`).

        ``threshold`` is a distance in the metric's units; None takes
        :meth:`duplicate_threshold` (picked from the products' nearest-neighbour
        distances, its reason in ``scan.notes``). ``where`` looks only within a
        selection. Groups hold product ids, largest groups first.
        """
        engine = self.engine(check_metric(metric))
        flt = self._filter(where)
        rows = None if flt is None else np.flatnonzero(flt.mask(self.products))
        if threshold is None:
            started = time.perf_counter()
            scan = auto_duplicate_groups(engine, self._vectors, self._vector_ids, rows=rows, filter=flt,
                                         threshold=self._threshold(metric), progress=progress)
            scan.seconds = time.perf_counter() - started  # the threshold's estimate included
        else:
            scan = duplicate_groups(engine, self._vectors, self._vector_ids, threshold, rows=rows, filter=flt,
                                    progress=progress)
        ids = self._plain_columns()[0][1]  # plain Python ids, as in every result
        product_of = {int(v): ids[r] for r, v in enumerate(self._vector_ids.tolist())}
        scan.groups = [DuplicateGroup(tuple(product_of[i] for i in g.ids),
                                      tuple((product_of[a], product_of[b], d) for a, b, d in g.pairs))
                       for g in scan.groups]
        return scan

    def query_product(self, product_id: Any) -> dict[str, Any]:
        """The catalog row of ``product_id`` as a dict of plain values (``id``, attributes, ``image``...; None when missing)."""
        return self._record(self.row_of(product_id))

    def has_product(self, product_id: Any) -> bool:
        try:
            self.row_of(product_id)
        except QueryError:
            return False
        return True

    def row_of(self, product_id: Any) -> int:
        """Row position of a product id (given as int or str); UnknownProductError (a QueryError) when unknown."""
        ids = self._ids  # kept: selecting the column anew is slow after a scan has evicted the caches
        try:
            key = coerce_id(product_id, ids)
        except CatalogError as exc:
            raise UnknownProductError(str(exc)) from None
        try:
            row = self._row_of.get_loc(key)
        except (KeyError, TypeError):
            examples = ", ".join(str(v) for v in ids.iloc[:3])
            raise UnknownProductError(
                f"unknown product id {product_id!r}: not in this index "
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
        if engine_class(self.engine_name).needs_build:  # built ahead, saved per metric (see fashionrec.search.saved)
            try:
                return open_saved_engine(self.index, self.engine_name, metric, products=self.products)
            except IndexFolderError as exc:
                log.warning("%s; answering %s queries with the exact engine", exc, metric)
                self._fallbacks[metric] = str(exc)
                return create_engine("exact", metric=metric).build(self._vectors, self._vector_ids, self.products)
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

    def _read_evaluation(self) -> Any:
        """The folder's evaluation summary, parsed again only when the file changes (None: none or unreadable)."""
        from ..evaluation.summary import EvaluationSummary

        path = self.index.path / EVALUATION_FILE
        try:
            stat = path.stat()
        except OSError:
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        cached_key, summary = self._evaluation  # one tuple: read and replaced whole, so threads never mix two
        if cached_key == key:
            return summary
        try:
            summary = EvaluationSummary.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            log.warning("ignoring %s: %s", path, str(exc).splitlines()[0])
            summary = None
        self._evaluation = (key, summary)
        return summary

    def _filter(self, where: Mapping[str, Any] | Filter | None) -> Filter | None:
        """The validated filter (None for none); FilterError names an unknown attribute."""
        if not where:
            return None
        return check_filter(where, self._columns)

    def _search_product(self, product_id, k, where, metric, dedupe=False, threshold=None) -> tuple[int, _Found]:
        """The query's row, and its ``k`` nearest products (itself excluded, by id)."""
        k = check_k(k)
        flt = self._filter(where)
        row = self.row_of(product_id)
        return row, self._ranked(self._vectors[row : row + 1], k, flt, metric, [row], dedupe, threshold)[0]

    def _search_picture(self, image, k, where, metric, dedupe=False, threshold=None, match_catalog=None,
                        prefer_kind=False) -> _Found:
        """The ``k`` products nearest a picture (made to look like a catalog image unless ``match_catalog`` is False).

        With ``prefer_kind``, those of the predicted articleType come first
        (unless the filter already names articleTypes), then the others.
        """
        from ..images import open_image

        k = check_k(k)
        flt = self._filter(where)
        self.engine(metric)  # an unknown metric fails before the picture is fetched
        picture = open_image(image, allow_private_urls=self.allow_private_urls)
        if self.match_catalog if match_catalog is None else match_catalog:
            look = self.catalog_look
            if look is not None:
                picture = look.apply(picture)
        vector = self.embed([picture])
        if not prefer_kind:
            return self._ranked(vector, k, flt, metric, None, dedupe, threshold)[0]
        nearest = self._ranked(vector, KIND_NEIGHBOURS, flt, metric, None, False, None)[0]
        kind = predict_kind(self._records(nearest.rows, nearest.distances))
        value = kind.values.get(KIND_ATTRIBUTES[0])
        if value is None or (flt is not None and KIND_ATTRIBUTES[0] in flt.attributes):
            return self._ranked(vector, k, flt, metric, None, dedupe, threshold)[0]._replace(kind=kind)
        of_kind = self._filter({**(flt.to_dict() if flt is not None else {}), KIND_ATTRIBUTES[0]: value})
        first = self._ranked(vector, k, of_kind, metric, None, dedupe, threshold)[0]
        if len(first.rows) >= k:
            return first._replace(kind=kind)
        rest = self._ranked(vector, k + len(first.rows), flt, metric, None, dedupe, threshold)[0]
        taken = set(first.rows.tolist())
        others = [i for i, row in enumerate(rest.rows.tolist()) if row not in taken]
        others = others[: k - len(first.rows)]
        twins = None if first.twins is None else first.twins + [rest.twins[i] for i in others]
        return _Found(np.concatenate([first.rows, rest.rows[others]]),
                      np.concatenate([first.distances, rest.distances[others]]), twins, first.query_twins, kind)

    @property
    def catalog_look(self) -> CatalogLook | None:
        """What the catalog's images look like (size, JPEG quality, background), that photo queries are brought to.

        The manifest's ``catalog_look``, recorded when the index was built; for
        an index built before fashionrec recorded it, measured once from the
        index's image files (a sample of 500). None when neither is possible:
        photo queries are then embedded as they are (logged once).
        """
        if self._look is not None:
            return self._look[0]
        with self._lock:
            if self._look is None:
                self._look = (self._read_look(),)
        return self._look[0]

    def _read_look(self) -> CatalogLook | None:
        recorded = self.index.manifest.get("catalog_look")
        if isinstance(recorded, Mapping):
            try:
                return CatalogLook.from_dict(recorded)
            except ValueError as exc:
                log.warning("%s/manifest.json: %s; measuring the catalog images again", self.index.path, exc)
        paths = []
        if self.catalog_root is not None and "image" in self.products.columns:
            paths = [self.catalog_root / str(rel) for rel in self.products["image"].dropna().tolist()]
        look = CatalogLook.measure(paths) if paths else None
        if look is None:
            log.warning("index %s records no catalog_look and its catalog images cannot be read (catalog folder %s): "
                        "photo queries are embedded as they are, not brought to the catalog's image size; rebuild "
                        "the index with `fashionrec index` to record it", self.index.path, self.catalog_root)
        else:
            log.info("index %s records no catalog_look (built before fashionrec recorded it); measured on %d of "
                     "its images: %dx%d px, JPEG quality %s", self.index.path, look.sampled, look.width,
                     look.height, look.quality)
        return look

    def _ranked(self, queries: np.ndarray, k: int, flt: Filter | None, metric: str, query_rows: list[int] | None,
                dedupe: bool, threshold: float | None) -> list[_Found]:
        """Each query's ``k`` nearest products; ``query_rows``: the rows of product queries (excluded by id).

        With ``dedupe``, near-duplicates are collapsed (:func:`collapse`):
        4k + 16 candidates are ranked, and four times more for the queries
        whose candidates ran out before ``k`` different-looking products.
        """
        engine = self.engine(metric)
        exclude = None if query_rows is None else [[int(self._vector_ids[row])] for row in query_rows]
        if not dedupe:
            dist, ids = engine.search(queries, k, filter=flt, exclude_ids=exclude)
            return [_Found(*self._rows(dist[i], ids[i], flt)) for i in range(len(queries))]
        if threshold is None:
            threshold = self.duplicate_threshold(metric)
        elif not (threshold >= 0 and np.isfinite(threshold)):
            raise QueryError(f"dedupe_threshold must be a finite distance >= 0, got {threshold!r}")
        found: list[_Found | None] = [None] * len(queries)
        todo, fetch = list(range(len(queries))), 4 * k + 16
        while todo:
            dist, ids = engine.search(queries[todo], fetch, filter=flt,
                                      exclude_ids=None if exclude is None else [exclude[i] for i in todo])
            again = []
            for j, i in enumerate(todo):
                rows, d = self._rows(dist[j], ids[j], flt)
                query = None if query_rows is None else self._vectors[query_rows[i]]
                kept = collapse(self._vectors[rows], threshold, k, metric=metric, query=query)
                if len(kept.kept) < k and len(rows) == fetch:  # more candidates exist: rank more
                    again.append(i)
                    continue
                found[i] = _Found(rows[kept.kept], d[kept.kept], [rows[t] for t in kept.twins],
                                  rows[kept.query_twins])
            todo, fetch = again, fetch * 4
        return found  # type: ignore[return-value]

    def _threshold(self, metric: str) -> tuple[float, str]:
        """``(threshold, why)`` of :meth:`duplicate_threshold`, estimated once per metric."""
        metric = check_metric(metric)
        known = self._thresholds.get(metric)
        if known is None:
            engine = self.engine(metric)
            with self._threshold_lock:  # one estimate per metric, even when many requests ask at once
                known = self._thresholds.get(metric)
                if known is None:
                    known = estimate_threshold(engine, self._vectors, self._vector_ids)
                    log.info("duplicate threshold (%s): %.4g, %s", metric, *known)
                    self._thresholds[metric] = known
        return known

    def _frame(self, found: _Found) -> pd.DataFrame:
        """The result frame of one query (with ``duplicates`` when near-duplicates were collapsed)."""
        frame = self._result_rows.take(found.rows, found.distances)
        if found.twins is not None:
            ids = self._plain_columns()[0][1]
            frame["duplicates"] = [[ids[r] for r in rows.tolist()] for rows in found.twins]
            frame.attrs["query_duplicates"] = [ids[r] for r in found.query_twins.tolist()]
        if found.kind is not None:
            frame.attrs["predicted"] = found.kind.model_dump()
        return frame

    def _answer(self, query: dict[str, Any], found: _Found) -> Recommendations:
        """The result model of one query (with ``duplicates`` when near-duplicates were collapsed)."""
        records = self._records(found.rows, found.distances)
        if found.twins is not None:
            ids = self._plain_columns()[0][1]
            for record, rows in zip(records, found.twins):
                record["duplicates"] = [ids[r] for r in rows.tolist()]
            if "id" in query:
                query = {**query, "duplicates": [ids[r] for r in found.query_twins.tolist()]}
        if found.kind is not None:
            query = {**query, "predicted": found.kind.model_dump()}
        return Recommendations.from_records(query, records, plain=True)

    def _rows(self, dist: np.ndarray, ids: np.ndarray, flt: Filter | None) -> tuple[np.ndarray, np.ndarray]:
        """Engine ids (padded with -1) to row positions, with their distances."""
        keep = ids >= 0
        row_of = self._row_of_vector_id
        rows = np.fromiter((row_of[i] for i in ids[keep].tolist()), dtype=np.int64, count=int(keep.sum()))
        if not len(rows) and flt is not None:
            self._check_filter_matches(flt)
        return rows, dist[keep]

    def _record(self, row: int) -> dict[str, Any]:
        """Row ``row`` of the products as a dict of plain Python values (None for missing)."""
        return {name: values[row] for name, values in self._plain_columns()}

    def _records(self, rows: np.ndarray, dist: np.ndarray) -> list[dict[str, Any]]:
        """Result records ``{"id", "distance", attributes...}`` of rows ``rows``."""
        columns = self._plain_columns()
        id_values, others = columns[0][1], columns[1:]
        return [
            {"id": id_values[row], "distance": d, **{name: values[row] for name, values in others}}
            for row, d in zip(rows.tolist(), dist.tolist())
        ]

    def _plain_columns(self) -> list[tuple[str, list[Any]]]:
        """Every column of the products as a list of plain values, ``id`` first; made once (thread-safe).

        Result records are read from these lists: a record costs a few dict
        lookups, where going through the DataFrame costs far more than the search.
        """
        columns = self._plain
        if columns is None:
            with self._lock:
                if self._plain is None:
                    self._plain = [(name, plain_values(self.products[name])) for name in self._columns]
                columns = self._plain
        return columns

    def _check_filter_matches(self, flt: Filter) -> None:
        """QueryError, with examples of the values, when no product at all matches ``flt``."""
        if flt.mask(self.products).any():
            return  # products match, but none is left once the query product is excluded
        hints = []
        for key in flt.attributes:
            values = self.products[key].dropna().astype(str).value_counts().index[:8]
            hints.append(f"{key} has e.g. {', '.join(values)}")
        raise QueryError(f"no product matches the filter {flt.to_dict()!r}; {'; '.join(hints)}")


class _Found(NamedTuple):
    """One query's results: row positions and distances, nearest first; with dedupe, what was collapsed.

    ``twins[i]`` are the rows collapsed into result ``i``; ``query_twins`` the
    rows collapsed into the query product. Both None without dedupe.
    """

    rows: np.ndarray
    distances: np.ndarray
    twins: list[np.ndarray] | None = None
    query_twins: np.ndarray | None = None
    kind: KindPrediction | None = None  # the photo's predicted kind, with prefer_kind


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
