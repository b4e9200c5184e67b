"""The catalog's data model: :class:`Catalog`, its columns, and the rules every loader applies.

A :class:`Catalog`'s ``products`` DataFrame has one row per product: ``id``
first (a unique ``Int64`` when every id is an integer, else text), then the
attribute columns, then the bookkeeping columns of :data:`BOOKKEEPING_COLUMNS`:
``image`` (path relative to the catalog root, ``<NA>`` without a file),
``has_image`` (bool) and, when ``images.csv`` gives URLs, ``link``.

The helpers below the class (:func:`list_images`, :func:`attach_images`,
:func:`reject_duplicate_ids`, :func:`read_text_csv`) are shared by the two
loaders (:mod:`.kaggle` and :mod:`.folder`) so both build that frame the same way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import CatalogError
from .filters import where_mask

STYLE_COLUMNS: tuple[str, ...] = (
    "id",
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "year",
    "usage",
    "productDisplayName",
)
"""Columns of the Kaggle ``styles.csv``, in file order."""

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
"""File extensions (compared lower-case) taken as product images."""

BOOKKEEPING_COLUMNS: tuple[str, ...] = ("image", "has_image", "link")
"""Columns the loaders add to ``products``; everything else but ``id`` is an attribute."""

MISSING_VALUES: tuple[str, ...] = ("", "NA")
"""Field values read as missing. The Kaggle file writes missing values as a
literal ``NA`` (316 ``usage`` fields) or leaves them empty."""

ORIGINAL_SUBSET: dict[str, str] = {"gender": "Women", "masterCategory": "Footwear"}
"""The subset the original design recommends within: women's footwear."""


class Catalog:
    """Products of one catalog folder.

    Parameters
    ----------
    root:
        The folder the ``image`` paths are relative to.
    products:
        One row per product: ``id`` first, attributes, then ``image``
        (relative path, ``<NA>`` when no file exists), ``has_image`` (bool) and,
        when known, ``link`` (image URL).
    repaired_lines:
        1-based line numbers of CSV rows whose unquoted commas were rejoined.
    source:
        ``"kaggle"`` for the styles.csv layout, ``"folder"`` for a plain folder.
    csv_path:
        The metadata CSV the products were read from, None for a folder of images only.
    """

    def __init__(
        self,
        root: Path,
        products: pd.DataFrame,
        *,
        repaired_lines: Sequence[int] = (),
        source: str = "kaggle",
        csv_path: Path | None = None,
    ):
        self.root = Path(root)
        self.products = products
        self.repaired_lines = tuple(repaired_lines)
        self.source = source
        self.csv_path = csv_path

    def __len__(self) -> int:
        return len(self.products)

    def __repr__(self) -> str:
        return (
            f"Catalog(root={str(self.root)!r}, products={len(self)}, "
            f"with_image={self.n_with_image}, source={self.source!r})"
        )

    @property
    def attributes(self) -> list[str]:
        """Attribute column names (everything but ``id`` and bookkeeping)."""
        return [c for c in self.products.columns if c != "id" and c not in BOOKKEEPING_COLUMNS]

    @property
    def n_with_image(self) -> int:
        """Number of products whose image file exists."""
        return int(self.products["has_image"].sum())

    def image_path(self, product_id: Any) -> Path | None:
        """Absolute path of a product's image file, or None when it has none.

        ``product_id`` may be given as text (``"15970"``); it is converted to the
        ids' type. Raises :class:`CatalogError` for an id the catalog lacks.
        """
        rows = self.products.loc[self.products["id"] == coerce_id(product_id, self.products["id"])]
        if rows.empty:
            raise CatalogError(f"unknown product id {product_id!r} in catalog {self.root}")
        rel = rows["image"].iloc[0]
        return None if pd.isna(rel) else self.root / rel

    def image_paths(self) -> list[Path | None]:
        """Absolute image paths aligned with ``products`` rows (None where missing)."""
        return [None if pd.isna(rel) else self.root / rel for rel in self.products["image"]]

    def select(self, where: Mapping[str, Any] | None) -> Catalog:
        """The products whose attributes match ``where`` (a mapping or a :class:`~fashionrec.catalog.filters.Filter`).

        An empty or None ``where`` returns this catalog itself.
        """
        if not where:
            return self
        mask = where_mask(self.products, where)
        return Catalog(
            self.root,
            self.products.loc[mask].reset_index(drop=True),
            repaired_lines=self.repaired_lines,
            source=self.source,
            csv_path=self.csv_path,
        )


def coerce_id(product_id: Any, ids: pd.Series) -> Any:
    """Convert a user-given id (often a string from the CLI) to the ids' dtype.

    Integer ids (``Int64``) get ``int(product_id)``; any other ids get
    ``str(product_id)``. Raises :class:`CatalogError` for text that is not an
    integer when the ids are.
    """
    if pd.api.types.is_integer_dtype(ids.dtype):
        try:
            return int(product_id)
        except (TypeError, ValueError):
            raise CatalogError(f"product id {product_id!r} is not an integer, as this catalog's ids are") from None
    return str(product_id)


# --------------------------------------------------------------------------- shared by the loaders


def list_images(folder: Path) -> dict[str, str]:
    """``{stem: file name}`` of the image files directly in ``folder`` (empty when it is absent).

    When two files share a stem (``1.jpg``, ``1.png``), the first one listed wins.
    """
    if not folder.is_dir():
        return {}
    found: dict[str, str] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in IMAGE_EXTENSIONS and entry.is_file():
                found.setdefault(stem, entry.name)
    return found


def attach_images(products: pd.DataFrame, images: Mapping[str, str], prefix: str) -> None:
    """Add ``image`` (``prefix`` + file name, missing without a file) and ``has_image``, in place.

    ``images`` maps a product id, as text, to its file name (see :func:`list_images`).
    """
    names = products["id"].astype(str).map(images).astype("string")
    products["image"] = (prefix + names).astype("string")
    products["has_image"] = products["image"].notna().to_numpy(dtype=bool)


def file_line(lines: Sequence[int] | None, row: int) -> int:
    """1-based file line of data row ``row``: ``lines[row]`` when known, else ``row + 2`` (header on line 1)."""
    return lines[row] if lines is not None else row + 2


def reject_duplicate_ids(frame: pd.DataFrame, path: Path, lines: Sequence[int] | None = None) -> None:
    """Raise :class:`CatalogError` naming the file lines of the first repeated ``id``, if any."""
    dup = frame["id"].duplicated(keep=False)
    if dup.any():
        ids = frame.loc[dup, "id"]
        first = ids.iloc[0]
        rows = [file_line(lines, int(i)) for i in ids.index[ids == first]]
        raise CatalogError(
            f"{path}: duplicate product id {first} on lines {rows}; "
            f"{ids.nunique()} id(s) repeat in all; ids must be unique"
        )


def read_text_csv(path: Path) -> pd.DataFrame:
    """A small CSV with every field as text (no NA guessing); :class:`CatalogError` naming the file."""
    try:
        return pd.read_csv(path, dtype="string", keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CatalogError(f"cannot read {path}: {exc}") from None
