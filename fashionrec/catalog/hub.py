"""KaggleHub: downloading the Kaggle catalog, and finding a copy downloaded before.

Nothing here touches the network at import time; :func:`download` first checks
that :data:`KAGGLE_HOST` answers, so an offline machine fails within seconds
with a message saying what to do instead.

(This module is ``hub`` rather than ``download`` because the package exports the
function :func:`download`, which would hide a submodule of the same name.)
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CatalogError, DownloadError
from .folder import find_catalog_root

KAGGLE_DATASETS: dict[str, str] = {
    "small": "paramaggarwal/fashion-product-images-small",
    "full": "paramaggarwal/fashion-product-images-dataset",
}
"""KaggleHub dataset handles by variant name."""

KAGGLE_HOST: tuple[str, int] = ("www.kaggle.com", 443)
"""``(host, port)`` probed before a download; read at call time (tests point it elsewhere)."""


def kaggle_cached_copy(variant: str = "small") -> Path | None:
    """The catalog folder of the newest KaggleHub cache copy of ``variant``, or None.

    Looks in KaggleHub's cache folder (``KAGGLEHUB_CACHE``); None when kagglehub
    is missing or nothing was downloaded. Raises :class:`DownloadError` for an
    unknown variant.
    """
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

    from ..network import describe_network_error

    try:
        folder = kagglehub.dataset_download(handle, output_dir=str(dest) if dest else None)
    except Exception as exc:  # kagglehub raises requests/own errors; report them as one line
        raise DownloadError(
            f"KaggleHub could not download {handle}: {describe_network_error(exc)}. "
            "Check your Kaggle credentials (~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY), "
            "or pass a local catalog folder instead."
        ) from None
    return find_catalog_root(folder)


def _kaggle_handle(variant: str) -> str:
    if variant not in KAGGLE_DATASETS:
        raise DownloadError(f"unknown variant {variant!r}; expected one of {', '.join(KAGGLE_DATASETS)}")
    return KAGGLE_DATASETS[variant]


def _check_reachable(timeout: float, *, what: str) -> None:
    """Fail fast, with a useful message, when Kaggle cannot be reached."""
    from ..network import probe

    host, port = KAGGLE_HOST  # this module's global, looked up now: tests patch it
    reason = probe(host, port, timeout)
    if reason is not None:
        raise DownloadError(
            f"cannot {what}: network unreachable (no connection to {host}:{port}): {reason}. "
            "Download the catalog on a machine with internet access and pass its folder instead "
            "(e.g. `fashionrec eda /path/to/fashion-product-images-small`), "
            "or run `fashionrec demo` on the generated offline sample."
        )
