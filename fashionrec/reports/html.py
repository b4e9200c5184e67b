"""HTML pages rendered from the Jinja2 templates shipped in ``fashionrec/reports/templates``.

:func:`render` fills one template with a context and returns the page as text.
Autoescape is on: every value put into a page is HTML-escaped, so catalog
strings (product names, attribute values, titles) never become markup.

Templates:

``base.html``
    The page shell every page extends: ``<!DOCTYPE html>``, ``<head>`` (charset,
    ``viewport``, title, the shared CSS) and the blocks ``title`` (text of
    ``<title>`` and ``<h1>``), ``head`` (extra ``<head>`` content) and ``content``.
``macros.html``
    ``table(t)``: a :class:`Table`; ``picture(src, alt)``: an ``<img>``.
``eda.html``, ``demo.html``
    The EDA report (:func:`fashionrec.reports.write_report`) and the demo
    report (:func:`fashionrec.reports.run_demo`).

Filters added to Jinja2's own: ``thousands`` (``12345`` → ``12,345``),
``fixed(places=3)`` (``0.12345`` → ``0.123``) and ``percent(places=0)``
(``0.5`` → ``50%``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2

from ..errors import FashionrecError

TEMPLATE_PACKAGE = "fashionrec.reports"
TEMPLATE_FOLDER = "templates"


@dataclass(frozen=True)
class Table:
    """A table for the ``table`` macro: cells already formatted as text.

    ``header`` holds the column titles and each row of ``rows`` one text per
    column. Columns whose index is in ``numeric`` are right-aligned; with
    ``row_headers`` the first cell of each row is a row title (``<th>``).
    """

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    numeric: tuple[int, ...] = ()
    row_headers: bool = False


def _thousands(value: Any) -> str:
    return f"{value:,}"


def _fixed(value: Any, places: int = 3) -> str:
    return f"{value:.{places}f}"


def _percent(value: Any, places: int = 0) -> str:
    return f"{value:.{places}%}"


def template_environment(package: str, folder: str = "templates") -> jinja2.Environment:
    """A Jinja2 environment over the templates shipped in ``package/folder``, as every fashionrec page uses.

    Autoescape is on for every template; an undefined name in a template
    raises instead of printing nothing; the number filters ``thousands``,
    ``fixed`` and ``percent`` are there. The reports and the web pages each
    make theirs with this function.
    """
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(package, folder),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(thousands=_thousands, fixed=_fixed, percent=_percent)
    return env


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the reports (built on first use, then shared)."""
    return template_environment(TEMPLATE_PACKAGE, TEMPLATE_FOLDER)


def render(template_name: str, **context: Any) -> str:
    """The page ``template_name`` (e.g. ``"eda.html"``) filled with ``context``, as HTML text.

    Raises :class:`~fashionrec.errors.FashionrecError` when no such template
    ships with fashionrec.
    """
    env = environment()
    try:
        template = env.get_template(template_name)
    except jinja2.TemplateNotFound:
        known = ", ".join(sorted(env.list_templates(extensions=["html"])))
        raise FashionrecError(f"no page template {template_name!r}; expected one of {known}") from None
    return template.render(**context)
