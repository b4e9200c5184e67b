"""The Kaggle layout: ``styles.csv`` + ``images/<id>.jpg`` (+ ``images.csv`` links).

:func:`read_styles` reads ``styles.csv`` as Kaggle ships it, repairing rows with
unquoted commas in the product name when nothing else can hold them;
:func:`load_kaggle_layout` turns a Kaggle-layout folder into a
:class:`~fashionrec.catalog.Catalog`.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from ..errors import CatalogError
from .model import (
    MISSING_VALUES,
    STYLE_COLUMNS,
    Catalog,
    attach_images,
    list_images,
    read_text_csv,
    reject_duplicate_ids,
)

log = logging.getLogger(__name__)

NAME_COLUMN = "productDisplayName"
"""The free-text column of ``styles.csv``: kept verbatim (not stripped), and the
only column unquoted commas are rejoined into."""

_INTEGER = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: "1e3", "2011.0", "²" or "١٢" are not integers
_INT64_MAX = 2**63 - 1
_LINE_BREAKS = re.compile(rb"\r\n|\r|\n")  # one line break each, as the csv module counts lines


def read_styles(path: str | os.PathLike) -> tuple[pd.DataFrame, list[int]]:
    """Read a Kaggle ``styles.csv``: every field where it belongs, or a :class:`CatalogError`.

    Returns ``(products, repaired_lines)``: one row per data line, in file order,
    with the header's columns; ``id`` and ``year`` are ``Int64``, every other
    column text (``string``). ``repaired_lines`` are the 1-based lines whose
    unquoted commas were rejoined into ``productDisplayName``.

    Values: every field but ``productDisplayName`` loses its surrounding
    whitespace; a field that is empty or ``NA`` once stripped is missing
    (``<NA>``), the name included, which is otherwise kept verbatim. ``id`` must
    be a unique integer and ``year`` an integer or missing: ASCII digits with an
    optional sign, within 64 bits (``1e3`` or ``2011.0`` are refused, never
    rounded). Blank lines are skipped; a UTF-8 byte-order mark and CR, LF or
    CRLF line ends are fine.

    Unquoted commas. A row with more fields than the header has its extra
    fields joined back into the last column, with the commas they were split
    on, only when the commas can only be in the name, that is when:

    1. the last column is ``productDisplayName``, and some row of the file has
       the header's number of fields (else the header is the likelier culprit);
    2. ``year`` holds an integer or nothing where it stands (a comma in an
       earlier field would have pushed another value there);
    3. no number ``s`` of commas in the fields before ``year`` fits: the field
       ``s`` places after ``year``, which would then be the year, is neither an
       integer nor missing (the same holds for ``id`` when it is not first);
    4. the columns between ``year`` and the name (``usage``) cannot hold it:
       the first extra piece, which would be (part of) their value, is none of
       their values in the file's well-formed rows and has more words than
       each of those. ``...,2012,Casual,Sports,Nice Shirt`` is refused
       (``Casual,Sports`` could be the usage), and so is
       ``...,Casual,Weekend,Nice Shirt`` even where ``Weekend`` is no usage
       value (one word, it could end one); the real file's ``...,2017,Casual,
       Boss Men Perfume, After Shave Balm and Shower Gel Set`` is repaired, as
       no usage value there has three words.

    Rule 4 takes usage values to be short labels the file repeats: a comma in
    a usage value that no other row has, followed by more words than any usage
    value of the file, cannot be told from a comma in the name. Rules 2 and 3
    refuse a row whose usage is missing (``NA``) or a number: a year pushed
    there by a comma further left would look the same. A refused row raises
    :class:`CatalogError` naming its line and asking to quote the field.

    Raises :class:`CatalogError` naming the file and the line (and the column
    when known) for bytes that are not UTF-8; a NUL character (a UTF-16 file?);
    a header without ``id`` or with a column twice; a line break inside a
    quoted field (each record must fit on its line: a stray quote at the start
    of a field would otherwise swallow the lines up to the next quote); text
    after a closing quote, or a quote never closed; a row with too few fields,
    or extra fields that cannot be repaired for certain; a bad id or year; a
    duplicate id.
    """
    path = Path(path)
    text = _read_text(path)
    names: list[str] = []  # the header once read, to name columns in parse errors
    records = _records(path, text, names)
    try:
        header_line, raw_header = next(records)
    except StopIteration:
        raise CatalogError(f"{path} is empty; expected a header line with {', '.join(STYLE_COLUMNS)}") from None
    _check_characters(path, header_line, raw_header, names)
    header = [h.strip() for h in raw_header]
    _check_header(path, header_line, header)
    names.extend(header)
    width = len(header)

    rows: list[list[str]] = []
    lines: list[int] = []  # file line of each row, for error messages
    repaired: list[int] = []
    overlong: list[tuple[int, list[str]]] = []  # (index in rows, raw fields) of rows with extra fields
    for line, fields in records:
        _check_characters(path, line, fields, names)
        if not fields or (len(fields) == 1 and not fields[0].strip()):
            continue  # blank line
        if len(fields) < width:
            raise CatalogError(
                f"{path}, line {line}: {len(fields)} fields, expected {width} ({', '.join(header)}); got {fields!r}"
            )
        if len(fields) > width:
            # Unquoted commas: rejoined into the name, then checked below against the well-formed rows.
            overlong.append((len(rows), fields))
            fields = fields[: width - 1] + [",".join(fields[width - 1 :])]
            repaired.append(line)
        rows.append(fields)
        lines.append(line)
    if overlong:
        _check_repairs(path, header, rows, lines, overlong)

    frame = _to_frame(path, header, rows, lines)
    reject_duplicate_ids(frame, path, lines)
    return frame, repaired


def _read_text(path: Path) -> str:
    """The file's text (UTF-8, an optional byte-order mark dropped); :class:`CatalogError` naming the line of a bad byte."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"cannot open {path}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = len(_LINE_BREAKS.findall(data, 0, exc.start)) + 1
        utf16 = " (a UTF-16 file?)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise CatalogError(
            f"{path}, line {line}: not UTF-8 text ({exc.reason} at byte {exc.start}){utf16}; save it as UTF-8"
        ) from None


def _records(path: Path, text: str, names: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` for each CSV record of ``text``; ``line`` is the 1-based line the record starts on.

    Quoting is parsed strictly (text after a closing quote, or a quote left open
    at the end, is an error, not guessed at); ``names`` (the header, once known)
    names the column in those errors.
    """
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _parse_error(path, text, start, reader.line_num, exc, names) from None
        yield start, fields
        start = reader.line_num + 1


def _parse_error(path: Path, text: str, start: int, end: int, exc: csv.Error, names: Sequence[str]) -> CatalogError:
    """The :class:`CatalogError` for a record (lines ``start``..``end``) the csv module cannot parse."""
    record = "".join(io.StringIO(text, newline="").readlines()[start - 1 : end])
    problem = _quote_problem(record)
    if problem is None:
        if "field limit" in str(exc):
            return CatalogError(f"{path}, line {start}: a field longer than {csv.field_size_limit():,} characters; "
                                "expected the short text fields of a catalog")
        return CatalogError(f"{path}, line {start}: cannot parse: {exc}")
    field, closed = problem
    where = f"{path}, line {start}, {_column(names, field)}"
    fix = "quote the whole field and double each quote inside it (\"\")"
    if not closed:
        return CatalogError(f"{where}: a quote (\") opens a quoted field that is never closed; {fix}")
    if end > start:
        return CatalogError(
            f"{where}: a quoted field runs on to line {end}, where its closing quote is followed by text; "
            f"a stray quote (\") at the start of the field? Else {fix}"
        )
    return CatalogError(f"{where}: text after the closing quote of a quoted field; {fix}")


def _quote_problem(record: str) -> tuple[int, bool] | None:
    """Where strict CSV quoting fails in one record's text: ``(0-based field, closed)``, or None.

    ``closed`` is True for text after a closing quote, False for a quote never
    closed. Mirrors the csv module's default dialect (``,`` and ``"``, quotes
    doubled inside a quoted field, a quote inside an unquoted field is text).
    """
    field, state = 0, "start"  # state: start of a field, plain field, quoted field, just after a closing quote
    for ch in record:
        if state == "quoted":
            if ch == '"':
                state = "closed"
        elif state == "closed" and ch == '"':
            state = "quoted"  # a doubled quote inside the quoted field
        elif ch == ",":
            field, state = field + 1, "start"
        elif ch in "\r\n":
            return None
        elif state == "closed":
            return field, True
        elif state == "start" and ch == '"':
            state = "quoted"
        else:
            state = "plain"
    return (field, False) if state == "quoted" else None


def _column(names: Sequence[str], index: int) -> str:
    """``column NAME`` for field ``index`` (0-based), or ``field N`` where the header has no name for it."""
    return f"column {names[index]}" if index < len(names) else f"field {index + 1}"


def _check_characters(path: Path, line: int, fields: Sequence[str], names: Sequence[str]) -> None:
    """Refuse a line break or a NUL character inside a field, naming the line and the column."""
    for index, value in enumerate(fields):
        if "\r" in value or "\n" in value:
            raise CatalogError(
                f"{path}, line {line}, {_column(names, index)}: a line break inside a quoted field; each record "
                "must fit on one line (a stray quote (\") at the start of a field runs on to the next quote)"
            )
        if "\x00" in value:
            raise CatalogError(
                f"{path}, line {line}, {_column(names, index)}: a NUL character; the file is not plain "
                "UTF-8 text (a UTF-16 file?); save it as UTF-8"
            )


def _check_header(path: Path, line: int, header: Sequence[str]) -> None:
    """Refuse a header without ``id`` or with a column name twice."""
    if "id" not in header:
        raise CatalogError(f"{path}, line {line}: no 'id' column; header is {list(header)}")
    seen: dict[str, int] = {}
    for index, name in enumerate(header):
        if name in seen:
            raise CatalogError(
                f"{path}, line {line}: column {name!r} appears twice in the header (fields {seen[name] + 1} "
                f"and {index + 1}); each column needs its own name"
            )
        seen[name] = index


def _check_repairs(
    path: Path, header: list[str], rows: list[list[str]], lines: list[int], overlong: list[tuple[int, list[str]]]
) -> None:
    """Refuse the rows with extra fields unless each can be repaired for certain (rules of :func:`read_styles`)."""
    width = len(header)
    row, fields = overlong[0]
    if header[-1] != NAME_COLUMN:
        raise CatalogError(
            f"{_too_many(path, header, fields, lines[row])}; only commas in the last column, {NAME_COLUMN}, "
            f"are repaired, and the last column is {header[-1]!r}: quote the field that holds the comma"
        )
    if len(overlong) == len(rows):
        # Nothing to compare with, and every row too long: more likely a column missing from the header.
        raise CatalogError(
            f"{_too_many(path, header, fields, lines[row])}; no row has the header's {width} fields "
            "(is a column missing from the header?): quote the field that holds the comma"
        )
    typed = [(header.index(c), c) for c in ("id", "year") if c in header[:-1]]
    anchor = max(t for t, _ in typed)
    between = list(range(anchor + 1, width - 1))
    joined = {i for i, _ in overlong}
    known = {
        value
        for i, fields in enumerate(rows)
        if i not in joined
        for j in between
        if (value := fields[j].strip()) not in MISSING_VALUES
    }
    longest = max((len(value.split()) for value in known), default=0)
    for row, fields in overlong:
        _check_repair(path, header, fields, lines[row], typed, between, known, longest)


def _check_repair(
    path: Path,
    header: list[str],
    fields: list[str],
    line: int,
    typed: list[tuple[int, str]],
    between: list[int],
    known: set[str],
    longest: int,
) -> None:
    """Refuse a row with extra fields unless its extra commas can only be in the name.

    Applies rules 2 to 4 of :func:`read_styles` to the row's raw ``fields``:
    ``typed`` are the positions of ``id`` and ``year`` before the name,
    ``between`` the positions after the last of them and before the name,
    ``known`` the values those take in well-formed rows and ``longest`` the
    most words one of those has. Raises :class:`CatalogError` naming ``line``.
    """
    width = len(header)
    hint = _too_many(path, header, fields, line)
    for t, column in typed:
        if t == 0:
            continue  # nothing before it to hold a comma; a bad value there is reported as such later
        value = fields[t].strip()
        if not _fits(column, value):
            raise CatalogError(
                f"{hint} in a field before {header[-1]} ({column} would be {value!r}); "
                "quote the field that holds the comma"
            )
        for shift in range(1, len(fields) - width + 1):
            moved = fields[t + shift].strip()
            if _fits(column, moved):
                raise CatalogError(
                    f"{hint}: it could be in a field before {column} (then {column} would be {moved!r}) "
                    f"or in {header[-1]}; quote the field that holds the comma"
                )
    if between:
        piece = fields[width - 1].strip()
        if piece in known or len(piece.split()) <= longest:
            where = header[between[0]] if len(between) == 1 else f"one of {', '.join(header[j] for j in between)}"
            raise CatalogError(
                f"{hint}: it could be in {where} ({fields[width - 2].strip()!r}, {piece!r}) or in "
                f"{header[-1]}; quote the field that holds the comma"
            )


def _too_many(path: Path, header: Sequence[str], fields: Sequence[str], line: int) -> str:
    """The start of the message for a row with more fields than the header."""
    extra = len(fields) - len(header)
    commas = "an unquoted comma" if extra == 1 else f"{extra} unquoted commas"
    return f"{path}, line {line}: {len(fields)} fields, expected {len(header)} ({', '.join(header)}); {commas}"


def _fits(column: str, value: str) -> bool:
    """Whether the stripped ``value`` can stand in ``column`` (``id``: an integer; ``year``: one, or missing)."""
    return (column == "year" and value in MISSING_VALUES) or _INTEGER.fullmatch(value) is not None


def _to_frame(path: Path, header: list[str], rows: list[list[str]], lines: list[int]) -> pd.DataFrame:
    """The products frame: values stripped (but the name) and missing values mapped, ``id``/``year`` as ``Int64``."""
    columns: dict[str, pd.api.extensions.ExtensionArray] = {}
    for j, column in enumerate(header):
        verbatim = column == NAME_COLUMN
        values = [_text_value(fields[j], verbatim) for fields in rows]
        if column in ("id", "year"):
            columns[column] = _integers(values, path, column, lines, required=column == "id")
        else:
            columns[column] = pd.array(values, dtype="string")
    return pd.DataFrame(columns, columns=header)


def _text_value(field: str, verbatim: bool) -> str | None:
    """A field's value: None when empty or ``NA`` once stripped, else stripped (or kept as is when ``verbatim``)."""
    stripped = field.strip()
    if stripped in MISSING_VALUES:
        return None
    return field if verbatim else stripped


def _integers(
    values: Sequence[str | None], path: Path, name: str, lines: Sequence[int], *, required: bool = False
) -> pd.api.extensions.ExtensionArray:
    """``values`` as ``Int64``; :class:`CatalogError` naming the line of the first one that is not a 64-bit integer."""
    numbers: list[int | None] = []
    for row, value in enumerate(values):
        if value is None:
            if required:
                raise CatalogError(f"{path}, line {lines[row]}: {name} is missing (empty or NA); expected an integer")
            numbers.append(None)
            continue
        if _INTEGER.fullmatch(value) is None:
            raise CatalogError(f"{path}, line {lines[row]}: {name} {value!r} is not an integer")
        number = int(value)
        if abs(number) > _INT64_MAX:
            raise CatalogError(
                f"{path}, line {lines[row]}: {name} {value!r} is out of range; expected an integer between "
                f"{-_INT64_MAX:,} and {_INT64_MAX:,}"
            )
        numbers.append(number)
    return pd.array(numbers, dtype="Int64")


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
