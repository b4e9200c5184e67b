"""The Kaggle layout: ``styles.csv`` + ``images/<id>.jpg`` (+ ``images.csv`` links).

:func:`read_styles` reads ``styles.csv`` as Kaggle ships it, repairing rows with
unquoted commas; :func:`load_kaggle_layout` turns a Kaggle-layout folder into a
:class:`~fashionrec.catalog.Catalog`.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..errors import CatalogError
from .model import (
    MISSING_VALUES,
    STYLE_COLUMNS,
    Catalog,
    attach_images,
    file_line,
    list_images,
    read_text_csv,
    reject_duplicate_ids,
)

log = logging.getLogger(__name__)


def read_styles(path: str | os.PathLike) -> tuple[pd.DataFrame, list[int]]:
    """Read a Kaggle ``styles.csv``, repairing what the real file gets wrong.

    Returns ``(products, repaired_lines)``. Rows with more fields than the header
    have unquoted commas in their last column (``productDisplayName``): the extra
    fields are rejoined with the commas they were split on and the 1-based line
    numbers are returned — only when the comma cannot be elsewhere: a row whose
    ``year`` would not be a year, or whose name would start with a value of the
    column before it (a comma in ``usage``?), is refused with its line instead. ``NA`` and empty fields become missing values; ``year``
    is a nullable integer; ``id`` must be a unique integer.

    Raises :class:`CatalogError` naming the file and line for an unreadable file,
    a row with too few fields, extra fields that cannot be repaired unambiguously,
    a bad id or year, or a duplicate id.
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
    overlong: list[tuple[int, list[str]]] = []  # (index in rows, raw fields) of rows with extra fields
    try:
        for fields in reader:
            line = reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line
            if len(fields) > width:
                # Unquoted commas, rejoined into the last column below when nothing else can hold them.
                overlong.append((len(rows), fields))
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

    if overlong:
        joined = {row for row, _ in overlong}
        before = len(header) - 2  # the column just before the last (usage, before productDisplayName)
        known = {r[before].strip() for i, r in enumerate(rows) if i not in joined} if before >= 0 else set()
        for row, fields in overlong:
            _check_unambiguous_repair(path, header, fields, lines[row], known - set(MISSING_VALUES))

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
    reject_duplicate_ids(frame, path, lines)
    return frame, repaired


def _check_unambiguous_repair(path: Path, header: list[str], fields: list[str], line: int, known: set[str]) -> None:
    """Refuse a row with extra fields unless its extra commas can only be in the last column.

    Rejoining the extras into the last column (``productDisplayName``) is right
    only if no other field holds a comma: then ``year`` still holds a year, and
    the first piece of the name is not a value the column before it (``usage``)
    takes in well-formed rows ("Casual,Sports,Name" could be usage "Casual,Sports").
    Anything else raises :class:`CatalogError` naming the line and asking for quotes.
    """
    width = len(header)
    extra = len(fields) - width
    hint = (f"{path}, line {line}: {len(fields)} fields, expected {width} ({', '.join(header)}); "
            f"{'an unquoted comma' if extra == 1 else f'{extra} unquoted commas'}")
    if "year" in header and header.index("year") < width - 1:
        year = fields[header.index("year")].strip()
        if year not in MISSING_VALUES and not year.lstrip("-").isdigit():
            raise CatalogError(
                f"{hint} in a field before {header[-1]} (year would be {year!r}); "
                "quote the field that holds the comma"
            )
    if width >= 2:
        before = width - 2
        piece = fields[width - 1].strip()
        if piece in known:
            raise CatalogError(
                f"{hint}: it could be in {header[before]} ({fields[before].strip()!r}, {piece!r}) or in "
                f"{header[-1]}; quote the field that holds the comma"
            )


def _integer_column(
    values: pd.Series, path: Path, name: str, lines: Sequence[int] | None, *, required: bool = False
) -> pd.Series:
    """``values`` as ``Int64``; :class:`CatalogError` naming the line of the first non-integer."""
    numeric = pd.to_numeric(values, errors="coerce")
    bad = (numeric.isna() & values.notna()) | (numeric.notna() & (numeric % 1 != 0))
    if required:
        bad |= values.isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise CatalogError(f"{path}, line {file_line(lines, row)}: {name} {values.iloc[row]!r} is not an integer")
    return numeric.astype("Int64")


def read_links(path: Path, ids: pd.Series) -> pd.Series:
    """Image URLs from ``images.csv`` (``filename``, ``link``), aligned with ``ids`` (missing where absent)."""
    links = read_text_csv(path)
    if not {"filename", "link"} <= set(links.columns):
        raise CatalogError(f"{path}: expected columns filename, link; got {list(links.columns)}")
    stems = links["filename"].str.rsplit(".", n=1).str[0]
    by_id = dict(zip(stems, links["link"].replace("", pd.NA)))
    return ids.astype(str).map(by_id).astype("string")


def load_kaggle_layout(root: Path) -> Catalog:
    """The catalog of a folder holding ``styles.csv`` (and ``images/``, ``images.csv`` when present)."""
    styles = root / "styles.csv"
    products, repaired = read_styles(styles)
    attach_images(products, list_images(root / "images"), "images/")
    links = root / "images.csv"
    if links.exists() and not links.is_file():
        raise CatalogError(f"{links} is not a file; expected images.csv to be the CSV of image links "
                           "(filename,link), or no images.csv at all")
    if links.is_file():
        products["link"] = read_links(links, products["id"])
    n_missing = int((~products["has_image"]).sum())
    if repaired:
        log.info("%s: rejoined unquoted commas in %d rows (lines %s)", styles, len(repaired), repaired[:5])
    if n_missing:
        log.info("%s: %d of %d products have no image file", root, n_missing, len(products))
    return Catalog(root, products, repaired_lines=repaired, source="kaggle", csv_path=styles)
