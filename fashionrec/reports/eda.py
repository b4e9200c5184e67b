"""The EDA report of a catalog: ``summary.json``, PNG charts and an HTML page.

:func:`write_report` writes into one folder:

* ``summary.json`` — the counts of :func:`~fashionrec.reports.summary.summarize`
  (every key is documented in :mod:`fashionrec.reports.summary`);
* ``<attribute>.png`` — a bar chart per counted attribute the catalog has,
  ``gender_x_masterCategory.png`` — a heatmap, and ``contact_sheet.png`` —
  sample product pictures by masterCategory (:mod:`fashionrec.reports.charts`);
  charts for absent columns are skipped;
* ``index.html`` — the page (template ``eda.html``): headline figures, notes on
  what the data lacks or what was repaired, and every chart beside its table.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..catalog import Catalog
from ..errors import FashionrecError
from ..output import atomic_write
from . import charts
from .html import Table, render
from .summary import COUNT_COLUMNS, MISSING, summarize

log = logging.getLogger(__name__)

CONTACT_SHEET = "contact_sheet.png"
HEATMAP = "gender_x_masterCategory.png"
SUMMARY_FILE = "summary.json"
PAGE_FILE = "index.html"


@dataclass
class EdaReport:
    """What :func:`write_report` wrote."""

    out_dir: Path
    """The report folder."""
    html: Path
    """The page, ``<out_dir>/index.html``."""
    summary_json: Path
    """The counts, ``<out_dir>/summary.json``."""
    charts: list[Path] = field(default_factory=list)
    """The PNG charts written, in page order (contact sheet first)."""
    summary: dict[str, Any] = field(default_factory=dict)
    """What ``summary.json`` holds (see :mod:`fashionrec.reports.summary`)."""
    unreadable_images: list[str] = field(default_factory=list)
    """Ids of products whose image the contact sheet could not decode."""


@dataclass
class _Section:
    """One chart of the page beside its table (and, folded, a second table)."""

    heading: str
    image: str | None
    alt: str
    table: Table
    details: Table | None = None
    details_label: str = ""


def chart_alt(chart: str | os.PathLike, note: str = "") -> str:
    """Alt text of an EDA chart, from its file name (``gender.png``, ``contact_sheet.png``, ...).

    ``note`` qualifies a bar chart's column, e.g. ``" (top 20 of 143)"``.
    """
    stem = Path(chart).stem
    if stem == Path(CONTACT_SHEET).stem:
        return "Contact sheet: pictures of sample products, one row per masterCategory"
    if stem == Path(HEATMAP).stem:
        return "Heatmap: number of products for each gender and masterCategory"
    return f"Bar chart: number of products per {stem}{note}"


def _share(count: int, total: int) -> str:
    return f"{(100 * count / total if total else 0):.1f}%"


def _count_table(counts: Mapping[str, int], total: int, column: str) -> Table:
    rows = [(value, f"{n:,}", _share(n, total)) for value, n in counts.items()]
    return Table((column, "products", "share"), rows, numeric=(1, 2))


def _cross_table(cross: Mapping[str, Mapping[str, int]]) -> Table:
    cols = list(dict.fromkeys(c for row in cross.values() for c in row))
    rows = [[r, *(f"{cells.get(c, 0):,}" for c in cols)] for r, cells in cross.items()]
    return Table(("gender \\ masterCategory", *cols), rows, numeric=tuple(range(1, len(cols) + 1)), row_headers=True)


def _sheet_section(catalog: Catalog, sheet: charts.ContactSheet, image: Path) -> _Section:
    """The contact sheet beside its groups, and (folded) the products shown with their names."""
    products = catalog.products
    name_col = next((c for c in ("productDisplayName", "articleType") if c in products.columns), None)
    names: dict[str, str] = {}
    if name_col:
        shown = {i for row in sheet.rows for i in row.ids}
        subset = products.loc[products["id"].astype(str).isin(shown), ["id", name_col]]
        names = {str(i): ("" if pd.isna(n) else str(n)) for i, n in zip(subset["id"], subset[name_col])}
    groups = Table(("group", "products", "shown"),
                   [(row.group, f"{row.products:,}", str(len(row.ids))) for row in sheet.rows], numeric=(1, 2))
    items = Table(("group", "id", "name"), [(row.group, i, names.get(i, "")) for row in sheet.rows for i in row.ids])
    return _Section("Sample products", image.name, chart_alt(image), groups, items, "products shown")


def _cards(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    cards = [
        ("products", summary["total_products"]),
        ("with image", summary["with_image"]),
        ("without image", summary["without_image"]),
        ("repaired CSV rows", summary["repaired_rows"]),
    ]
    cards += [(f"distinct {c}", n) for c, n in summary["distinct"].items() if c in ("articleType", "baseColour")]
    return [{"label": label, "value": f"{n:,}"} for label, n in cards]


def _notes(summary: Mapping[str, Any], unreadable: list[str], missing_ids: list[str]) -> list[str]:
    """Sentences on the filter, repaired rows, missing and unreadable images, or an empty report."""
    total = summary["total_products"]
    notes = []
    if summary["where"]:
        cond = "; ".join(f"{k} = {' or '.join(v)}" for k, v in summary["where"].items())
        notes.append(f"Filtered to products where {cond}.")
    if summary["repaired_rows"]:
        lines = ", ".join(str(n) for n in summary["repaired_lines"][:30])
        more = " …" if summary["repaired_rows"] > 30 else ""
        notes.append(
            f"{summary['repaired_rows']:,} row(s) of the CSV had unquoted commas in the product name; "
            f"they were rejoined (lines {lines}{more})."
        )
    if summary["without_image"]:
        ids = ", ".join(missing_ids[:20])
        more = " …" if summary["without_image"] > 20 else ""
        notes.append(f"{summary['without_image']:,} product(s) have no image file (ids {ids}{more}).")
    if unreadable:
        notes.append(
            f"{len(unreadable)} image file(s) drawn for the contact sheet could not be decoded and were skipped "
            f"(ids {', '.join(unreadable[:20])})."
        )
    if not total:
        notes.append("No products to show" + (" (nothing matches the filter)." if summary["where"] else "."))
    elif not summary["counts"]:
        notes.append("This catalog has no attribute columns (a plain image folder): only the contact sheet applies.")
    return notes


def write_report(
    catalog: Catalog,
    out_dir: str | os.PathLike,
    *,
    title: str | None = None,
    where: Mapping[str, Any] | None = None,
) -> EdaReport:
    """Write ``summary.json``, the charts and ``index.html`` for ``catalog`` into ``out_dir``.

    ``where`` is the filter the caller applied (see
    :func:`~fashionrec.reports.summary.summarize`); ``title`` heads the page
    (default ``"Catalog overview — <catalog folder name>"``). Every file is
    written atomically (temporary file, then :func:`os.replace`); existing
    files of an earlier report are overwritten. Raises
    :class:`~fashionrec.errors.FashionrecError` when the folder cannot be
    created or written.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FashionrecError(f"cannot create report folder {out}: {exc.strerror or exc}") from None
    summary = summarize(catalog, where=where)
    if summary["where"]:
        catalog = catalog.select(summary["where"])
    total = summary["total_products"]
    title = title or f"Catalog overview — {catalog.root.name or catalog.root}"
    written: list[Path] = []
    sections: list[_Section] = []
    counts = summary["counts"]
    distinct = summary["distinct"]
    try:
        sheet = charts.contact_sheet(catalog, out / CONTACT_SHEET, total)
        if sheet.path is not None:
            written.append(sheet.path)
            sections.append(_sheet_section(catalog, sheet, sheet.path))
        for column, top in COUNT_COLUMNS.items():
            if not counts.get(column):
                continue  # absent column, or no products
            values = counts[column]
            note = f" (top {len(values)} of {distinct[column]:,})" if top and distinct[column] > len(values) else ""
            if column == "year":
                values = dict(sorted(values.items(), key=lambda kv: (kv[0] == MISSING, kv[0])))
            horizontal = column != "year" and (top is not None or len(values) > 12)
            path = charts.bar_chart(values, column, total, out / f"{column}.png", horizontal=horizontal, note=note,
                                    colours=charts.bar_colours(column, list(values)))
            written.append(path)
            sections.append(_Section(f"{column}{note}", path.name, chart_alt(path, note),
                                     _count_table(values, total, column)))
        if summary["gender_x_masterCategory"]:
            path = charts.heatmap(summary["gender_x_masterCategory"], total, out / HEATMAP)
            written.append(path)
            sections.append(_Section("gender × masterCategory", path.name, chart_alt(path),
                                     _cross_table(summary["gender_x_masterCategory"])))
    except OSError as exc:
        raise FashionrecError(f"cannot write the report into {out}: {exc.strerror or exc}") from None
    products = catalog.products
    missing_ids = (
        products.loc[~products["has_image"].astype(bool), "id"].astype(str).tolist()[:20]
        if "has_image" in products.columns
        else []
    )
    summary_path = out / SUMMARY_FILE
    html_path = out / PAGE_FILE
    try:
        summary_text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
        page = render(
            "eda.html", title=title, catalog=summary["catalog"], source=summary["source"], cards=_cards(summary),
            notes=_notes(summary, sheet.unreadable, missing_ids), sections=sections, summary_link=SUMMARY_FILE,
        )
        atomic_write(summary_path, lambda f: f.write(summary_text.encode("utf-8")))
        atomic_write(html_path, lambda f: f.write(page.encode("utf-8")))
    except OSError as exc:
        raise FashionrecError(f"cannot write the report into {out}: {exc.strerror or exc}") from None
    log.info("wrote EDA report %s (%d charts) in %.1fs", html_path, len(written), time.perf_counter() - started)
    return EdaReport(out, html_path, summary_path, written, summary, sheet.unreadable)
