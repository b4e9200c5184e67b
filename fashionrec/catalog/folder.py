"""Finding and loading a catalog folder, in either layout.

:func:`load_catalog` is the entry point: it finds the catalog root
(:func:`find_catalog_root`) and reads a Kaggle layout (:mod:`.kaggle`) or a
plain folder of images whose file stems are the product ids, with an optional
CSV of attributes (an ``id`` column and any others).
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import pandas as pd

from ..errors import CatalogError
from .kaggle import load_kaggle_layout
from .model import (
    IMAGE_EXTENSIONS,
    MISSING_VALUES,
    Catalog,
    attach_images,
    file_line,
    list_images,
    read_text_csv,
    reject_duplicate_ids,
)

log = logging.getLogger(__name__)


def find_catalog_root(path: str | os.PathLike) -> Path:
    """The folder that holds ``styles.csv``: ``path`` itself or one level down.

    KaggleHub's small variant unpacks to ``<cache>/.../versions/1/myntradataset/``.
    Returns ``path`` unchanged when neither has a ``styles.csv`` (a plain folder).
    Raises :class:`CatalogError` when ``path`` does not exist or is not a folder,
    or when a ``styles.csv`` there is not a file (a folder of that name).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CatalogError(f"catalog folder {path} does not exist")
    if not path.is_dir():
        raise CatalogError(f"catalog {path} is not a folder; expected styles.csv + images/ or a folder of images")
    _check_styles_is_file(path / "styles.csv")
    if (path / "styles.csv").is_file():
        return path
    below = sorted(p.parent for p in path.glob("*/styles.csv"))
    for styles in below:
        _check_styles_is_file(styles / "styles.csv")
    if len(below) > 1:
        log.warning("several catalogs under %s; using %s", path, below[0])
    return below[0] if below else path


def _check_styles_is_file(styles: Path) -> None:
    """Refuse a ``styles.csv`` that exists but is not a file (a folder, a socket...).

    Ignoring it would silently index the folder as plain images.
    """
    if styles.exists() and not styles.is_file():
        kind = "a folder" if styles.is_dir() else "not a regular file"
        raise CatalogError(
            f"{styles} is {kind}; expected styles.csv to be the Kaggle catalog's CSV file "
            "(rename or remove it to index the folder as plain images)"
        )


def load_catalog(path: str | os.PathLike, *, csv_path: str | os.PathLike | None = None) -> Catalog:
    """Load a catalog folder (Kaggle layout or a plain folder of images).

    ``csv_path`` names the metadata CSV of a plain folder explicitly; by default
    the folder's only ``*.csv`` with an ``id`` column is used, if any.
    """
    root = find_catalog_root(path)
    if (root / "styles.csv").is_file():
        return load_kaggle_layout(root)
    return load_image_folder(root, Path(csv_path) if csv_path else None)


def load_image_folder(root: Path, csv_path: Path | None) -> Catalog:
    """The catalog of a plain folder: images (in ``root`` or ``root/images``) named by product id.

    With ``csv_path`` (or the folder's only CSV with an ``id`` column) its rows
    are the products, in file order; otherwise every image is a product, sorted
    by id. Ids (and ``year``) become ``Int64`` when every value is an integer.
    """
    image_dir = root / "images" if (root / "images").is_dir() else root
    images = list_images(image_dir)
    prefix = "images/" if image_dir != root else ""
    if csv_path is None:
        candidates = [p for p in sorted(root.glob("*.csv")) if _has_id_column(p)]
        csv_path = candidates[0] if len(candidates) == 1 else None
    if csv_path is not None:
        products = read_text_csv(csv_path)
        if "id" not in products.columns:
            raise CatalogError(f"{csv_path}: no 'id' column; columns are {list(products.columns)}")
        products = products.replace(list(MISSING_VALUES), pd.NA)
        products = products[["id"] + [c for c in products.columns if c != "id"]]
        if products["id"].isna().any():
            row = int(products["id"].isna().to_numpy().nonzero()[0][0])
            raise CatalogError(f"{csv_path}, line {file_line(None, row)}: empty id")
    else:
        if not images:
            raise CatalogError(
                f"{root} holds neither styles.csv nor image files ({', '.join(IMAGE_EXTENSIONS)}); "
                "expected a Kaggle catalog folder or a folder of product images"
            )
        products = pd.DataFrame({"id": pd.array(sorted(images), dtype="string")})
    ids = products["id"]
    numeric = pd.to_numeric(ids, errors="coerce")
    if numeric.notna().all() and (numeric % 1 == 0).all():
        products["id"] = numeric.astype("Int64")
    if "year" in products.columns:
        year = pd.to_numeric(products["year"], errors="coerce")
        if (year.notna() | products["year"].isna()).all():
            products["year"] = year.astype("Int64")
    reject_duplicate_ids(products, csv_path or root)
    attach_images(products, images, prefix)
    return Catalog(root, products.reset_index(drop=True), source="folder", csv_path=csv_path)


def _has_id_column(path: Path) -> bool:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return "id" in [h.strip() for h in header]
