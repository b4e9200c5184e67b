"""The web application: the JSON API, the pages, static files, security headers and error handling.

:func:`create_app` builds the FastAPI app over one loaded
:class:`~fashionrec.recommend.Recommender`; :func:`app_from_env` builds it from
``FASHIONREC_SERVE_*`` environment variables, for ``uvicorn --workers N``
(which imports the app by name in each worker process)::

    from fashionrec.recommend import Recommender
    from fashionrec.web import WebSettings, create_app

    app = create_app(Recommender.load("index/"), WebSettings(max_upload_bytes=5 * 2**20))
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from ..errors import FashionrecError
from ..recommend import Recommender
from ..search import DEFAULT_ENGINE
from .batching import SimilarBatcher
from .errors import install_error_handlers
from .security import SecurityHeadersMiddleware
from .settings import MIB, WebSettings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""The pages' stylesheet and script, served under ``/static``."""

ENV_PREFIX = "FASHIONREC_SERVE_"
ENV_INDEX = ENV_PREFIX + "INDEX"
"""Index folder to serve (required by :func:`app_from_env`)."""
ENV_CATALOG = ENV_PREFIX + "CATALOG"
"""Catalog folder the pictures are under, when it moved since indexing."""
ENV_WEIGHTS = ENV_PREFIX + "WEIGHTS"
"""Weights file of the index's backbone (photo queries)."""
ENV_ENGINE = ENV_PREFIX + "ENGINE"
"""Search engine answering the queries (``fashionrec serve --engine``; default exact)."""
ENV_MAX_UPLOAD_BYTES = ENV_PREFIX + "MAX_UPLOAD_BYTES"
ENV_ALLOW_PRIVATE_URLS = ENV_PREFIX + "ALLOW_PRIVATE_URLS"
"""``1`` to let ``?url=`` reach private addresses."""
ENV_CORS_ORIGINS = ENV_PREFIX + "CORS_ORIGINS"
"""Allowed CORS origins, separated by spaces."""
ENV_BLAS_THREADS = ENV_PREFIX + "BLAS_THREADS"
"""BLAS threads per worker process (``fashionrec serve --blas-threads``)."""

API_DESCRIPTION = """\
Visual "more like this" recommendations over one fashionrec index.

Filters are query parameters named after catalog attributes, repeatable for
"any of": `?gender=Women&articleType=Heels&articleType=Flats`.
Every error has the shape `{"error": {"code": ..., "message": ...}}`.
"""


def create_app(recommender: Recommender, settings: WebSettings | None = None) -> FastAPI:
    """The FastAPI app serving ``recommender``.

    ``app.state.recommender`` and ``app.state.settings`` hold what was given;
    ``app.state.attributes`` the attributes requests may filter on. CORS is
    added only when ``settings.cors_origins`` names origins.
    """
    from . import api, pages

    settings = settings or WebSettings()
    app = FastAPI(
        title="fashionrec",
        summary="Visual 'more like this' recommendations for a fashion catalog",
        description=API_DESCRIPTION,
        version=_version(),
    )
    app.state.recommender = recommender
    app.state.settings = settings
    app.state.attributes = api.filter_attributes(recommender)
    app.state.columns = list(recommender.products.columns)
    app.state.batcher = SimilarBatcher(recommender)
    app.state.render_error = getattr(pages, "render_error", None)
    app.include_router(api.router)
    app.include_router(pages.router)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    else:
        log.warning("no static files at %s: the pages will have no style or script", STATIC_DIR)
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
        )
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: CORS preflights get the headers too
    return app


def settings_to_env(
    index: str | os.PathLike,
    settings: WebSettings,
    *,
    catalog: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    engine: str | None = None,
) -> dict[str, str]:
    """The ``FASHIONREC_SERVE_*`` variables that make :func:`app_from_env` build the same app
    (over the index folder ``index``, its pictures under ``catalog``, with search engine ``engine``)."""
    env = {
        ENV_INDEX: str(index),
        ENV_MAX_UPLOAD_BYTES: str(settings.max_upload_bytes),
        ENV_ALLOW_PRIVATE_URLS: "1" if settings.allow_private_urls else "0",
        ENV_CORS_ORIGINS: " ".join(settings.cors_origins),
    }
    if catalog is not None:
        env[ENV_CATALOG] = str(catalog)
    if weights is not None:
        env[ENV_WEIGHTS] = str(weights)
    if engine is not None:
        env[ENV_ENGINE] = engine
    return env


def limit_blas_threads(threads: int) -> None:
    """Cap the BLAS thread pools of this process at ``threads`` (threadpoolctl).

    For the serving process only, which owns its process: with many requests
    at once, each request's matrix-vector product on several BLAS threads makes
    threads wait for each other on a small machine (``benchmarks/RESULTS.md``);
    one thread per request lets concurrent requests use the cores instead.
    """
    import numpy  # noqa: F401  (threadpoolctl limits the libraries already loaded: NumPy's BLAS)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=int(threads), user_api="blas")


def app_from_env() -> FastAPI:
    """The app described by ``FASHIONREC_SERVE_*`` variables (set by ``fashionrec serve``).

    An app factory for ``uvicorn --factory``: each worker process loads the
    index (memory-mapped, so the vectors are shared through the page cache).
    Raises :class:`~fashionrec.errors.FashionrecError` when the index variable is unset.
    """
    from ..catalog import find_catalog_root

    index = os.environ.get(ENV_INDEX)
    if not index:
        raise FashionrecError(f"{ENV_INDEX} is not set; expected the index folder to serve (set by `fashionrec serve`)")
    catalog = os.environ.get(ENV_CATALOG) or None
    weights = os.environ.get(ENV_WEIGHTS) or None
    engine = os.environ.get(ENV_ENGINE) or DEFAULT_ENGINE
    try:
        max_upload = int(os.environ.get(ENV_MAX_UPLOAD_BYTES) or 10 * MIB)
    except ValueError:
        raise FashionrecError(
            f"{ENV_MAX_UPLOAD_BYTES}={os.environ[ENV_MAX_UPLOAD_BYTES]!r}: expected a whole number of bytes"
        ) from None
    settings = WebSettings(
        max_upload_bytes=max_upload,
        allow_private_urls=os.environ.get(ENV_ALLOW_PRIVATE_URLS, "0").strip().lower() in ("1", "true", "yes"),
        cors_origins=tuple(os.environ.get(ENV_CORS_ORIGINS, "").split()),
    )
    blas_threads = os.environ.get(ENV_BLAS_THREADS)
    if blas_threads:
        limit_blas_threads(int(blas_threads))
    recommender = Recommender.load(
        index, weights=weights, catalog_root=find_catalog_root(catalog) if catalog else None, engine=engine
    )
    return create_app(recommender, settings)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fashionrec")
    except PackageNotFoundError:
        return "0"
