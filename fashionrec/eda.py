"""Exploratory analysis of a catalog: counts, charts and an HTML report.

:func:`summarize` counts a :class:`~fashionrec.catalog.Catalog`'s products by
attribute; :func:`write_report` writes those counts as ``summary.json``, one PNG
chart per attribute, a contact sheet of product pictures and an ``index.html``
that shows every chart beside its table.

``summary.json``
----------------
A JSON object with these keys (every mapping of counts is ordered by count,
descending, ties by value; a missing attribute value is counted under
``"(missing)"``):

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
    ``{attribute: {value: count}}`` for each of ``gender``, ``masterCategory``,
    ``subCategory``, ``articleType`` (top 20), ``baseColour`` (top 15),
    ``season``, ``usage`` and ``year`` (values as strings, e.g. ``"2012"``)
    that the catalog has; absent columns are left out.
``distinct``
    ``{attribute: number of distinct non-missing values}`` for the same
    attributes, so truncated lists (``articleType``, ``baseColour``) say how
    many values they leave out.
``gender_x_masterCategory``
    ``{gender: {masterCategory: count}}`` (missing values as ``"(missing)"``,
    zero cells left out); ``{}`` unless the catalog has both columns.

Charts (Matplotlib with the Agg canvas, styled by Seaborn) are written to the
report folder as ``<attribute>.png``, ``gender_x_masterCategory.png`` and
``contact_sheet.png``; charts for absent columns are skipped.
"""

from __future__ import annotations

import html
import io
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .catalog import Catalog, normalize_where
from .errors import FashionrecError
from .output import atomic_write

log = logging.getLogger(__name__)

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

CONTACT_PER_GROUP = 8
CONTACT_MAX_GROUPS = 10
_TILE = (60, 80)

# Bar colours for the baseColour chart: the colour each bar counts.
_COLOUR_NAMES: dict[str, str] = {
    "Black": "#202022", "White": "#f4f4f4", "Blue": "#2a58c8", "Brown": "#76461f", "Grey": "#808084",
    "Red": "#c8202a", "Green": "#2a8c40", "Pink": "#ee80a8", "Navy Blue": "#1a245c", "Purple": "#76348e",
    "Silver": "#bec0c8", "Yellow": "#f0c828", "Beige": "#dac69e", "Gold": "#d4ac38", "Maroon": "#761826",
    "Orange": "#f0781e", "Olive": "#6e7030", "Multi": "#a0a0a0", "Cream": "#f2e6c8", "Steel": "#7a8690",
    "Charcoal": "#3a3c40", "Peach": "#f6c2a0", "Off White": "#f2efe6", "Skin": "#e8b898", "Lavender": "#b8a4dc",
    "Grey Melange": "#a8a8ac", "Khaki": "#b8a670", "Teal": "#1e7878", "Magenta": "#c02890", "Rust": "#b04a1e",
    "Turquoise Blue": "#30b8c8", "Copper": "#b0662e", "Mustard": "#d0a020", "Coffee Brown": "#5a3a22",
    "Tan": "#c49a6c", "Sea Green": "#2e8b57", "Burgundy": "#6e1026", "Mauve": "#c094b0", "Bronze": "#9a6a2a",
    "Taupe": "#8a7a6a", "Metallic": "#a8acb4", "Nude": "#e0bca0", "Rose": "#e0607a", "Mushroom Brown": "#9a806a",
    "Fluorescent Green": "#60f040", "Lime Green": "#80d030",
}


@dataclass
class EdaReport:
    """What :func:`write_report` wrote."""

    out_dir: Path
    html: Path
    summary_json: Path
    charts: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    unreadable_images: list[str] = field(default_factory=list)
    """Ids of products whose image the contact sheet could not decode."""


# --------------------------------------------------------------------------- counting


def _value_counts(values: pd.Series, top: int | None = None) -> dict[str, int]:
    """``{value: count}`` ordered by count desc then value, missing as :data:`MISSING`."""
    text = values.astype("string").fillna(MISSING)
    counts = text.value_counts(sort=False)
    frame = pd.DataFrame({"value": counts.index.astype(str), "count": counts.to_numpy(dtype=np.int64)})
    frame = frame.sort_values(["count", "value"], ascending=[False, True], kind="stable")
    if top is not None:
        frame = frame.head(top)
    return {str(v): int(c) for v, c in zip(frame["value"], frame["count"])}


def _crosstab(rows: pd.Series, cols: pd.Series) -> dict[str, dict[str, int]]:
    r = rows.astype("string").fillna(MISSING)
    c = cols.astype("string").fillna(MISSING)
    pairs = pd.DataFrame({"r": r, "c": c}).value_counts(sort=False)
    row_order = list(_value_counts(rows))
    col_order = list(_value_counts(cols))
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
    counts = {c: _value_counts(products[c], COUNT_COLUMNS[c]) for c in present}
    cross = (
        _crosstab(products["gender"], products["masterCategory"])
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


# --------------------------------------------------------------------------- files


def _save_figure(fig, path: Path, *, tight: bool = False) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, **({"bbox_inches": "tight", "pad_inches": 0.15} if tight else {}))
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path


# --------------------------------------------------------------------------- charts


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # Figure + savefig use the Agg canvas; no pyplot state

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _style():
    import seaborn as sns

    return sns.axes_style("whitegrid")


def _bar_chart(counts: dict[str, int], column: str, total: int, path: Path, *, horizontal: bool,
               note: str = "", colours: list[str] | None = None) -> Path:
    labels = list(counts)
    values = list(counts.values())
    with _style():
        if horizontal:
            fig, ax = _figure(8, max(2.5, 0.32 * len(labels) + 1.2))
            bars = ax.barh(labels[::-1], values[::-1], color=(colours or ["#4c72b0"] * len(labels))[::-1],
                           edgecolor="#555555", linewidth=0.5)
            ax.set_xlabel("products")
            ax.bar_label(bars, labels=[f"{v:,}" for v in values[::-1]], padding=3, fontsize=8)
            ax.margins(x=0.12)
        else:
            fig, ax = _figure(max(5, 0.65 * len(labels) + 2), 4)
            bars = ax.bar(labels, values, color=colours or "#4c72b0", edgecolor="#555555", linewidth=0.5)
            ax.set_ylabel("products")
            ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=2, fontsize=8)
            ax.margins(y=0.12)
            if len(labels) > 5 or max((len(s) for s in labels), default=0) > 8:
                for label in ax.get_xticklabels():
                    label.set_rotation(35)
                    label.set_horizontalalignment("right")
        ax.set_title(f"{column}{note} — {total:,} products")
    return _save_figure(fig, path)


def _heatmap(cross: dict[str, dict[str, int]], total: int, path: Path) -> Path:
    import seaborn as sns

    cols = list(dict.fromkeys(c for row in cross.values() for c in row))
    grid = pd.DataFrame([[cross[r].get(c, 0) for c in cols] for r in cross], index=list(cross), columns=cols)
    fig, ax = _figure(max(6, 1.1 * len(cols) + 2), max(3, 0.55 * len(grid) + 1.5))
    sns.heatmap(grid, annot=True, fmt=",d", cmap="Blues", linewidths=0.5, cbar_kws={"label": "products"}, ax=ax,
                annot_kws={"fontsize": 8})
    ax.set_xlabel("masterCategory")
    ax.set_ylabel("gender")
    ax.set_title(f"gender × masterCategory — {total:,} products")
    ax.tick_params(axis="y", labelrotation=0)
    for label in ax.get_xticklabels():
        label.set_rotation(30)
        label.set_horizontalalignment("right")
    return _save_figure(fig, path)


def _load_tile(path: Path) -> np.ndarray | None:
    """A product image fitted into a white 60x80 tile, or None when unreadable."""
    from PIL import Image, UnidentifiedImageError

    from .images import to_rgb

    try:
        with Image.open(path) as image:
            image.draft("RGB", (_TILE[0] * 2, _TILE[1] * 2))
            image.load()
            image = to_rgb(image)  # transparency on white, as the index sees it
            image.thumbnail(_TILE)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    tile = Image.new("RGB", _TILE, (255, 255, 255))
    tile.paste(image, ((_TILE[0] - image.width) // 2, (_TILE[1] - image.height) // 2))
    return np.asarray(tile)


def _contact_sheet(catalog: Catalog, path: Path, total: int) -> tuple[Path | None, list[dict[str, Any]], list[str]]:
    """A grid of product pictures, one row per masterCategory (or one row of all).

    Returns the PNG path (None when no image could be read), the rows shown
    (``group``, ``ids``, ``products``) and the ids whose image was unreadable.
    """
    products = catalog.products
    with_image = products.loc[products["has_image"].astype(bool)] if "has_image" in products.columns else products[:0]
    if with_image.empty:
        return None, [], []
    rng = np.random.default_rng(0)
    if "masterCategory" in with_image.columns:
        key = with_image["masterCategory"].astype("string").fillna(MISSING)
        groups = [(g, with_image.loc[key == g]) for g in _value_counts(with_image["masterCategory"])]
        group_name = "masterCategory"
    else:
        groups = [("all products", with_image)]
        group_name = ""
    groups = groups[:CONTACT_MAX_GROUPS]
    rows: list[dict[str, Any]] = []
    tiles: list[list[np.ndarray]] = []
    unreadable: list[str] = []
    for name, members in groups:
        order = rng.permutation(len(members))
        shown: list[str] = []
        row_tiles: list[np.ndarray] = []
        for tries, i in enumerate(order):  # draw more when some images are unreadable
            if len(row_tiles) == CONTACT_PER_GROUP or tries >= 4 * CONTACT_PER_GROUP:
                break
            product = members.iloc[int(i)]
            tile = _load_tile(catalog.root / str(product["image"]))
            if tile is None:
                unreadable.append(str(product["id"]))
                continue
            row_tiles.append(tile)
            shown.append(str(product["id"]))
        if row_tiles:
            tiles.append(row_tiles)
            rows.append({"group": name, "ids": shown, "products": int(len(members))})
    if not tiles:
        return None, rows, unreadable
    if unreadable:
        log.warning("contact sheet: %d image(s) could not be read (ids %s)", len(unreadable), ", ".join(unreadable[:5]))
    pad = 4
    width = CONTACT_PER_GROUP * (_TILE[0] + pad) + pad
    height = len(tiles) * (_TILE[1] + pad) + pad
    sheet = np.full((height, width, 3), 255, dtype=np.uint8)
    for r, row_tiles in enumerate(tiles):
        for c, tile in enumerate(row_tiles):
            y, x = pad + r * (_TILE[1] + pad), pad + c * (_TILE[0] + pad)
            sheet[y : y + _TILE[1], x : x + _TILE[0]] = tile
    scale = 1.6 / 100  # inches per pixel at dpi 100: tiles drawn at 1.6x
    fig, ax = _figure(width * scale + 1.8, height * scale + 0.6)
    ax.imshow(sheet, interpolation="lanczos")
    ax.set_xticks([])
    ax.set_yticks([pad + r * (_TILE[1] + pad) + _TILE[1] / 2 for r in range(len(rows))])
    ax.set_yticklabels([f"{row['group']}\n({row['products']:,})" for row in rows])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0)
    shown_n = sum(len(row["ids"]) for row in rows)
    by = f" by {group_name}" if group_name else ""
    ax.set_title(f"Sample products{by} — {shown_n} of {total:,} shown")
    return _save_figure(fig, path, tight=True), rows, unreadable


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;
padding:0 1rem;color:#222;background:#fafafa}
h1{margin-bottom:.2rem} .path{color:#555;font-family:monospace;word-break:break-all}
.cards{display:flex;flex-wrap:wrap;gap:1rem;margin:1rem 0}
.card{background:#fff;border:1px solid #ddd;border-radius:8px;padding:.7rem 1.1rem;min-width:9rem}
.card .n{font-size:1.6rem;font-weight:600} .card .l{color:#666;font-size:.85rem}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.6rem 1rem;margin:1rem 0}
section{background:#fff;border:1px solid #ddd;border-radius:8px;padding:1rem;margin:1.2rem 0}
.row{display:flex;flex-wrap:wrap;gap:1.5rem;align-items:flex-start}
.row img{max-width:100%;height:auto;flex:1 1 520px;min-width:0}
table{border-collapse:collapse;font-size:.85rem;flex:0 1 auto}
th,td{padding:.15rem .6rem;border-bottom:1px solid #eee;text-align:left} td.n{text-align:right}
th{background:#f2f2f2}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(counts: dict[str, int], total: int, header: str) -> str:
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td class='n'>{v:,}</td><td class='n'>{(100 * v / total if total else 0):.1f}%</td></tr>"
        for k, v in counts.items()
    )
    return f"<table><tr><th>{_e(header)}</th><th>products</th><th>share</th></tr>{rows}</table>"


def _cross_table(cross: dict[str, dict[str, int]]) -> str:
    cols = list(dict.fromkeys(c for row in cross.values() for c in row))
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = "".join(
        f"<tr><th>{_e(r)}</th>" + "".join(f"<td class='n'>{cells.get(c, 0):,}</td>" for c in cols) + "</tr>"
        for r, cells in cross.items()
    )
    return f"<table><tr><th>gender \\ masterCategory</th>{head}</tr>{body}</table>"


def _sheet_table(catalog: Catalog, rows: list[dict[str, Any]]) -> str:
    """Groups of the contact sheet, and (folded) the products shown with their names."""
    products = catalog.products
    name_col = next((c for c in ("productDisplayName", "articleType") if c in products.columns), None)
    names: dict[str, str] = {}
    if name_col:
        shown = {i for r in rows for i in r["ids"]}
        subset = products.loc[products["id"].astype(str).isin(shown), ["id", name_col]]
        names = {str(i): ("" if pd.isna(n) else str(n)) for i, n in zip(subset["id"], subset[name_col])}
    groups = "".join(
        f"<tr><td>{_e(r['group'])}</td><td class='n'>{r['products']:,}</td><td class='n'>{len(r['ids'])}</td></tr>"
        for r in rows
    )
    items = "".join(
        f"<tr><td>{_e(r['group'])}</td><td>{_e(i)}</td><td>{_e(names.get(i, ''))}</td></tr>" for r in rows for i in r["ids"]
    )
    return (
        "<div><table><tr><th>group</th><th>products</th><th>shown</th></tr>" + groups + "</table>"
        "<details><summary>products shown</summary><table><tr><th>group</th><th>id</th><th>name</th></tr>"
        + items + "</table></details></div>"
    )


def _html(summary: dict[str, Any], title: str, sections: list[tuple[str, str | None, str]],
          unreadable: list[str], missing_ids: list[str]) -> str:
    total = summary["total_products"]
    cards = [
        ("products", f"{total:,}"),
        ("with image", f"{summary['with_image']:,}"),
        ("without image", f"{summary['without_image']:,}"),
        ("repaired CSV rows", f"{summary['repaired_rows']:,}"),
    ]
    cards += [(f"distinct {c}", f"{n:,}") for c, n in summary["distinct"].items() if c in ("articleType", "baseColour")]
    card_html = "".join(f"<div class='card'><div class='n'>{_e(n)}</div><div class='l'>{_e(l)}</div></div>"
                        for l, n in cards)
    notes = []
    if summary["where"]:
        cond = "; ".join(f"{k} = {' or '.join(v)}" for k, v in summary["where"].items())
        notes.append(f"Filtered to products where {_e(cond)}.")
    if summary["repaired_rows"]:
        lines = ", ".join(str(n) for n in summary["repaired_lines"][:30])
        more = " …" if summary["repaired_rows"] > 30 else ""
        notes.append(
            f"{summary['repaired_rows']:,} row(s) of the CSV had unquoted commas in the product name; "
            f"they were rejoined (lines {_e(lines)}{more})."
        )
    if summary["without_image"]:
        ids = ", ".join(missing_ids[:20])
        more = " …" if summary["without_image"] > 20 else ""
        notes.append(f"{summary['without_image']:,} product(s) have no image file (ids {_e(ids)}{more}).")
    if unreadable:
        notes.append(
            f"{len(unreadable)} image file(s) drawn for the contact sheet could not be decoded and were skipped "
            f"(ids {_e(', '.join(unreadable[:20]))})."
        )
    if not total:
        notes.append("No products to show" + (" (nothing matches the filter)." if summary["where"] else "."))
    elif not summary["counts"]:
        notes.append("This catalog has no attribute columns (a plain image folder): only the contact sheet applies.")
    note_html = "".join(f"<p class='note'>{n}</p>" for n in notes)
    section_html = []
    for heading, image, table in sections:
        img = f"<img src='{_e(image)}' alt='{_e(heading)}'>" if image else ""
        section_html.append(f"<section><h2>{_e(heading)}</h2><div class='row'>{img}{table}</div></section>")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1><div class='path'>catalog: {_e(summary['catalog'])} ({_e(summary['source'])})</div>"
        f"<div class='cards'>{card_html}</div>{note_html}"
        + "".join(section_html)
        + "<p class='path'>Counts as JSON: <a href='summary.json'>summary.json</a></p></body></html>\n"
    )


# --------------------------------------------------------------------------- report


def write_report(
    catalog: Catalog,
    out_dir: str | os.PathLike,
    *,
    title: str | None = None,
    where: Mapping[str, Any] | None = None,
) -> EdaReport:
    """Write ``summary.json``, the charts and ``index.html`` for ``catalog`` into ``out_dir``.

    ``where`` is the filter the caller applied (see :func:`summarize`). Every
    file is written atomically (temporary file, then :func:`os.replace`);
    existing files of an earlier report are overwritten.
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
    charts: list[Path] = []
    sections: list[tuple[str, str | None, str]] = []
    counts = summary["counts"]
    distinct = summary["distinct"]
    try:
        sheet, rows, unreadable = _contact_sheet(catalog, out / "contact_sheet.png", total)
        if sheet is not None:
            charts.append(sheet)
            table = _sheet_table(catalog, rows)
            sections.append(("Sample products", sheet.name, table))
        for column, top in COUNT_COLUMNS.items():
            if not counts.get(column):
                continue  # absent column, or no products
            values = counts[column]
            path = out / f"{column}.png"
            note = f" (top {len(values)} of {distinct[column]:,})" if top and distinct[column] > len(values) else ""
            if column == "year":
                values = dict(sorted(values.items(), key=lambda kv: (kv[0] == MISSING, kv[0])))
            colours = [_COLOUR_NAMES.get(k, "#b0b0b0") for k in values] if column == "baseColour" else None
            horizontal = column != "year" and (top is not None or len(values) > 12)
            charts.append(_bar_chart(values, column, total, path, horizontal=horizontal, note=note, colours=colours))
            sections.append((f"{column}{note}", path.name, _table(values, total, column)))
        if summary["gender_x_masterCategory"]:
            path = _heatmap(summary["gender_x_masterCategory"], total, out / "gender_x_masterCategory.png")
            charts.append(path)
            sections.append(("gender × masterCategory", path.name, _cross_table(summary["gender_x_masterCategory"])))
    except OSError as exc:
        raise FashionrecError(f"cannot write the report into {out}: {exc.strerror or exc}") from None
    products = catalog.products
    missing_ids = (
        products.loc[~products["has_image"].astype(bool), "id"].astype(str).tolist()[:20]
        if "has_image" in products.columns
        else []
    )
    summary_path = out / "summary.json"
    html_path = out / "index.html"
    try:
        summary_text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
        page = _html(summary, title, sections, unreadable, missing_ids)
        atomic_write(summary_path, lambda f: f.write(summary_text.encode("utf-8")))
        atomic_write(html_path, lambda f: f.write(page.encode("utf-8")))
    except OSError as exc:
        raise FashionrecError(f"cannot write the report into {out}: {exc.strerror or exc}") from None
    log.info("wrote EDA report %s (%d charts) in %.1fs", html_path, len(charts), time.perf_counter() - started)
    return EdaReport(out, html_path, summary_path, charts, summary, unreadable)
