"""The web pages: server-rendered HTML over the :class:`~fashionrec.recommend.Recommender`.

Pages (Jinja2 templates in ``fashionrec/web/templates``, one stylesheet and one
small script in ``fashionrec/web/static``; no inline script or style, so the
Content-Security-Policy of :mod:`fashionrec.web.security` holds):

``GET /``
    The catalog: a grid of products (picture, name, key attributes), facets
    with counts (each value a link that adds or removes it), a text search
    over the product names and paging. Query parameters: ``text``, ``page``
    and filters named after attributes (``?gender=Women&articleType=Heels``).
``GET /products/{id}``
    One product: its picture large, its attributes and its most similar
    products with their distances; ``k``, ``metric`` and filters adjustable,
    and a link to the same answer as JSON (``/api/products/{id}/similar``).
``GET /search``, ``POST /search``
    Search by photo: a file picker or drag-and-drop (a multipart POST with the
    picture in the field ``image``), or an image URL (``GET /search?url=...``);
    the photo shown beside its results; ``k``, ``metric`` and filters as above.
``GET /about``
    About this index: backbone, weights, product count, dates, which search
    engine answers, the engines saved in the folder with their measured
    recall and latency, and the evaluation summary when the index folder has one.

Every mistake (an unknown product, a file that is not a picture or too large, a
URL that is refused or cannot be fetched, a bad ``k``) is shown on the page as a
sentence, with the status code the JSON API gives for it
(:data:`fashionrec.web.errors.ERROR_TABLE`). :func:`render_error` renders the
same for errors raised outside these handlers (an unknown route).

The handlers only parse the request, call the Recommender and render: product
pictures are always ``/images/{id}``, results go through the shared
:class:`~fashionrec.recommend.Recommendations` model.
"""

from __future__ import annotations

import base64
import io
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from PIL import Image
from starlette.concurrency import run_in_threadpool

from ..errors import FashionrecError
from ..images import decode_image
from ..recommend import Recommender
from ..reports.html import template_environment
from ..validation import METRICS
from .api import checked_k, fetch_picture, parse_filters
from .errors import RequestError, status_and_code
from .settings import WebSettings
from .uploads import read_form

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

TEMPLATE_PACKAGE = "fashionrec.web"
TEMPLATE_FOLDER = "templates"

CATALOG_PARAMETERS = ("text", "page", "per_page")
SIMILAR_PARAMETERS = ("k", "metric", "dedupe")
SEARCH_PARAMETERS = ("url", "k", "metric", "dedupe", "prefer_kind")
"""Each page's own query parameters; every other name is an attribute to filter on."""

DEFAULT_K = 12
"""Similar products shown when the request does not say (two rows of six on a wide screen)."""

FACETS_SHOWN = 8
"""Values of a facet listed before the rest fold under "N more"."""

THUMBNAIL_SIZE = (480, 480)
"""Largest size (width, height) in pixels of the photo shown beside its results."""

LABELS: dict[str, str] = {
    "id": "Product id",
    "gender": "Gender",
    "masterCategory": "Category",
    "subCategory": "Sub-category",
    "articleType": "Article type",
    "baseColour": "Colour",
    "season": "Season",
    "year": "Year",
    "usage": "Usage",
    "productDisplayName": "Name",
}
"""How the pages name the catalog's attributes; others show under their own name."""

CARD_ATTRIBUTES: tuple[str, ...] = ("gender", "articleType", "baseColour")
"""Attributes a product card shows under the name."""

HIDDEN_ATTRIBUTES: frozenset[str] = frozenset({"id", "productDisplayName", "image", "link"})
"""Columns the product page does not list as attributes (shown otherwise, or bookkeeping)."""

ERROR_TITLES: dict[str, str] = {
    "unknown_product": "Product not found",
    "not_found": "Page not found",
    "no_picture": "No picture",
    "invalid_parameter": "Please check the request",
    "url_not_allowed": "This URL cannot be used",
    "too_large": "The picture is too large",
    "not_an_image": "This is not a picture",
    "fetch_failed": "The picture could not be fetched",
    "fetch_timeout": "The picture's server did not answer in time",
    "method_not_allowed": "Not allowed",
    "internal_error": "Something went wrong",
}
"""The heading of an error message, by the API's error code."""


# ---------------------------------------------------------------------- rendering


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja2 environment of the web pages (made on first use, then shared): the reports' kind, over web/templates."""
    return template_environment(TEMPLATE_PACKAGE, TEMPLATE_FOLDER)


def render(
    template: str, status_code: int = 200, headers: Mapping[str, str] | None = None, **context: Any
) -> HTMLResponse:
    """The page ``template`` filled with ``context``, as an HTML response with ``status_code``."""
    html = environment().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status_code, headers=dict(headers or {}))


def render_error(request: Request, status: int, code: str, message: str) -> HTMLResponse:
    """An error page: a heading for ``code``, ``message`` below it, answered with ``status``.

    Used by :mod:`fashionrec.web.errors` for page requests (not ``/api/...``)
    whose error no handler here caught: an unknown product, an unknown route.
    """
    error = {"title": ERROR_TITLES.get(code, "Something went wrong"), "message": message}
    return render("error.html", status, _closing(status), section="", error=error)


def _closing(status: int) -> dict[str, str]:
    # After a 413 the rest of the upload is not read: the connection cannot be reused.
    return {"Connection": "close"} if status == 413 else {}


def _error(exc: FashionrecError) -> tuple[int, dict[str, str]]:
    """(status, {"title", "message"}) of an error the page shows; unexpected ones are raised again."""
    entry = status_and_code(exc)
    if entry is None:
        raise exc
    status, code = entry
    return status, {"title": ERROR_TITLES.get(code, "Please check the request"), "message": str(exc)}


# ---------------------------------------------------------------------- request parts


def _recommender(request: Request) -> Recommender:
    return request.app.state.recommender


def _settings(request: Request) -> WebSettings:
    return request.app.state.settings


def _filters(request: Request, items: Iterable[tuple[str, str]], accepted: tuple[str, ...]) -> dict[str, list[str]]:
    """``{attribute: [values]}`` from query or form items, as the JSON API reads them.

    ``accepted`` are the page's own parameters; an empty value (a select left
    on "Any") is no filter; any other name that is not an attribute is a
    :class:`~fashionrec.errors.FilterError` naming it (shown on the page, 422).
    """
    return parse_filters(list(items), request.app.state.attributes, accepted)


def _pairs(where: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, values in where.items() for value in values]


def _href(path: str, params: Iterable[tuple[str, Any]] = ()) -> str:
    query = urlencode([(name, str(value)) for name, value in params])
    return f"{path}?{query}" if query else path


def _k(value: Any, settings: WebSettings) -> int:
    """``k`` from the request (default :data:`DEFAULT_K`), between 1 and ``settings.max_k``."""
    return checked_k(DEFAULT_K if value is None or value == "" else value, settings)


def _text(value: Any) -> str:
    """An attribute value as the page shows it: 2012.0 is 2012."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _label(name: str) -> str:
    return LABELS.get(name, name)


def _card(product: Mapping[str, Any], distance: float | None = None) -> dict[str, Any]:
    """What a product card shows: picture, name, key attributes, distance."""
    pid = product["id"]
    name = product.get("productDisplayName") or f"Product {pid}"
    meta = " · ".join(_text(product[a]) for a in CARD_ATTRIBUTES if product.get(a) not in (None, ""))
    return {
        "id": pid,
        "href": f"/products/{quote(str(pid), safe='')}",
        "picture": f"/images/{quote(str(pid), safe='')}",
        "alt": name,
        "name": name,
        "meta": meta,
        "distance": None if distance is None else f"{distance:.3f}",
        "duplicates": [str(i) for i in product.get("duplicates") or []],
    }


def _result_cards(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [_card(r, r["distance"]) for r in results]


def _checked(value: Any) -> bool:
    """A checkbox's value from a query or a form ("1", "true", "on", "yes"; absent: off)."""
    return str(value or "").strip().lower() in ("1", "true", "on", "yes")


def _switch(values: Sequence[str], default: bool) -> bool:
    """A checkbox sent after a hidden "0" of the same name: its last value (none sent: ``default``)."""
    return _checked(values[-1]) if values else default


def _prediction(predicted: Mapping[str, Any] | None) -> dict[str, str] | None:
    """What the search page says of the photo's predicted kind."""
    if not predicted or not predicted["values"].get("articleType"):
        return None
    how = ("the photo's own product is clearly the nearest" if predicted["clear_match"]
           else f"most of its {predicted['neighbours']} nearest products")
    return {"kind": str(predicted["values"]["articleType"]), "colour": str(predicted["values"].get("baseColour") or ""),
            "how": how}


def _filter_text(where: Mapping[str, Sequence[str]]) -> str:
    """"Gender: Women · Article type: Heels or Flats" for the heading of filtered results."""
    return " · ".join(f"{_label(name)}: {' or '.join(values)}" for name, values in where.items())


def _choices(rec: Recommender, names: Iterable[str]) -> dict[str, list[str]]:
    """Every value of each attribute in ``names`` the index has, sorted, for the filter selects."""
    facets = rec.browse(page=1, per_page=1).facets
    return {name: sorted(facets.get(name, {}), key=str.casefold) for name in names}


# ---------------------------------------------------------------------- catalog


@router.get("/", response_class=HTMLResponse)
def catalog_page(request: Request) -> HTMLResponse:
    """The catalog grid with facets, text search and paging."""
    rec = _recommender(request)
    settings = _settings(request)
    params = request.query_params
    text = (params.get("text") or "").strip()
    where: dict[str, list[str]] = {}
    status, error, result = 200, None, None
    try:
        where = _filters(request, params.multi_items(), CATALOG_PARAMETERS)
        result = rec.browse(where=where or None, text=text or None, page=params.get("page") or 1,
                            per_page=params.get("per_page") or settings.per_page)
    except FashionrecError as exc:
        status, error = _error(exc)
    links = _CatalogLinks(text, where)
    chips = [{"label": _label(name), "value": value, "href": links.toggle(name, value)}
             for name, values in where.items() for value in values]
    if text:
        chips.insert(0, {"label": "Name", "value": text, "href": links.without_text()})
    total, number, pages = (result.total, result.page, result.pages) if result is not None else (0, 1, 0)
    cards = [_card(p.model_dump()) for p in result.products] if result is not None else []
    first = (number - 1) * (result.per_page if result is not None else settings.per_page) + 1
    return render(
        "catalog.html",
        status,
        section="catalog",
        error=error,
        text=text,
        hidden=_pairs(where),
        facets=_facets(result.facets, where, links) if result is not None else [],
        chips=chips,
        clear_href="/",
        page={"total": total, "page": number, "pages": pages},
        cards=cards,
        first=first,
        last=min(first + len(cards) - 1, total),
        pager=_pager(min(number, pages), pages, links.page),
        last_page_href=links.page(pages),
    )


@dataclass(frozen=True)
class _CatalogLinks:
    """Addresses of the catalog with one thing changed: a filter value toggled, the text dropped, another page."""

    text: str
    where: Mapping[str, Sequence[str]]

    def _href(self, where: Mapping[str, Sequence[str]], *, text: bool = True, page: int = 1) -> str:
        params = [("text", self.text)] if text and self.text else []
        return _href("/", params + _pairs(where) + ([("page", page)] if page > 1 else []))

    def toggle(self, name: str, value: str) -> str:
        """The first page with ``value`` of ``name`` added to the filters, or removed when it is one."""
        current = list(self.where.get(name, []))
        kept = [v for v in current if v.casefold() != value.casefold()]
        if len(kept) == len(current):
            kept.append(value)
        where = {**self.where, name: kept}
        return self._href({n: vs for n, vs in where.items() if vs})

    def without_text(self) -> str:
        return self._href(self.where, text=False)

    def page(self, number: int) -> str:
        return self._href(self.where, page=number)


def _facets(counts: Mapping[str, Mapping[str, int]], where: Mapping[str, Sequence[str]],
            links: _CatalogLinks) -> list[dict[str, Any]]:
    """Each facet's values with counts and toggle links; the first :data:`FACETS_SHOWN` shown, the rest folded.

    A value filtered on but no longer counted (the text leaves none of it) is
    listed with 0, so it can still be removed.
    """
    facets = []
    for name, by_value in counts.items():
        chosen = {v.casefold() for v in where.get(name, [])}
        values = [(str(v), int(n)) for v, n in by_value.items()]
        listed = {v.casefold() for v, _ in values}
        values += [(v, 0) for v in where.get(name, []) if v.casefold() not in listed]
        if not values:
            continue
        items = [{"value": v, "count": n, "selected": v.casefold() in chosen, "href": links.toggle(name, v)}
                 for v, n in values]
        more = items[FACETS_SHOWN:]
        facets.append({"name": name, "label": _label(name), "top": items[:FACETS_SHOWN], "more": more,
                       "more_selected": any(item["selected"] for item in more)})
    return facets


def _pager(current: int, pages: int, href) -> list[dict[str, Any]]:
    """Links of the pager: previous, 1 … around the current page … last, next (empty for one page)."""
    if pages <= 1:
        return []
    shown = sorted({1, pages, *range(max(1, current - 2), min(pages, current + 2) + 1)})
    items: list[dict[str, Any]] = [{
        "label": "‹ Previous", "href": href(current - 1) if current > 1 else None, "rel": "prev",
        "aria": "Previous page", "current": False, "gap": False,
    }]
    previous = 0
    for n in shown:
        if n - previous > 1:
            items.append({"gap": True, "current": False})
        items.append({"label": str(n), "href": href(n), "current": n == current, "gap": False, "rel": None,
                      "aria": f"Page {n}"})
        previous = n
    items.append({
        "label": "Next ›", "href": href(current + 1) if current < pages else None, "rel": "next",
        "aria": "Next page", "current": False, "gap": False,
    })
    return items


# ---------------------------------------------------------------------- product


@router.get("/products/{product_id}", response_class=HTMLResponse)
def product_page(request: Request, product_id: str) -> HTMLResponse:
    """One product, its attributes and its most similar products."""
    rec = _recommender(request)
    settings = _settings(request)
    query = rec.query_product(product_id)  # an unknown id: 404, through render_error
    params = request.query_params
    metric = params.get("metric") or METRICS[0]
    k = params.get("k") or DEFAULT_K
    dedupe = _checked(params.get("dedupe"))
    where: dict[str, list[str]] = {}
    status, error, cards, query_duplicates = 200, None, [], []
    try:
        where = _filters(request, params.multi_items(), SIMILAR_PARAMETERS)
        answer = rec.recommendations(query["id"], k=_k(k, settings), where=where or None, metric=metric,
                                     dedupe=dedupe).to_dict()
        cards = _result_cards(answer["results"])
        query_duplicates = [str(i) for i in answer["query"].get("duplicates") or []]
    except FashionrecError as exc:
        status, error = _error(exc)
    gender = query.get("gender")
    return render(
        "product.html",
        status,
        section="catalog",
        product=_product_view(query),
        k=k,
        metric=metric,
        metrics=METRICS,
        max_k=settings.max_k,
        dedupe=dedupe,
        query_duplicates=query_duplicates,
        same_gender=bool(gender) and [v.casefold() for v in where.get("gender", [])] == [str(gender).casefold()],
        choices=_choices(rec, ("articleType", "baseColour")),
        selected={name: (where.get(name) or [""])[0] for name in ("articleType", "baseColour")},
        filter_text=_filter_text(where),
        json_href=_href(f"/api/products/{quote(str(query['id']), safe='')}/similar",
                        [("k", k), ("metric", metric)] + ([("dedupe", "true")] if dedupe else []) + _pairs(where)),
        error=error,
        cards=cards,
    )


def _product_view(query: Mapping[str, Any]) -> dict[str, Any]:
    """What the product page shows of the product: its card, its attributes, where it sits in the catalog."""
    product = _card(query)
    product["alt"] = f"Picture of {product['name']}"
    product["attributes"] = [(_label(name), _text(value)) for name, value in query.items()
                             if name not in HIDDEN_ATTRIBUTES and value not in (None, "")]
    product["attributes"].append((_label("id"), _text(query["id"])))
    product["gender"] = query.get("gender")
    product["crumbs"] = " › ".join(_text(query[a]) for a in ("masterCategory", "subCategory", "articleType")
                                   if query.get(a) not in (None, ""))
    return product


# ---------------------------------------------------------------------- photo search


def _search_context(request: Request, fields: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """What the search page shows around its results: the form, filled as it was sent."""
    rec = _recommender(request)
    settings = _settings(request)
    where = fields["where"]
    context = {
        "section": "search",
        "url": fields.get("url") or "",
        "k": fields.get("k") or DEFAULT_K,
        "metric": fields.get("metric") or METRICS[0],
        "metrics": METRICS,
        "dedupe": fields.get("dedupe", False),
        "prefer_kind": fields.get("prefer_kind", True),
        "predicted": None,
        "max_k": settings.max_k,
        "max_upload": _size(settings.max_upload_bytes),
        "choices": _choices(rec, ("gender", "articleType")),
        "selected": {name: (where.get(name) or [""])[0] for name in ("gender", "articleType")},
        "filter_text": _filter_text(where),
        "photo": None,
        "cards": [],
        "error": None,
        "searched": False,
        "json_href": None,
    }
    context.update(extra)
    return context


def _search_fields(get_all) -> dict[str, Any]:
    """The search form's own fields from a query or a form (``get_all(name)``: its values); ``where`` left empty.

    ``prefer_kind`` ("Same kind first") is on unless the request turns it off.
    """
    def first(name: str) -> Any:
        values = get_all(name)
        return values[0] if values else None

    return {"url": (first("url") or "").strip(), "k": first("k"), "metric": first("metric"),
            "dedupe": _checked(first("dedupe")), "prefer_kind": _switch(get_all("prefer_kind"), True), "where": {}}


def _size(n: int) -> str:
    mib = n / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{math.ceil(n / 1024)} KiB"


def _thumbnail(picture: Image.Image) -> str:
    """The photo as a small JPEG ``data:`` URL, to show beside its results (the page's CSP allows data: images).

    Scaled down to fit :data:`THUMBNAIL_SIZE` (never up); ``picture`` is left as it is.
    """
    scale = min(1.0, THUMBNAIL_SIZE[0] / picture.width, THUMBNAIL_SIZE[1] / picture.height)
    small = picture
    if scale < 1.0:
        size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        small = picture.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    small.convert("RGB").save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _photo_search(
    rec: Recommender, picture: Image.Image, name: str, k: int, where: Mapping[str, Sequence[str]], metric: str,
    dedupe: bool = False, prefer_kind: bool = True,
) -> tuple[list[dict[str, Any]], dict[str, str], dict[str, str] | None]:
    """(cards, photo, predicted kind) for a decoded picture: its results, its thumbnail, what it looks like."""
    answer = rec.image_recommendations(picture, k=k, where=where or None, metric=metric, label=name,
                                       dedupe=dedupe, prefer_kind=prefer_kind).to_dict()
    photo = {"src": _thumbnail(picture), "alt": f"Your photo ({name})", "caption": name}
    return _result_cards(answer["results"]), photo, _prediction(answer["query"].get("predicted"))


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request) -> HTMLResponse:
    """The photo search form; with ``?url=``, the products most similar to the picture at that URL."""
    rec = _recommender(request)
    settings = _settings(request)
    params = request.query_params
    fields = _search_fields(params.getlist)
    url, metric = fields["url"], fields["metric"] or METRICS[0]
    try:
        fields["where"] = _filters(request, params.multi_items(), SEARCH_PARAMETERS)
        if not url:
            return render("search.html", **_search_context(request, fields))
        k = _k(fields["k"], settings)
        picture = fetch_picture(url, settings)
        cards, photo, predicted = _photo_search(rec, picture, url, k, fields["where"], metric, fields["dedupe"],
                                                fields["prefer_kind"])
    except FashionrecError as exc:
        status, error = _error(exc)
        return render("search.html", status, _closing(status),
                      **_search_context(request, fields, error=error, searched=True))
    json_href = _href("/api/similar", [("url", url), ("k", k), ("metric", metric)]
                      + ([("dedupe", "true")] if fields["dedupe"] else [])
                      + ([("prefer_kind", "true")] if fields["prefer_kind"] else []) + _pairs(fields["where"]))
    return render("search.html", **_search_context(request, fields, cards=cards, photo=photo, searched=True,
                                                   json_href=json_href, predicted=predicted))


@router.post("/search", response_class=HTMLResponse)
async def search_upload(request: Request) -> Response:
    """A photo sent by the search form (multipart, field ``image``): the products most similar to it.

    A form sent with a URL and no file is redirected to ``GET /search?url=...``,
    so the answer has an address of its own.
    """
    rec = _recommender(request)
    settings = _settings(request)
    fields = _search_fields(lambda name: [])
    try:
        form = await read_form(request, settings.max_upload_bytes)
        fields = _search_fields(form.get_all)
        fields["where"] = _filters(request, form.fields, SEARCH_PARAMETERS)
        data, name = form.data, form.filename
        if not data:
            if fields["url"]:
                params = [("url", fields["url"]), ("k", fields["k"] or DEFAULT_K),
                          ("metric", fields["metric"] or METRICS[0])] + ([("dedupe", "1")] if fields["dedupe"] else []) \
                    + [("prefer_kind", "1" if fields["prefer_kind"] else "0")] + _pairs(fields["where"])
                return RedirectResponse(_href("/search", params), status_code=303)
            raise RequestError("no photo was sent; choose a picture file, drop one on the page, or paste an image URL")
        k = _k(fields["k"], settings)
        metric = fields["metric"] or METRICS[0]
        picture = await run_in_threadpool(decode_image, data, what=f"the uploaded file {name!r}",
                                          max_pixels=settings.max_pixels)
        cards, photo, predicted = await run_in_threadpool(_photo_search, rec, picture, name, k, fields["where"],
                                                          metric, fields["dedupe"], fields["prefer_kind"])
    except FashionrecError as exc:
        status, error = _error(exc)
        context = await run_in_threadpool(_search_context, request, fields, error=error, searched=True)
        return render("search.html", status, _closing(status), **context)
    context = await run_in_threadpool(_search_context, request, fields, cards=cards, photo=photo, searched=True,
                                      predicted=predicted)
    return render("search.html", **context)


# ---------------------------------------------------------------------- about


INFO_LABELS: dict[str, str] = {
    "count": "Products",
    "backbone": "Backbone",
    "weights": "Weights",
    "dim": "Embedding size",
    "preprocessing": "Preprocessing",
    "runtime": "Runtime",
    "precision": "Precision",
    "engine": "Search engine",
    "created": "Built",
    "updated": "Updated",
    "catalog_root": "Catalog folder",
    "catalog_where": "Products indexed",
    "skipped": "Products skipped",
}
"""Facts of :class:`~fashionrec.recommend.IndexInfo` in the order the about page lists them."""

LONG_FACT = 24
"""Characters above which a fact is set in a smaller type (paths, checksums)."""


@router.get("/about", response_class=HTMLResponse)
def about_page(request: Request) -> HTMLResponse:
    """About this index: backbone, weights, counts, dates, search engines, evaluation summary."""
    info = _recommender(request).info().model_dump(mode="json")
    evaluation = info.pop("evaluation", None)
    engines = info.pop("engines", None) or []
    answering = info.pop("answering", None) or {}
    info["engine"] = _engine_fact(info["engine"], answering)
    ordered = [name for name in INFO_LABELS if name in info] + [n for n in info if n not in INFO_LABELS]
    facts = []
    for name in ordered:
        value = _fact(name, info[name])
        facts.append({"label": INFO_LABELS.get(name, name), "value": value, "long": len(value) > LONG_FACT})
    return render("about.html", section="about", facts=facts, engines=_engines_table(engines, answering),
                  evaluation=_evaluation_view(evaluation))


def _engine_fact(engine: str, answering: Mapping[str, str]) -> str:
    """Which engine answers, saying where the exact engine stands in for it (a metric it is not built for)."""
    instead = [metric for metric, name in answering.items() if name != engine]
    if not instead:
        return engine
    answered = [metric for metric in answering if metric not in instead]
    where = f" for {' and '.join(answered)}" if answered else ""
    return (f"{engine}{where}; exact for {' and '.join(instead)} "
            f"({engine} is not built for {'it' if len(instead) == 1 else 'them'})")


def _engines_table(engines: Sequence[Mapping[str, Any]], answering: Mapping[str, str]) -> dict[str, Any] | None:
    """The table of the engines saved in the index folder (None when there is none)."""
    if not engines:
        return None
    rows = []
    for e in engines:
        recall = _fixed(e.get("recall_at_10"))
        if e.get("recall_queries") is not None:
            recall += f" on {e['recall_queries']:,} held-out products"
        param = "—" if e.get("search_param") is None else f"{e['search_param']} = {e.get('search_value')}"
        answers = answering.get(e["metric"]) == e["name"]
        rows.append([
            e["name"] + (" (answering)" if answers else ""), e["metric"], param, recall,
            "—" if e.get("target_recall") is None else f"{e['target_recall']:.2f}",
            "—" if e.get("p50_ms") is None else f"{e['p50_ms']:.2f}",
            "—" if e.get("build_seconds") is None else f"{e['build_seconds']:,.1f} s",
        ])
    return {"title": "Search engines", "collapsed": False, "text": [1, 2],
            "header": ["Engine", "Distance", "Search parameter", "Recall@10 (measured)", "Target", "p50 ms",
                       "Build time"],
            "rows": rows}


def _fact(name: str, value: Any) -> str:
    """One fact of the index as the about page writes it."""
    if name == "catalog_where":
        return _filter_text(value) if value else "the whole catalog"
    if value is None or value == "":
        return "—"
    if name == "count" and isinstance(value, int):
        return f"{value:,}"
    if name in ("created", "updated") and isinstance(value, str):
        return _when(value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    return _text(value)


def _when(iso: str) -> str:
    """``2024-05-01T12:34:56+00:00`` as ``2024-05-01 12:34 UTC`` (the text as it is when it is not such a time)."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return moment.strftime("%Y-%m-%d %H:%M")


def _evaluation_view(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Headline figures and tables of an ``evaluation.json`` summary (None when there is none)."""
    if not summary:
        return None
    scalars = [{"label": label, "value": _text(summary[key])} for key, label in (
        ("n_queries", "Queries"), ("k", "Cut-off k"), ("relevance", "Relevant when sharing"),
        ("metric", "Distance"), ("engine", "Search engine")) if summary.get(key) is not None]
    tables = []
    if summary.get("overall"):
        tables.append(_metrics_table("Leave-one-out retrieval", "Random ranking",
                                     summary["overall"], summary.get("baseline") or {}))
    photos = summary.get("photo_queries") or {}
    if photos.get("overall"):
        title = f"New photos of catalog products ({photos.get('n_queries', '?')} queries)"
        tables.append(_metrics_table(title, "Chance", photos["overall"], photos.get("chance") or {}))
    per_class = summary.get("per_class") or []
    if per_class:
        metrics = [key for key in per_class[0] if key not in ("articleType", "n_queries")]
        rows = [[row.get("articleType"), str(row.get("n_queries")), *(_fixed(row.get(m)) for m in metrics)]
                for row in per_class]
        tables.append({"title": f"By article type ({len(per_class)})", "collapsed": True,
                       "header": ["Article type", "Queries", *metrics], "rows": rows})
    return {"scalars": scalars, "tables": tables}


def _metrics_table(title: str, reference: str, ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, Any]:
    """A table of metrics: name, fashionrec's value, the reference ranking's value."""
    return {"title": title, "collapsed": False, "header": ["Metric", "fashionrec", reference],
            "rows": [[name, _fixed(value), _fixed(theirs.get(name))] for name, value in ours.items()]}


def _fixed(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}"
