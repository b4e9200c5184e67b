"""Charts of the EDA report: bar charts, a heatmap and a contact sheet, as PNG.

Every chart is drawn with Matplotlib's object API (a :class:`~matplotlib.figure.Figure`
saved through the Agg canvas, no pyplot state), styled by Seaborn, at 100 dpi,
and written atomically (:func:`fashionrec.output.atomic_write`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..catalog import Catalog
from ..output import atomic_write
from .summary import MISSING, count_values

log = logging.getLogger(__name__)

DPI = 100
"""Resolution of every chart (pixels per inch)."""

CONTACT_PER_GROUP = 8
"""Pictures per row of the contact sheet."""
CONTACT_MAX_GROUPS = 10
"""Rows (masterCategory groups) of the contact sheet, at most."""
TILE = (60, 80)
"""Size (width, height) in pixels of one picture on the contact sheet, before drawing at 1.6x."""

BAR_BLUE = "#4c72b0"
OTHER_COLOUR = "#b0b0b0"
"""Bar colour of a ``baseColour`` not in :data:`BASE_COLOURS`."""

BASE_COLOURS: dict[str, str] = {
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
"""Bar colours of the ``baseColour`` chart: each bar in the colour it counts."""


@dataclass
class SheetRow:
    """One row of the contact sheet."""

    group: str
    """The masterCategory shown (or ``"all products"``)."""
    products: int
    """Products of the group that have an image file."""
    ids: list[str] = field(default_factory=list)
    """Ids of the products pictured, left to right."""


@dataclass
class ContactSheet:
    """What :func:`contact_sheet` drew."""

    path: Path | None
    """The PNG written; None when no picture could be read (nothing written)."""
    rows: list[SheetRow] = field(default_factory=list)
    group_by: str = ""
    """``"masterCategory"``, or ``""`` when the pictures are not grouped."""
    unreadable: list[str] = field(default_factory=list)
    """Ids of products whose image file could not be decoded (skipped)."""


def save_png(fig: Any, path: Path, *, tight: bool = False) -> Path:
    """Render ``fig`` as PNG at :data:`DPI` and write it atomically to ``path``; return ``path``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, **({"bbox_inches": "tight", "pad_inches": 0.15} if tight else {}))
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path


def _figure(width: float, height: float):
    from matplotlib.figure import Figure  # Figure + savefig use the Agg canvas; no pyplot state

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _style():
    import seaborn as sns

    return sns.axes_style("whitegrid")


def bar_colours(column: str, labels: Sequence[str]) -> list[str] | None:
    """Colours of a count chart's bars: the colour itself for ``baseColour``, else None (one colour)."""
    if column != "baseColour":
        return None
    return [BASE_COLOURS.get(label, OTHER_COLOUR) for label in labels]


def bar_chart(counts: Mapping[str, int], column: str, total: int, path: Path, *, horizontal: bool,
              note: str = "", colours: Sequence[str] | None = None) -> Path:
    """Bar chart of ``{value: count}`` (bars in the mapping's order), titled by ``column`` and ``total``.

    Horizontal charts are 8 in wide and grow 0.32 in per bar; vertical ones are
    4 in high and grow 0.65 in per bar. ``note`` follows the column in the
    title (e.g. ``" (top 20 of 143)"``). Writes ``path`` and returns it.
    """
    labels = list(counts)
    values = list(counts.values())
    with _style():
        if horizontal:
            fig, ax = _figure(8, max(2.5, 0.32 * len(labels) + 1.2))
            bars = ax.barh(labels[::-1], values[::-1], color=(list(colours or []) or [BAR_BLUE] * len(labels))[::-1],
                           edgecolor="#555555", linewidth=0.5)
            ax.set_xlabel("products")
            ax.bar_label(bars, labels=[f"{v:,}" for v in values[::-1]], padding=3, fontsize=8)
            ax.margins(x=0.12)
        else:
            fig, ax = _figure(max(5, 0.65 * len(labels) + 2), 4)
            bars = ax.bar(labels, values, color=list(colours) if colours else BAR_BLUE, edgecolor="#555555",
                          linewidth=0.5)
            ax.set_ylabel("products")
            ax.bar_label(bars, labels=[f"{v:,}" for v in values], padding=2, fontsize=8)
            ax.margins(y=0.12)
            if len(labels) > 5 or max((len(s) for s in labels), default=0) > 8:
                for label in ax.get_xticklabels():
                    label.set_rotation(35)
                    label.set_horizontalalignment("right")
        ax.set_title(f"{column}{note} — {total:,} products")
    return save_png(fig, path)


def heatmap(cross: Mapping[str, Mapping[str, int]], total: int, path: Path) -> Path:
    """Annotated heatmap of ``{gender: {masterCategory: count}}``; writes ``path`` and returns it."""
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
    return save_png(fig, path)


def load_tile(path: Path) -> np.ndarray | None:
    """A product image fitted into a white :data:`TILE` (uint8, height x width x 3), or None when unreadable."""
    from PIL import Image, UnidentifiedImageError

    from ..images import to_rgb

    try:
        with Image.open(path) as image:
            image.draft("RGB", (TILE[0] * 2, TILE[1] * 2))
            image.load()
            image = to_rgb(image)  # transparency on white, as the index sees it
            image.thumbnail(TILE)
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return None
    tile = Image.new("RGB", TILE, (255, 255, 255))
    tile.paste(image, ((TILE[0] - image.width) // 2, (TILE[1] - image.height) // 2))
    return np.asarray(tile)


def contact_sheet(catalog: Catalog, path: Path, total: int) -> ContactSheet:
    """A grid of product pictures, one row per masterCategory (or one row of all), as PNG.

    Up to :data:`CONTACT_MAX_GROUPS` rows of up to :data:`CONTACT_PER_GROUP`
    pictures, drawn at random (seed 0, so the same catalog gives the same
    sheet); unreadable images are skipped and others drawn in their place (up
    to 4 tries per picture). ``total`` is the product count shown in the
    title. The sheet grows with the number of rows; nothing is written when no
    picture can be read.
    """
    products = catalog.products
    with_image = products.loc[products["has_image"].astype(bool)] if "has_image" in products.columns else products[:0]
    if with_image.empty:
        return ContactSheet(None)
    rng = np.random.default_rng(0)
    if "masterCategory" in with_image.columns:
        key = with_image["masterCategory"].astype("string").fillna(MISSING)
        groups = [(g, with_image.loc[key == g]) for g in count_values(with_image["masterCategory"])]
        group_by = "masterCategory"
    else:
        groups = [("all products", with_image)]
        group_by = ""
    groups = groups[:CONTACT_MAX_GROUPS]
    rows: list[SheetRow] = []
    tiles: list[list[np.ndarray]] = []
    unreadable: list[str] = []
    for name, members in groups:
        order = rng.permutation(len(members))
        row = SheetRow(name, int(len(members)))
        row_tiles: list[np.ndarray] = []
        for tries, i in enumerate(order):  # draw more when some images are unreadable
            if len(row_tiles) == CONTACT_PER_GROUP or tries >= 4 * CONTACT_PER_GROUP:
                break
            product = members.iloc[int(i)]
            tile = load_tile(catalog.root / str(product["image"]))
            if tile is None:
                unreadable.append(str(product["id"]))
                continue
            row_tiles.append(tile)
            row.ids.append(str(product["id"]))
        if row_tiles:
            tiles.append(row_tiles)
            rows.append(row)
    if unreadable:
        log.warning("contact sheet: %d image(s) could not be read (ids %s)", len(unreadable), ", ".join(unreadable[:5]))
    if not tiles:
        return ContactSheet(None, rows, group_by, unreadable)
    pad = 4
    width = CONTACT_PER_GROUP * (TILE[0] + pad) + pad
    height = len(tiles) * (TILE[1] + pad) + pad
    sheet = np.full((height, width, 3), 255, dtype=np.uint8)
    for r, row_tiles in enumerate(tiles):
        for c, tile in enumerate(row_tiles):
            y, x = pad + r * (TILE[1] + pad), pad + c * (TILE[0] + pad)
            sheet[y : y + TILE[1], x : x + TILE[0]] = tile
    scale = 1.6 / DPI  # inches per pixel: tiles drawn at 1.6x
    fig, ax = _figure(width * scale + 1.8, height * scale + 0.6)
    ax.imshow(sheet, interpolation="lanczos")
    ax.set_xticks([])
    ax.set_yticks([pad + r * (TILE[1] + pad) + TILE[1] / 2 for r in range(len(rows))])
    ax.set_yticklabels([f"{row.group}\n({row.products:,})" for row in rows])
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0)
    shown = sum(len(row.ids) for row in rows)
    by = f" by {group_by}" if group_by else ""
    ax.set_title(f"Sample products{by} — {shown} of {total:,} shown")
    return ContactSheet(save_png(fig, path, tight=True), rows, group_by, unreadable)
