"""Stage 7 — pictures of recommendations.

:func:`plot_recommendations` draws the query picture beside its k
recommendations, each captioned, and writes a PNG atomically. Pictures come
from local files, URLs or memory (:func:`fashionrec.images.open_image`, whose
limits apply: URLs of public hosts only unless ``allow_private_urls`` is
given); one that cannot be loaded is drawn as a grey "image unavailable" tile
rather than failing the figure, with a warning saying why (for a refused
private host, how to allow it). :func:`recommendation_figure` does the same
from a :class:`~fashionrec.recommend.Recommender` result.
"""

from __future__ import annotations

import io
import logging
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image

from ..errors import FashionrecError, QueryError
from ..images import is_url, open_image
from ..output import atomic_write

if TYPE_CHECKING:
    from ..recommend import Recommender

log = logging.getLogger(__name__)

TILE_INCHES = 2.2
CAPTION_WIDTH = 22  # characters per caption line
CAPTION_LINES = 3
PLACEHOLDER_TEXT = "image unavailable"
PLACEHOLDER_GREY = (200, 200, 200)


def wrap_caption(text: Any, width: int = CAPTION_WIDTH, lines: int = CAPTION_LINES) -> str:
    """Wrap ``text`` to ``width`` characters, at most ``lines`` lines (ellipsis when cut)."""
    text = "" if text is None or (not isinstance(text, str) and pd.isna(text)) else str(text)
    wrapped = textwrap.wrap(text, width=width, break_long_words=True) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        last = wrapped[-1]
        wrapped[-1] = (last[: width - 1] if len(last) >= width else last) + "…"
    return "\n".join(wrapped)


def fit_caption(caption: Any, width: int = CAPTION_WIDTH, lines_per_part: int = 2) -> str:
    """Wrap each line of a caption (name, distance...) to ``width``, at most ``lines_per_part`` lines each."""
    text = "" if caption is None or (not isinstance(caption, str) and pd.isna(caption)) else str(caption)
    return "\n".join(wrap_caption(part, width, lines_per_part) for part in text.split("\n"))


def load_picture(source: Any, **kwargs: Any) -> Image.Image | None:
    """The picture at ``source`` (path, URL, PIL image), or None when it cannot be loaded."""
    if source is None or (not isinstance(source, (str, os.PathLike, Image.Image)) and pd.isna(source)):
        return None
    try:
        return open_image(source, **kwargs)
    except FashionrecError as exc:
        log.warning("showing a placeholder: %s", exc)
        return None


def plot_recommendations(
    query_image: Any,
    query_caption: str,
    results: Sequence[tuple[Any, str]],
    out_path: str | os.PathLike,
    *,
    title: str | None = None,
    dpi: int = 100,
    image_options: dict[str, Any] | None = None,
) -> Path:
    """Draw the query and its recommendations side by side; write a PNG atomically.

    ``query_image`` and each result's image are a path, an http(s) URL, a PIL
    image or None. ``results`` is a list of ``(image, caption)``; captions are
    wrapped and truncated. ``image_options`` go to :func:`open_image` (e.g.
    ``timeout``, ``total_timeout``, ``allow_private_urls``). Returns ``out_path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out_path = Path(out_path)
    options = image_options or {}
    tiles = [(query_image, query_caption, True)] + [(image, caption, False) for image, caption in results]
    n = len(tiles)
    fig = Figure(figsize=(TILE_INCHES * n, TILE_INCHES * 1.55 + (0.35 if title else 0)), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (source, caption, is_query) in zip(axes, tiles):
        picture = load_picture(source, **options)
        if picture is None:
            ax.imshow(np.full((80, 60, 3), PLACEHOLDER_GREY, dtype=np.uint8))  # catalog pictures are 60x80
            ax.text(0.5, 0.5, PLACEHOLDER_TEXT, transform=ax.transAxes, ha="center", va="center",
                    fontsize=9, color="#555555")
        else:
            ax.imshow(np.asarray(picture))
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(is_query)
            spine.set_color("#d62728")
            spine.set_linewidth(2.5)
        ax.set_xlabel(fit_caption(caption), fontsize=8, fontweight="bold" if is_query else "normal")
    if title:
        fig.suptitle(title, fontsize=11)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out_path, lambda f: f.write(buffer.getvalue()))
    except OSError as exc:
        raise FashionrecError(f"cannot write figure {out_path}: {exc.strerror or exc}") from None
    log.info("wrote %s (%d recommendations)", out_path, len(results))
    return out_path


def recommendation_figure(
    rec: Recommender,
    results: pd.DataFrame,
    query: Any,
    out_path: str | os.PathLike,
    *,
    title: str | None = None,
    image_options: dict[str, Any] | None = None,
) -> Path:
    """Figure of a :meth:`Recommender.similar` / ``similar_to_image`` result.

    ``query`` is a product id of the index, or a picture (path, URL, PIL image).
    Pictures of products come from :meth:`Recommender.image_source` (catalog
    file, else its ``link``). URLs are fetched as ``rec`` allows
    (``rec.allow_private_urls``) unless ``image_options`` say otherwise; they
    go to :func:`open_image`.
    """
    if isinstance(query, Image.Image):
        query_image, query_caption = query, "query image"
    elif isinstance(query, (str, int, np.integer)) and not (isinstance(query, str) and is_url(query)) and rec.has_product(query):
        product = rec.query_product(query)
        query_image = rec.image_source(product)
        query_caption = "query: " + _name(product)
    elif isinstance(query, (str, os.PathLike)):
        query_image = query
        query_caption = "query: " + wrap_caption(_short_source(query), lines=2)
    else:
        raise QueryError(f"query {query!r} is neither a product id of the index nor a picture (path, URL, PIL image)")
    items = []
    for _, row in results.iterrows():
        caption = f"{_name(row)}\nd = {row['distance']:.4g}"
        items.append((rec.image_source(row), caption))
    options = {"allow_private_urls": rec.allow_private_urls, **(image_options or {})}
    return plot_recommendations(query_image, query_caption, items, out_path, title=title, image_options=options)


def _name(row: Any) -> str:
    name = row.get("productDisplayName")
    label = name if name is not None and not pd.isna(name) and str(name).strip() else f"product {row['id']}"
    return wrap_caption(f"{label} ({row['id']})" if label != f"product {row['id']}" else label, lines=2)


def _short_source(source: Any) -> str:
    text = str(source)
    return text if is_url(text) else Path(text).name
