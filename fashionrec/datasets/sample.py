"""An offline sample catalog that fashionrec draws itself.

The Kaggle catalog is large and behind a login; the demo, the tests and the docs
need a catalog that exists everywhere. :func:`make_sample_catalog` writes one in
the exact Kaggle layout — ``styles.csv`` (columns
:data:`~fashionrec.catalog.STYLE_COLUMNS`, unquoted, Kaggle-style values) and
``images/<id>.jpg`` (60x80 px portrait JPEGs on a white background) — whose
product pictures are drawn by :func:`~fashionrec.datasets.drawing.draw_product`
in the catalog's common colours. The whole catalog is a pure function of
``(n, seed)``.

It can also reproduce what makes the real file awkward: ``corrupt`` images
(garbage bytes under a ``.jpg`` name), ``missing`` images (rows with no file)
and ``malformed_rows`` (display names with unquoted commas, which
:func:`~fashionrec.catalog.read_styles` rejoins).

:func:`sample_catalog_path` returns a cached copy of the default sample,
generated once, atomically, in :func:`fashionrec.settings.sample_cache_dir`
(``<cache root>/sample-v1``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..catalog import STYLE_COLUMNS
from ..errors import CatalogError
from ..settings import SAMPLE_VERSION, sample_cache_dir
from .drawing import KINDS, draw_product

log = logging.getLogger(__name__)

DEFAULT_N = 320
"""Number of products of the default (cached) sample."""

_COMPLETE_MARKER = ".complete"  # written last into a finished cached sample

SEASONS: dict[str, float] = {"Summer": 0.45, "Fall": 0.25, "Winter": 0.2, "Spring": 0.1}
"""``{season: relative weight}`` each product's season is drawn from."""
YEARS: dict[int, float] = {2010: 0.04, 2011: 0.28, 2012: 0.32, 2013: 0.04, 2015: 0.07, 2016: 0.14, 2017: 0.08,
                           2018: 0.03}
"""``{year: relative weight}`` each product's year is drawn from."""
BRANDS: tuple[str, ...] = ("Northwind", "Kestrel", "Marlowe", "Aurora", "Tessel", "Juniper", "Corvid", "Halden",
                           "Wrenfield", "Osprey")
"""Invented brand names for ``productDisplayName``."""


def _pick(rng: np.random.Generator, weights: dict) -> object:
    keys = list(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _check_count(name: str, value: int, n: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0 or value > n:
        raise CatalogError(f"{name} must be an integer between 0 and n={n}; got {value!r}")


def make_sample_catalog(
    dest: str | os.PathLike,
    n: int = DEFAULT_N,
    seed: int = 0,
    *,
    corrupt: int = 0,
    missing: int = 0,
    malformed_rows: int = 0,
) -> Path:
    """Write a drawn sample catalog in the Kaggle layout into ``dest``; return ``dest``.

    ``dest`` must be a new or empty folder. The catalog has ``n`` products with
    unique integer ids, spread evenly over the :data:`KINDS` (so women's
    footwear, the original design's subset, is about a fifth of it), and is
    fully determined by ``(n, seed)``.

    ``corrupt`` products get an ``images/<id>.jpg`` of garbage bytes,
    ``missing`` products get no image file, and ``malformed_rows`` rows get a
    ``productDisplayName`` with unquoted commas (``Kestrel Men Black, White and
    Red Casual Shoes``), as 22 rows of the real Kaggle file have. The three sets
    of rows are chosen at random; corrupt and missing ones never overlap.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise CatalogError(f"n must be a positive integer number of products; got {n!r}")
    _check_count("corrupt", corrupt, n)
    _check_count("missing", missing, n)
    _check_count("malformed_rows", malformed_rows, n)
    if corrupt + missing > n:
        raise CatalogError(f"corrupt + missing must be at most n={n}; got {corrupt} + {missing}")
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise CatalogError(f"sample catalog destination {dest} is not empty; expected a new or empty folder")
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(np.arange(1000, 60000), size=n, replace=False))
    order = rng.permutation(n)  # rows are not sorted by id, like the real file
    kinds = list(KINDS.values())
    kind_of = [kinds[i % len(kinds)] for i in rng.permutation(n)]
    special = rng.permutation(n)
    corrupt_rows = set(special[:corrupt].tolist())
    missing_rows = set(special[corrupt : corrupt + missing].tolist())
    malformed = set(rng.permutation(n)[:malformed_rows].tolist())

    images = dest / "images"
    images.mkdir(parents=True, exist_ok=True)
    lines = [",".join(STYLE_COLUMNS)]
    for row in order:
        kind = kind_of[row]
        pid = int(ids[row])
        item_rng = np.random.default_rng([seed, pid])
        gender = str(_pick(item_rng, kind.genders))
        colour = kind.colours[int(item_rng.integers(len(kind.colours)))]
        usage = str(_pick(item_rng, kind.usages))
        season = str(_pick(item_rng, SEASONS))
        year = int(_pick(item_rng, YEARS))  # type: ignore[call-overload]
        brand = BRANDS[int(item_rng.integers(len(BRANDS)))]
        if row in malformed:
            others = [c for c in kind.colours if c != colour]
            a, b = (others[int(i)] for i in item_rng.choice(len(others), 2, replace=False))
            name = f"{brand} {gender} {colour}, {a} and {b} {kind.noun}"
        else:
            name = f"{brand} {gender} {colour} {kind.noun}"
        lines.append(",".join([str(pid), gender, kind.master_category, kind.sub_category, kind.article_type,
                               colour, season, str(year), usage, name]))
        path = images / f"{pid}.jpg"
        if row in missing_rows:
            continue
        if row in corrupt_rows:
            path.write_bytes(b"not a JPEG: " + item_rng.bytes(200))
            continue
        draw_product(kind.article_type, colour, item_rng).save(path, "JPEG", quality=90)
    # Kaggle's file is unquoted, LF-terminated UTF-8; write it byte for byte.
    (dest / "styles.csv").write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    log.info(
        "wrote sample catalog %s: %d products (%d corrupt, %d missing images, %d malformed rows) in %.2fs",
        dest, n, corrupt, missing, malformed_rows, time.perf_counter() - started,
    )
    return dest


def sample_catalog_path() -> Path:
    """The cached default sample catalog (``n=320, seed=0``), generated on first use.

    Generation happens in a temporary folder beside the cache entry, which is
    then renamed into place, so a concurrent or interrupted run never leaves a
    half-written catalog: the folder either is complete or does not exist.
    """
    final = sample_cache_dir()
    if (final / _COMPLETE_MARKER).is_file():
        return final
    parent = final.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CatalogError(
            f"cannot create the sample cache folder {parent}: {exc.strerror or exc}; "
            "set FASHIONREC_CACHE to a writable folder"
        ) from None
    if final.exists():
        # Not ours or damaged (no marker): move it aside rather than trust it.
        stale = Path(tempfile.mkdtemp(prefix=f".{SAMPLE_VERSION}-stale-", dir=parent))
        log.warning("sample cache %s is incomplete; regenerating it", final)
        try:
            os.replace(final, stale / "old")
        except OSError:
            pass  # another process replaced it meanwhile; fall through and retry
        shutil.rmtree(stale, ignore_errors=True)
        if (final / _COMPLETE_MARKER).is_file():
            return final
    tmp = Path(tempfile.mkdtemp(prefix=f".{SAMPLE_VERSION}-tmp-", dir=parent))
    try:
        make_sample_catalog(tmp, DEFAULT_N, 0)
        (tmp / _COMPLETE_MARKER).write_text(f"{SAMPLE_VERSION} n={DEFAULT_N} seed=0\n", encoding="utf-8")
        try:
            os.rename(tmp, final)  # atomic; fails if another process got there first
        except OSError:
            if not (final / _COMPLETE_MARKER).is_file():
                raise
            log.debug("sample cache %s was created concurrently; using it", final)
    except OSError as exc:
        raise CatalogError(f"cannot write the sample catalog to {final}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final
