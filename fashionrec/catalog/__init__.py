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
:mod:`.kaggle` (``styles.csv`` and the Kaggle layout), :mod:`.folder` (finding
and loading a catalog folder), :mod:`.hub` (KaggleHub download and cache).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from ..errors import CatalogError
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
    "STYLE_COLUMNS", "Catalog", "coerce_id", "download", "find_catalog_root", "kaggle_cached_copy", "load_catalog",
    "normalize_where", "parse_where", "read_styles", "where_mask",
]


# --------------------------------------------------------------------------- where (filters)
# These three functions are moving to fashionrec/catalog/filters.py; until then
# they live here, in this block, and need only pandas, CatalogError and
# BOOKKEEPING_COLUMNS (from .model) above.


def parse_where(items: Iterable[str] | None) -> dict[str, list[str]]:
    """Parse CLI filters ``KEY=VALUE`` into ``{KEY: [VALUE, ...]}``.

    Repeating a key allows several values (``--where articleType=Heels
    --where articleType=Flats``).
    """
    where: dict[str, list[str]] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CatalogError(f"filter {item!r} is not KEY=VALUE (e.g. gender=Women)")
        where.setdefault(key.strip(), []).append(value.strip())
    return where


def normalize_where(where: Mapping[str, Any] | None, columns: Sequence[str]) -> dict[str, list[str]]:
    """Validate a filter mapping against ``columns``; values become lists of strings."""
    out: dict[str, list[str]] = {}
    for key, value in (where or {}).items():
        if key not in columns:
            known = ", ".join(c for c in columns if c not in BOOKKEEPING_COLUMNS)
            raise CatalogError(f"unknown attribute {key!r} in filter; known attributes: {known}")
        values = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
        out[key] = [str(v) for v in values]
    return out


def where_mask(products: pd.DataFrame, where: Mapping[str, Any] | None) -> pd.Series:
    """Boolean mask of rows whose attributes equal one of the allowed values.

    ``where`` maps an attribute to a value or a list of allowed values; all
    attributes must match (AND), any listed value may (OR). Values compare as
    text, case-insensitively (``gender=women`` matches ``Women``; ``year=2012``
    matches the integer 2012). Missing values never match.
    """
    mask = pd.Series(True, index=products.index)
    for key, values in normalize_where(where, list(products.columns)).items():
        column = products[key].astype("string").str.casefold()
        allowed = {v.casefold() for v in values}
        mask &= column.isin(allowed).fillna(False).astype(bool)
    return mask


# --------------------------------------------------------------------------- end of where (filters)
