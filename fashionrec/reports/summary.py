"""Counting a catalog's products by attribute: the ``summary.json`` mapping.

:func:`summarize` returns a JSON-ready ``dict`` with these keys (every mapping
of counts is ordered by count, descending, ties by value; a missing attribute
value is counted under :data:`MISSING`, ``"(missing)"``):

``catalog``
    The catalog folder (string).
``source``
    ``"kaggle"`` (``styles.csv`` layout) or ``"folder"`` (plain image folder).
``where``
    The attribute filter applied, ``{attribute: [allowed values, ...]}``, or
    ``null`` for the whole catalog.
``total_products``
    Number of products (rows) after the filter.
``with_image`` / ``without_image``
    Products that have / lack an image file (``has_image``). A file that exists
    but cannot be decoded counts as *with* an image here.
``repaired_rows``
    Rows of the catalog CSV whose unquoted commas were rejoined
    (:attr:`Catalog.repaired_lines`); counted over the whole file, before any
    filter. ``repaired_lines`` lists their 1-based line numbers.
``attributes``
    The attribute columns the catalog has (a plain image folder may have none).
``counts``
    ``{attribute: {value: count}}`` for each of :data:`COUNT_COLUMNS`
    (``gender``, ``masterCategory``, ``subCategory``, ``articleType`` (top 20),
    ``baseColour`` (top 15), ``season``, ``usage`` and ``year``, values as
    strings, e.g. ``"2012"``) that the catalog has; absent columns are left out.
``distinct``
    ``{attribute: number of distinct non-missing values}`` for the same
    attributes, so truncated lists (``articleType``, ``baseColour``) say how
    many values they leave out.
``gender_x_masterCategory``
    ``{gender: {masterCategory: count}}`` (missing values as ``"(missing)"``,
    zero cells left out); ``{}`` unless the catalog has both columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..catalog import Catalog, normalize_where

MISSING = "(missing)"
"""Key under which missing attribute values are counted."""

COUNT_COLUMNS: dict[str, int | None] = {
    "gender": None,
    "masterCategory": None,
    "subCategory": None,
    "articleType": 20,
    "baseColour": 15,
    "season": None,
    "usage": None,
    "year": None,
}
"""Attributes counted in ``summary.json``, with the top-N limit (None: all values)."""


def count_values(values: pd.Series, top: int | None = None) -> dict[str, int]:
    """``{value as text: count}`` ordered by count desc then value; missing values under :data:`MISSING`.

    ``top`` keeps only the first ``top`` entries (None: all).
    """
    text = values.astype("string").fillna(MISSING)
    counts = text.value_counts(sort=False)
    frame = pd.DataFrame({"value": counts.index.astype(str), "count": counts.to_numpy(dtype=np.int64)})
    frame = frame.sort_values(["count", "value"], ascending=[False, True], kind="stable")
    if top is not None:
        frame = frame.head(top)
    return {str(v): int(c) for v, c in zip(frame["value"], frame["count"])}


def cross_counts(rows: pd.Series, cols: pd.Series) -> dict[str, dict[str, int]]:
    """``{row value: {column value: count}}`` of two aligned columns; zero cells left out.

    Rows and columns are in :func:`count_values` order; missing values under :data:`MISSING`.
    """
    r = rows.astype("string").fillna(MISSING)
    c = cols.astype("string").fillna(MISSING)
    pairs = pd.DataFrame({"r": r, "c": c}).value_counts(sort=False)
    row_order = list(count_values(rows))
    col_order = list(count_values(cols))
    out: dict[str, dict[str, int]] = {}
    for rv in row_order:
        cells = {cv: int(pairs.get((rv, cv), 0)) for cv in col_order}
        out[rv] = {k: v for k, v in cells.items() if v}
    return out


def summarize(catalog: Catalog, *, where: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Count a catalog's products by attribute; the ``summary.json`` mapping.

    ``where`` is the attribute filter the caller applied (recorded under
    ``"where"``). It is also applied here, which changes nothing when
    ``catalog`` is already the filtered one; an unknown attribute raises
    :class:`~fashionrec.errors.CatalogError`. See the module docstring for
    every key.
    """
    where_norm = normalize_where(where, list(catalog.products.columns)) if where else None
    if where_norm:
        catalog = catalog.select(where_norm)
    products = catalog.products
    has_image = products["has_image"].astype(bool) if "has_image" in products.columns else pd.Series(
        False, index=products.index
    )
    present = [c for c in COUNT_COLUMNS if c in products.columns]
    counts = {c: count_values(products[c], COUNT_COLUMNS[c]) for c in present}
    cross = (
        cross_counts(products["gender"], products["masterCategory"])
        if {"gender", "masterCategory"} <= set(products.columns)
        else {}
    )
    return {
        "catalog": str(catalog.root),
        "source": catalog.source,
        "where": where_norm or None,
        "total_products": int(len(products)),
        "with_image": int(has_image.sum()),
        "without_image": int((~has_image).sum()),
        "repaired_rows": len(catalog.repaired_lines),
        "repaired_lines": [int(n) for n in catalog.repaired_lines],
        "attributes": list(catalog.attributes),
        "counts": counts,
        "distinct": {c: int(products[c].nunique(dropna=True)) for c in present},
        "gender_x_masterCategory": cross,
    }
