"""The near-duplicate report: ``groups.csv``, ``groups.json`` and ``groups.html`` (the groups' pictures).

:func:`write_duplicate_report` writes what ``fashionrec duplicates --out DIR``
gives: every group in the CSV (one row per product) and the JSON (its products
and the pairs found, with their distances), and a page of the groups'
pictures, largest groups first, through the report templates
(``duplicates.html``). The page shows at most ``max_groups`` groups (the JSON
has them all); its pictures are copied into ``DIR/pictures/`` so the folder
can be moved or shared, or linked by URL for products with only a ``link``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..output import atomic_write, json_value

log = logging.getLogger(__name__)

MAX_PAGE_GROUPS = 300
"""Groups pictured on ``groups.html`` (largest first); the CSV and JSON list every group."""


def scan_summary(scan: Any) -> dict[str, Any]:
    """A :class:`~fashionrec.recommend.duplicates.DuplicateScan` as plain JSON: the figures, then ``group_list``.

    Each group is ``{"size", "ids", "pairs": [{"a", "b", "distance"}]}``;
    ``why`` says how the threshold was chosen.
    """
    groups = [{"size": len(g), "ids": [json_value(i) for i in g.ids],
               "pairs": [{"a": json_value(a), "b": json_value(b), "distance": d} for a, b, d in g.pairs]}
              for g in scan.groups]
    return {"threshold": scan.threshold, "why": scan.notes.get("threshold", "given with --threshold"),
            "searched": scan.searched, "groups": len(groups), "products_in_groups": scan.products_in_groups,
            "seconds": round(scan.seconds, 3), "group_list": groups}


def write_duplicate_report(out: str | os.PathLike, summary: Mapping[str, Any], recommender: Any,
                           *, max_groups: int = MAX_PAGE_GROUPS) -> dict[str, Path]:
    """Write ``groups.csv``, ``groups.json`` and ``groups.html`` (+ ``pictures/``) into ``out``; return their paths.

    ``summary`` is :func:`scan_summary`'s; ``recommender`` the
    :class:`~fashionrec.recommend.Recommender` the scan ran on (for the
    products' names and pictures). Each file is written atomically; pictures
    that cannot be found are shown as their id alone (logged).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    groups = summary["group_list"]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["group", "size", "id"])
    for number, group in enumerate(groups, 1):
        for pid in group["ids"]:
            writer.writerow([number, group["size"], pid])
    paths = {"csv": out / "groups.csv", "json": out / "groups.json", "html": out / "groups.html"}
    atomic_write(paths["csv"], lambda f: f.write(text.getvalue().encode("utf-8")))
    document = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
    atomic_write(paths["json"], lambda f: f.write(document.encode("utf-8")))
    page = _page(out, summary, groups[:max_groups], recommender)
    atomic_write(paths["html"], lambda f: f.write(page.encode("utf-8")))
    return paths


def _page(out: Path, summary: Mapping[str, Any], groups: list[Mapping[str, Any]], rec: Any) -> str:
    from .html import render

    pictures = out / "pictures"
    cards = []
    for number, group in enumerate(groups, 1):
        nearest: dict[Any, float] = {}
        for pair in group["pairs"]:  # each product's distance to its closest partner in the group
            for a, b in ((pair["a"], pair["b"]), (pair["b"], pair["a"])):
                nearest[a] = min(nearest.get(a, float("inf")), pair["distance"])
        products = []
        for pid in group["ids"]:
            record = rec.query_product(pid)
            products.append({
                "id": str(pid), "src": _picture(pictures, out, pid, rec.image_source(record)),
                "name": str(record.get("productDisplayName") or ""),
                "kind": " · ".join(str(record[c]) for c in ("articleType", "baseColour") if record.get(c)),
                "nearest": nearest.get(pid),
            })
        distances = [p["distance"] for p in group["pairs"]]
        cards.append({"number": number, "size": group["size"], "products": products,
                      "closest": min(distances), "farthest": max(distances)})
    return render("duplicates.html", summary=summary, groups=cards, shown=len(groups),
                  index=str(rec.index.path), backbone=str(rec.index.backbone))


def _picture(folder: Path, out: Path, pid: Any, source: Any) -> str | None:
    """The ``src`` of a product's picture: a copy under ``folder`` (relative to ``out``), its URL, or None."""
    if source is None:
        log.warning("product %s has no picture to show (no local file, no link)", pid)
        return None
    if isinstance(source, str):  # a link: the page loads it
        return source
    folder.mkdir(exist_ok=True)
    target = folder / f"{quote(str(pid), safe='')}{Path(source).suffix.lower() or '.jpg'}"
    def copy(handle) -> None:
        with open(source, "rb") as picture:
            shutil.copyfileobj(picture, handle)

    try:
        atomic_write(target, copy)
    except OSError as exc:
        log.warning("cannot copy the picture of product %s (%s): %s", pid, source, exc)
        return None
    return quote(target.relative_to(out).as_posix())
