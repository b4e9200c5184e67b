"""Shared fixtures: generated catalogs, and the real Kaggle catalog when present."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from fashionrec.catalog import Catalog, load_catalog
from fashionrec.datasets import make_sample_catalog

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CATALOG = Path(__file__).resolve().parents[2] / "shared" / "fashion-product-images-small"
"""The real catalog beside the checkout (``../shared/...``); absent in a fresh clone."""


@pytest.fixture(scope="session", autouse=True)
def isolated_home(tmp_path_factory) -> Path:
    """Every test runs with a fresh HOME and caches under it: nothing is read from or written to the user's.

    Subprocesses started by tests inherit it. Session-scoped, so models exported
    by one test are reused by the next, as a user's cache would be.
    """
    home = tmp_path_factory.mktemp("home")
    patch = pytest.MonkeyPatch()
    patch.setenv("HOME", str(home))
    patch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    patch.setenv("FASHIONREC_CACHE", str(home / ".cache" / "fashionrec"))
    patch.setenv("TORCH_HOME", str(home / ".cache" / "torch"))
    patch.setenv("KAGGLEHUB_CACHE", str(home / ".cache" / "kagglehub"))
    patch.setenv("MPLCONFIGDIR", str(home / ".config" / "matplotlib"))
    yield home
    patch.undo()


@pytest.fixture
def make_catalog(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing a small Kaggle-layout catalog with drawn images.

    ``make(n=24, *, corrupt=1, missing=1, malformed_rows=0, seed=0) -> Path``:
    by default one image is garbage bytes and one product has no image file.
    Each call writes a new folder under ``tmp_path``.
    """
    counter = 0

    def make(n: int = 24, *, corrupt: int = 1, missing: int = 1, malformed_rows: int = 0, seed: int = 0) -> Path:
        nonlocal counter
        counter += 1
        dest = tmp_path / f"catalog-{counter}"
        return make_sample_catalog(dest, n, seed, corrupt=corrupt, missing=missing, malformed_rows=malformed_rows)

    return make


def _require_shared() -> Path:
    if not (SHARED_CATALOG / "styles.csv").is_file():
        pytest.skip(f"the shared Kaggle catalog is absent ({SHARED_CATALOG}); these checks need it")
    return SHARED_CATALOG


@pytest.fixture
def shared_photos() -> Path:
    """The development set of real photos of catalog products (``../shared/photo-queries/sq224``); skips when absent."""
    folder = SHARED_CATALOG.parent / "photo-queries" / "sq224"
    if not folder.is_dir():
        pytest.skip(f"the shared photo queries are absent ({folder}); these checks need them")
    return folder


@pytest.fixture
def shared_catalog() -> Path:
    """Path of the real ``fashion-product-images-small`` catalog; skips when absent."""
    return _require_shared()


@pytest.fixture(scope="session")
def shared_catalog_loaded() -> Catalog:
    """The real catalog loaded once per session (~0.6 s); skips when absent."""
    return load_catalog(_require_shared())


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A real Milvus server for the whole session, started on first request (``tests/milvus_server.py``).

    It listens on every interface with authentication off (the embedded
    server's configuration); tests reach it over 127.0.0.1 only. With
    ``FASHIONREC_MILVUS_URI`` set, that server is used instead. While the
    session lasts, ``FASHIONREC_MILVUS_URI`` names it (commands run by tests
    find it there). Skips when the ``milvus`` package is not installed.
    """
    from milvus_server import URI_ENV, server_from_environment, start_server

    server = server_from_environment()
    if server is None:
        pytest.importorskip("milvus", reason="the embedded Milvus server (PyPI package 'milvus') is not installed")
        pytest.importorskip("pymilvus", reason="pymilvus is not installed: pip install 'fashionrec[milvus]'")
        server = start_server(tmp_path_factory.mktemp("milvus"))
    patch = pytest.MonkeyPatch()
    patch.setenv(URI_ENV, server.uri)
    yield server
    patch.undo()
    server.stop()
