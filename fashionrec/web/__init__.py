"""The web front: ``fashionrec serve`` — pages and a JSON API over one :class:`~fashionrec.recommend.Recommender`.

:mod:`.app` builds the FastAPI application (:func:`create_app`, and
:func:`app_from_env` for several worker processes), :mod:`.api` holds the JSON
endpoints, :mod:`.pages` the server-rendered pages, :mod:`.errors` the one table
from errors to HTTP statuses, :mod:`.security` the security headers,
:mod:`.uploads` the capped, streaming reading of uploaded pictures and
:mod:`.settings` the server's limits (:class:`WebSettings`).
"""

from .app import app_from_env, create_app
from .settings import WebSettings

__all__ = ["WebSettings", "app_from_env", "create_app"]
