"""Stage 1 — the catalog: products, their attributes and their image files.

A catalog is a folder in one of two layouts:

* **Kaggle layout** (``paramaggarwal/fashion-product-images-small`` and the full
  variant): ``styles.csv`` with the columns in :data:`STYLE_COLUMNS`,
  ``images/<id>.jpg``, and optionally ``images.csv`` (``filename``, ``link``).
  KaggleHub returns a folder that may hold this layout one level down
  (``myntradataset/``); :func:`find_catalog_root` looks there too.
* **Plain image folder**: image files (directly or under ``images/``) whose file
  stem is the product id, plus an optional CSV with an ``id`` column giving
  attributes.

:func:`load_catalog` reads either into a :class:`Catalog`, whose ``products``
DataFrame has one row per product: ``id`` first, then the attributes, then the
bookkeeping columns ``image`` (path relative to the catalog root, or missing)
and ``has_image``; ``link`` too when ``images.csv`` gives URLs.

Modules: :mod:`.model` (:class:`Catalog`, its columns, :func:`coerce_id`),
:mod:`.filters` (:class:`Filter`: which products a selection or a search may return),
:mod:`.kaggle` (``styles.csv`` and the Kaggle layout), :mod:`.folder` (finding
and loading a catalog folder), :mod:`.hub` (KaggleHub download and cache).
"""

from __future__ import annotations

from .filters import Filter, normalize_where, parse_where, where_mask
from .folder import find_catalog_root, load_catalog
from .hub import KAGGLE_DATASETS, KAGGLE_HOST, download, kaggle_cached_copy
from .kaggle import read_styles
from .model import (
    BOOKKEEPING_COLUMNS,
    IMAGE_EXTENSIONS,
    MISSING_VALUES,
    ORIGINAL_SUBSET,
    STYLE_COLUMNS,
    Catalog,
    coerce_id,
)

__all__ = [
    "BOOKKEEPING_COLUMNS", "IMAGE_EXTENSIONS", "KAGGLE_DATASETS", "KAGGLE_HOST", "MISSING_VALUES", "ORIGINAL_SUBSET",
    "STYLE_COLUMNS", "Catalog", "Filter", "coerce_id", "download", "find_catalog_root", "kaggle_cached_copy", "load_catalog",
    "normalize_where", "parse_where", "read_styles", "where_mask",
]
