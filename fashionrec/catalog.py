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
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import CatalogError, DownloadError

log = logging.getLogger(__name__)

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
BOOKKEEPING_COLUMNS: tuple[str, ...] = ("image", "has_image", "link")
MISSING_VALUES: tuple[str, ...] = ("", "NA")
"""Field values read as missing. The Kaggle file writes missing values as a
literal ``NA`` (316 ``usage`` fields) or leaves them empty."""

ORIGINAL_SUBSET: dict[str, str] = {"gender": "Women", "masterCategory": "Footwear"}
"""The subset the original design recommends within: women's footwear."""

KAGGLE_DATASETS: dict[str, str] = {
    "small": "paramaggarwal/fashion-product-images-small",
    "full": "paramaggarwal/fashion-product-images-dataset",
}


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
        return int(self.products["has_image"].sum())

    def image_path(self, product_id: Any) -> Path | None:
        """Absolute path of a product's image file, or None when it has none."""
        rows = self.products.loc[self.products["id"] == coerce_id(product_id, self.products["id"])]
        if rows.empty:
            raise CatalogError(f"unknown product id {product_id!r} in catalog {self.root}")
        rel = rows["image"].iloc[0]
        return None if pd.isna(rel) else self.root / rel

    def image_paths(self) -> list[Path | None]:
        """Absolute image paths aligned with ``products`` rows (None where missing)."""
        return [None if pd.isna(rel) else self.root / rel for rel in self.products["image"]]

    def select(self, where: Mapping[str, Any] | None) -> Catalog:
        """The products whose attributes match ``where`` (see :func:`where_mask`)."""
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


# --------------------------------------------------------------------------- where


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


def coerce_id(product_id: Any, ids: pd.Series) -> Any:
    """Convert a user-given id (often a string from the CLI) to the ids' dtype."""
    if pd.api.types.is_integer_dtype(ids.dtype):
        try:
            return int(product_id)
        except (TypeError, ValueError):
            raise CatalogError(f"product id {product_id!r} is not an integer, as this catalog's ids are") from None
    return str(product_id)


# --------------------------------------------------------------------------- styles.csv


def read_styles(path: str | os.PathLike) -> tuple[pd.DataFrame, list[int]]:
    """Read a Kaggle ``styles.csv``, repairing what the real file gets wrong.

    Returns ``(products, repaired_lines)``. Rows with more fields than the header
    have unquoted commas in their last column (``productDisplayName``): the extra
    fields are rejoined with the commas they were split on and the 1-based line
    numbers are returned. ``NA`` and empty fields become missing values; ``year``
    is a nullable integer; ``id`` must be a unique integer.

    Raises :class:`CatalogError` naming the file and line for an unreadable file,
    a row with too few fields, a bad id or year, or a duplicate id.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CatalogError(f"{path}, line {line}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    rows: list[list[str]] = []
    lines: list[int] = []  # line number of each row, for error messages
    repaired: list[int] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CatalogError(f"{path} is empty; expected a header line with {', '.join(STYLE_COLUMNS)}") from None
    except csv.Error as exc:
        raise CatalogError(f"{path}, line 1: cannot parse the header: {exc}") from None
    header = [h.strip() for h in header]
    if "id" not in header:
        raise CatalogError(f"{path}, line 1: no 'id' column; header is {header}")
    width = len(header)
    try:
        for fields in reader:
            line = reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line
            if len(fields) > width:
                # Unquoted commas in the last column: rejoin them.
                fields = fields[: width - 1] + [",".join(fields[width - 1 :])]
                repaired.append(line)
            elif len(fields) < width:
                raise CatalogError(
                    f"{path}, line {line}: {len(fields)} fields, expected {width} "
                    f"({', '.join(header)}); got {fields!r}"
                )
            rows.append(fields)
            lines.append(line)
    except csv.Error as exc:
        raise CatalogError(f"{path}, line {reader.line_num}: cannot parse: {exc}") from None

    frame = pd.DataFrame(rows, columns=header, dtype="string")
    frame = frame.replace(list(MISSING_VALUES), pd.NA)
    # Strip stray whitespace, which the repaired names have after the comma only
    # as part of the name itself: keep names verbatim, strip other fields.
    for column in header:
        if column != "productDisplayName":
            frame[column] = frame[column].str.strip()

    frame["id"] = _integer_column(frame["id"], path, "id", lines, required=True)
    if "year" in frame.columns:
        frame["year"] = _integer_column(frame["year"], path, "year", lines)
    _reject_duplicate_ids(frame, path, lines)
    return frame, repaired


def _integer_column(
    values: pd.Series, path: Path, name: str, lines: Sequence[int] | None, *, required: bool = False
) -> pd.Series:
    numeric = pd.to_numeric(values, errors="coerce")
    bad = (numeric.isna() & values.notna()) | (numeric.notna() & (numeric % 1 != 0))
    if required:
        bad |= values.isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise CatalogError(f"{path}, line {_line(lines, row)}: {name} {values.iloc[row]!r} is not an integer")
    return numeric.astype("Int64")


def _line(lines: Sequence[int] | None, row: int) -> int:
    """1-based file line of data row ``row`` (header on line 1)."""
    return lines[row] if lines is not None else row + 2


def _reject_duplicate_ids(frame: pd.DataFrame, path: Path, lines: Sequence[int] | None = None) -> None:
    dup = frame["id"].duplicated(keep=False)
    if dup.any():
        ids = frame.loc[dup, "id"]
        first = ids.iloc[0]
        rows = [_line(lines, int(i)) for i in ids.index[ids == first]]
        raise CatalogError(
            f"{path}: duplicate product id {first} on lines {rows}; "
            f"{ids.nunique()} id(s) repeat in all; ids must be unique"
        )


# --------------------------------------------------------------------------- folders


def find_catalog_root(path: str | os.PathLike) -> Path:
    """The folder that holds ``styles.csv``: ``path`` itself or one level down.

    KaggleHub's small variant unpacks to ``<cache>/.../versions/1/myntradataset/``.
    Returns ``path`` unchanged when neither has a ``styles.csv`` (a plain folder).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise CatalogError(f"catalog folder {path} does not exist")
    if not path.is_dir():
        raise CatalogError(f"catalog {path} is not a folder; expected styles.csv + images/ or a folder of images")
    if (path / "styles.csv").is_file():
        return path
    below = sorted(p.parent for p in path.glob("*/styles.csv"))
    if len(below) > 1:
        log.warning("several catalogs under %s; using %s", path, below[0])
    return below[0] if below else path


def load_catalog(path: str | os.PathLike, *, csv_path: str | os.PathLike | None = None) -> Catalog:
    """Load a catalog folder (Kaggle layout or a plain folder of images).

    ``csv_path`` names the metadata CSV of a plain folder explicitly; by default
    the folder's only ``*.csv`` with an ``id`` column is used, if any.
    """
    root = find_catalog_root(path)
    if (root / "styles.csv").is_file():
        return _load_kaggle(root)
    return _load_image_folder(root, Path(csv_path) if csv_path else None)


def _list_images(folder: Path) -> dict[str, str]:
    """``{stem: file name}`` of the image files directly in ``folder``."""
    if not folder.is_dir():
        return {}
    found: dict[str, str] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in IMAGE_EXTENSIONS and entry.is_file():
                found.setdefault(stem, entry.name)
    return found


def _load_kaggle(root: Path) -> Catalog:
    styles = root / "styles.csv"
    products, repaired = read_styles(styles)
    _attach_images(products, _list_images(root / "images"), "images/")
    links = root / "images.csv"
    if links.is_file():
        products["link"] = _read_links(links, products["id"])
    n_missing = int((~products["has_image"]).sum())
    if repaired:
        log.info("%s: rejoined unquoted commas in %d rows (lines %s)", styles, len(repaired), repaired[:5])
    if n_missing:
        log.info("%s: %d of %d products have no image file", root, n_missing, len(products))
    return Catalog(root, products, repaired_lines=repaired, source="kaggle", csv_path=styles)


def _attach_images(products: pd.DataFrame, images: Mapping[str, str], prefix: str) -> None:
    """Add ``image`` (``prefix`` + file name, missing without a file) and ``has_image`` in place."""
    names = products["id"].astype(str).map(images).astype("string")
    products["image"] = (prefix + names).astype("string")
    products["has_image"] = products["image"].notna().to_numpy(dtype=bool)


def _read_text_csv(path: Path) -> pd.DataFrame:
    """A small CSV with every field as text (no NA guessing); CatalogError naming the file."""
    try:
        return pd.read_csv(path, dtype="string", keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CatalogError(f"cannot read {path}: {exc}") from None


def _read_links(path: Path, ids: pd.Series) -> pd.Series:
    links = _read_text_csv(path)
    if not {"filename", "link"} <= set(links.columns):
        raise CatalogError(f"{path}: expected columns filename, link; got {list(links.columns)}")
    stems = links["filename"].str.rsplit(".", n=1).str[0]
    by_id = dict(zip(stems, links["link"].replace("", pd.NA)))
    return ids.astype(str).map(by_id).astype("string")


def _load_image_folder(root: Path, csv_path: Path | None) -> Catalog:
    image_dir = root / "images" if (root / "images").is_dir() else root
    images = _list_images(image_dir)
    prefix = "images/" if image_dir != root else ""
    if csv_path is None:
        candidates = [p for p in sorted(root.glob("*.csv")) if _has_id_column(p)]
        csv_path = candidates[0] if len(candidates) == 1 else None
    if csv_path is not None:
        products = _read_text_csv(csv_path)
        if "id" not in products.columns:
            raise CatalogError(f"{csv_path}: no 'id' column; columns are {list(products.columns)}")
        products = products.replace(list(MISSING_VALUES), pd.NA)
        products = products[["id"] + [c for c in products.columns if c != "id"]]
        if products["id"].isna().any():
            row = int(products["id"].isna().to_numpy().nonzero()[0][0])
            raise CatalogError(f"{csv_path}, line {_line(None, row)}: empty id")
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
    _reject_duplicate_ids(products, csv_path or root)
    _attach_images(products, images, prefix)
    return Catalog(root, products.reset_index(drop=True), source="folder", csv_path=csv_path)


def _has_id_column(path: Path) -> bool:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return "id" in [h.strip() for h in header]


# --------------------------------------------------------------------------- download


def kaggle_cached_copy(variant: str = "small") -> Path | None:
    """The newest KaggleHub cache copy of a variant, if one was downloaded before."""
    handle = _kaggle_handle(variant)
    try:
        import kagglehub.config

        cache = Path(kagglehub.config.get_cache_folder())
    except Exception:  # kagglehub missing or misconfigured: no cache to offer
        return None
    versions = cache / "datasets" / handle / "versions"
    if not versions.is_dir():
        return None
    for version in sorted(versions.iterdir(), key=lambda p: (len(p.name), p.name), reverse=True):
        try:
            return find_catalog_root(version) if any(version.rglob("styles.csv")) else None
        except CatalogError:
            continue
    return None


def download(variant: str = "small", dest: str | os.PathLike | None = None, *, timeout: float = 10.0) -> Path:
    """Download the Kaggle catalog with KaggleHub and return its catalog folder.

    ``variant`` is ``"small"`` (60x80 images, ~600 MB) or ``"full"``. ``dest``
    copies it into that folder instead of KaggleHub's cache. Fails within
    ``timeout`` seconds with :class:`DownloadError` when Kaggle is unreachable.
    """
    handle = _kaggle_handle(variant)
    _check_reachable(timeout, what=f"download {handle}")
    import kagglehub

    try:
        folder = kagglehub.dataset_download(handle, output_dir=str(dest) if dest else None)
    except Exception as exc:  # kagglehub raises requests/own errors; report them as one line
        raise DownloadError(
            f"KaggleHub could not download {handle}: {exc}. "
            "Check your Kaggle credentials (~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY), "
            "or pass a local catalog folder instead."
        ) from None
    return find_catalog_root(folder)


def _kaggle_handle(variant: str) -> str:
    if variant not in KAGGLE_DATASETS:
        raise DownloadError(f"unknown variant {variant!r}; expected one of {', '.join(KAGGLE_DATASETS)}")
    return KAGGLE_DATASETS[variant]


KAGGLE_HOST: tuple[str, int] = ("www.kaggle.com", 443)


def _check_reachable(timeout: float, *, what: str) -> None:
    """Fail fast, with a useful message, when Kaggle cannot be reached."""
    from .network import reachable

    host, port = KAGGLE_HOST
    if not reachable(host, port, timeout):
        raise DownloadError(
            f"cannot {what}: network unreachable (no connection to {host}:{port}). "
            "Download the catalog on a machine with internet access and pass its folder instead "
            "(e.g. `fashionrec eda /path/to/fashion-product-images-small`), "
            "or run `fashionrec demo` on the generated offline sample."
        )
