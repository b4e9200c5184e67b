"""The JSON API: thin over :class:`~fashionrec.recommend.Recommender`.

Each endpoint parses its parameters, calls the Recommender once and returns
its answer in the library's own models (:class:`~fashionrec.recommend.Recommendations`
for recommendations, the same JSON as ``fashionrec recommend --json``). Filters
are query parameters named after catalog attributes, repeatable for "any of"::

    GET /api/products/15970/similar?k=8&gender=Women&articleType=Heels&articleType=Flats

Endpoints that call the Recommender are plain functions: FastAPI runs them in
its thread pool, and the Recommender is safe to call from many threads.
Errors are raised as :mod:`fashionrec.errors` types and answered by
:mod:`fashionrec.web.errors` in the one error shape.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..errors import FilterError, InvalidKError, URLNotAllowedError
from ..images import PrivateHostError, decode_image, is_url, open_image
from ..recommend import IndexInfo, Product, ProductPage, Recommendations, Recommender
from ..validation import METRICS, check_filter, check_k, check_metric
from .batching import SimilarBatcher
from .errors import NoPictureError, RequestError, error_body
from .settings import WebSettings
from .uploads import read_upload

router = APIRouter()

RESERVED_PARAMETERS: tuple[str, ...] = (
    "text", "page", "per_page", "k", "metric", "url", "dedupe", "prefer_kind", "match_catalog")
"""Query parameter names that are never attribute filters."""

NON_FILTER_COLUMNS: frozenset[str] = frozenset({"id", "image", "has_image", "link", "image_signature"})
"""Columns of the index that are not attributes to filter on."""

PICTURE_CACHE_SECONDS = 3600


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    example = {"application/json": {"example": error_body("code", "what was received and what was expected")}}
    return {status: {"description": _STATUS_TEXT[status], "content": example} for status in statuses}


_STATUS_TEXT = {
    404: "Unknown product id",
    413: "Upload or picture too large",
    415: "Not an image",
    422: "Invalid parameter, or a URL that is not allowed",
    502: "The image URL could not be fetched",
    504: "The image URL did not answer in time",
}

_FILTERS_PARAMETER = {
    "name": "filters",
    "in": "query",
    "required": False,
    "style": "form",
    "explode": True,
    "schema": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    "description": "Attribute filters: any catalog attribute as a parameter, repeatable for 'any of' "
                   "(e.g. gender=Women&articleType=Heels&articleType=Flats). Values compare case-insensitively.",
}

K = Annotated[int, Query(description="Number of recommendations (1 to the server's maximum, 100 by default).")]
METRIC = Annotated[str, Query(description=f"Distance: {' or '.join(METRICS)}.")]
DEDUPE = Annotated[bool, Query(description=(
    "Collapse near-duplicates: leave out products within the duplicate threshold of a result already listed "
    "(or of the query product); each result then lists the ids collapsed into it in `duplicates`."))]
PREFER_KIND = Annotated[bool, Query(description=(
    "Predict the photo's articleType and colour from its nearest products (in `query.predicted`) and list "
    "products of that articleType first."))]
MATCH_CATALOG = Annotated[bool, Query(description=(
    "Bring the photo to the catalog images' size and JPEG compression before embedding it (on by default)."))]
PHOTO_PARAMETERS = ("k", "metric", "dedupe", "prefer_kind", "match_catalog")
PRODUCT_ID = Annotated[str, Path(description="Product id, as in the catalog.")]


# --------------------------------------------------------------------------- helpers


def recommender_of(request: Request) -> Recommender:
    """The app's Recommender (``app.state.recommender``)."""
    return request.app.state.recommender


def batcher_of(request: Request) -> SimilarBatcher:
    """The app's :class:`~fashionrec.web.batching.SimilarBatcher` (``app.state.batcher``)."""
    return request.app.state.batcher


def settings_of(request: Request) -> WebSettings:
    """The app's :class:`WebSettings` (``app.state.settings``)."""
    return request.app.state.settings


def filter_attributes(recommender: Recommender) -> list[str]:
    """The attributes a request may filter on: the index's columns but the id and picture bookkeeping."""
    return [c for c in recommender.products.columns if c not in NON_FILTER_COLUMNS]


def parse_filters(items: list[tuple[str, str]], attributes: list[str], accepted: tuple[str, ...]) -> dict[str, list[str]]:
    """``{attribute: [values]}`` from query parameters, leaving out the endpoint's own ones (``accepted``).

    Empty values (a form's "any" choice) are left out. A reserved parameter the
    endpoint does not take, or a name that is no attribute, is a 422 naming it.
    """
    where: dict[str, list[str]] = {}
    for name, value in items:
        if name in accepted:
            continue
        if name in RESERVED_PARAMETERS:
            raise RequestError(
                f"parameter {name!r} does not apply here; expected {_names(accepted)} or attribute filters"
            )
        if name not in attributes:
            raise FilterError(
                f"unknown parameter {name!r}; expected {_names(accepted)} or an attribute filter "
                f"({', '.join(attributes)})"
            )
        if value.strip():
            where.setdefault(name, []).append(value)
    return where


def _names(accepted: tuple[str, ...]) -> str:
    return ", ".join(accepted) if accepted else "no other parameters"


def request_filters(request: Request, accepted: tuple[str, ...]) -> dict[str, list[str]]:
    """The attribute filters of ``request`` (see :func:`parse_filters`)."""
    attributes = request.app.state.attributes
    return parse_filters(request.query_params.multi_items(), attributes, accepted)


def checked_k(k: Any, settings: WebSettings) -> int:
    """``k`` as an int between 1 and ``settings.max_k``; InvalidKError otherwise."""
    k = check_k(k)
    if k > settings.max_k:
        raise InvalidKError(f"k must be at most {settings.max_k} on this server, got {k}")
    return k


def fetch_picture(url: str, settings: WebSettings):
    """The picture at an image URL a client gave, fetched under the server's limits.

    Only http(s): a local path would be a file of the server (refused here, and
    by ``open_image`` too, ``allow_files=False``). URLNotAllowedError otherwise
    (a non-public host unless ``settings.allow_private_urls``: its message
    names the host, not a server option the client cannot set); the fetch
    errors of :func:`fashionrec.images.open_image`.
    """
    if not is_url(url):
        raise URLNotAllowedError(f"image URL {url!r} is not allowed; expected an http:// or https:// address")
    try:
        return open_image(url, allow_private_urls=settings.allow_private_urls, allow_files=False,
                          max_pixels=settings.max_pixels)
    except PrivateHostError as exc:
        raise exc.with_hint("expected a public host") from None


def json_response(text: str) -> Response:
    """A response holding JSON text already serialised by a model."""
    return Response(content=text, media_type="application/json")


# --------------------------------------------------------------------------- products


@router.get(
    "/api/products",
    response_model=ProductPage,
    summary="List or search products",
    description="Products matching the filters and the text (every word must occur in the name, any case), "
                "in index order, one page of them, with facet counts per attribute.",
    responses=_error_responses(422),
    openapi_extra={"parameters": [_FILTERS_PARAMETER]},
    tags=["products"],
)
def list_products(
    request: Request,
    text: Annotated[str | None, Query(description="Words that must all occur in the product name.")] = None,
    page: Annotated[int, Query(description="Page number, from 1.")] = 1,
    per_page: Annotated[int | None, Query(description="Products per page (1-200; the server's default when absent).")] = None,
) -> Response:
    where = request_filters(request, ("text", "page", "per_page"))
    settings = settings_of(request)
    result = recommender_of(request).browse(
        where=where or None, text=text, page=page, per_page=settings.per_page if per_page is None else per_page
    )
    return json_response(result.model_dump_json())


@router.get(
    "/api/products/{product_id}",
    response_model=Product,
    summary="One product",
    description="The product's catalog attributes, `image` (its path in the catalog) and `link` when known.",
    responses=_error_responses(404),
    tags=["products"],
)
def get_product(request: Request, product_id: PRODUCT_ID) -> Response:
    request_filters(request, ())
    return json_response(recommender_of(request).product(product_id).model_dump_json())


@router.get(
    "/api/products/{product_id}/similar",
    response_model=Recommendations,
    summary="Products similar to a product",
    description="The `k` products most similar to the product (itself excluded), nearest first, within the "
                "filters: the same JSON as `fashionrec recommend --json`.",
    responses=_error_responses(404, 422),
    openapi_extra={"parameters": [_FILTERS_PARAMETER]},
    tags=["similar"],
)
async def similar_to_product(request: Request, product_id: PRODUCT_ID, k: K = 5, metric: METRIC = "euclidean",
                             dedupe: DEDUPE = False) -> Response:
    # Concurrent requests are answered together, one matrix product per batch
    # (fashionrec/web/batching.py); answers are those of one query at a time.
    where = check_filter(request_filters(request, ("k", "metric", "dedupe")) or None, request.app.state.columns)
    answer = await batcher_of(request).recommendations(
        product_id, checked_k(k, settings_of(request)), where, check_metric(metric), dedupe)
    return json_response(answer.to_json(indent=None))


# --------------------------------------------------------------------------- photo queries

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "A multipart form with the picture in the file field `image`, or the picture itself.",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["image"],
                           "properties": {"image": {"type": "string", "format": "binary"}}},
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    "parameters": [_FILTERS_PARAMETER],
}


@router.post(
    "/api/similar",
    response_model=Recommendations,
    summary="Products similar to an uploaded picture",
    description="Upload a photo (multipart field `image`, or the raw bytes with an image/* content type). "
                "The upload is capped while it streams (10 MiB by default) and the picture's pixel count is "
                "checked from its header before decoding. The query is `{\"image\": <file name or 'upload'>}`.",
    responses=_error_responses(413, 415, 422),
    openapi_extra=_UPLOAD_BODY,
    tags=["similar"],
)
async def similar_to_upload(request: Request, k: K = 5, metric: METRIC = "euclidean", dedupe: DEDUPE = False,
                            prefer_kind: PREFER_KIND = False, match_catalog: MATCH_CATALOG = True) -> Response:
    settings = settings_of(request)
    where = request_filters(request, PHOTO_PARAMETERS)
    k = checked_k(k, settings)
    check_metric(metric)  # before reading the upload: a bad parameter costs no transfer
    data, name = await read_upload(request, settings.max_upload_bytes)
    rec = recommender_of(request)

    def search() -> str:
        picture = decode_image(data, what=f"the uploaded file {name!r}", max_pixels=settings.max_pixels)
        answer = rec.image_recommendations(picture, k=k, where=where or None, metric=metric, label=name, dedupe=dedupe,
                                           prefer_kind=prefer_kind, match_catalog=match_catalog)
        return answer.to_json(indent=None)

    return json_response(await run_in_threadpool(search))


@router.get(
    "/api/similar",
    response_model=Recommendations,
    summary="Products similar to the picture at a URL",
    description="The server fetches the http(s) URL (time and size limited; private, loopback, link-local and "
                "reserved addresses are refused at every redirect unless the server allows them). "
                "The query is `{\"image\": <url>}`.",
    responses=_error_responses(413, 415, 422, 502, 504),
    openapi_extra={"parameters": [_FILTERS_PARAMETER]},
    tags=["similar"],
)
def similar_to_url(
    request: Request,
    url: Annotated[str, Query(description="http(s) URL of a picture.")],
    k: K = 5,
    metric: METRIC = "euclidean",
    dedupe: DEDUPE = False,
    prefer_kind: PREFER_KIND = False,
    match_catalog: MATCH_CATALOG = True,
) -> Response:
    settings = settings_of(request)
    where = request_filters(request, ("url", *PHOTO_PARAMETERS))
    k = checked_k(k, settings)
    check_metric(metric)
    url = url.strip()
    picture = fetch_picture(url, settings)
    answer = recommender_of(request).image_recommendations(picture, k=k, where=where or None, metric=metric, label=url,
                                                           dedupe=dedupe, prefer_kind=prefer_kind,
                                                           match_catalog=match_catalog)
    return json_response(answer.to_json(indent=None))


# --------------------------------------------------------------------------- the index


@router.get("/api/index", response_model=IndexInfo, summary="About the index", tags=["index"])
def index_info(request: Request) -> Response:
    """Backbone, weights, dimension, product count, dates, engine, and the evaluation summary when present."""
    request_filters(request, ())
    return json_response(recommender_of(request).info().model_dump_json())


@router.get("/healthz", summary="Liveness", tags=["index"])
def healthz(request: Request) -> JSONResponse:
    """``{"status": "ok", "products": N}`` while the server is up."""
    return JSONResponse({"status": "ok", "products": len(recommender_of(request))})


# --------------------------------------------------------------------------- pictures


@router.get(
    "/images/{product_id}",
    summary="A product's picture",
    description="The picture file of the product from the catalog folder, else a 302 redirect to its "
                "`images.csv` link, else 404. Only ever by product id.",
    response_class=Response,
    responses={200: {"content": {"image/*": {}}}, 302: {"description": "Redirect to the product's image link"},
               **_error_responses(404)},
    tags=["products"],
)
def product_picture(request: Request, product_id: PRODUCT_ID) -> Response:
    rec = recommender_of(request)
    row = rec.query_product(product_id)  # UnknownProductError -> 404
    source = rec.image_source(row)
    cache = {"Cache-Control": f"public, max-age={PICTURE_CACHE_SECONDS}"}
    if source is not None and not isinstance(source, str) and _inside(rec.catalog_root, source):
        return FileResponse(source, headers=cache)
    link = row.get("link")
    if isinstance(link, str) and is_url(link):
        return RedirectResponse(link.strip(), status_code=302, headers=cache)
    raise NoPictureError(f"product {row['id']!r} has no picture: no file under {rec.catalog_root} and no image link")


def _inside(root: Any, path: Any) -> bool:
    """Whether ``path`` lies under ``root`` lexically (an index row cannot point outside its catalog)."""
    if root is None:
        return False
    root_text, path_text = os.path.normpath(os.path.abspath(root)), os.path.normpath(os.path.abspath(path))
    return path_text.startswith(root_text.rstrip(os.sep) + os.sep)
