"""How errors become HTTP responses: one table, one JSON shape.

Every error the API answers has the body ``{"error": {"code": ..., "message": ...}}``;
``message`` says what was received and what was expected (it is the library's
own message), ``code`` is a stable word a client can branch on. The table
:data:`ERROR_TABLE` maps each :mod:`fashionrec.errors` type to its status and
code; the most specific type wins (a fetch timeout is 504, not 502).

Requests for pages (not ``/api/...``, ``/healthz``, ``/images/...`` or the OpenAPI
document) are answered by the pages' own ``render_error`` when
:mod:`fashionrec.web.pages` defines one (an HTML page with the same status),
else with the same JSON.

Unexpected exceptions are logged with their traceback and answered 500
``internal_error`` with a message that reveals nothing of the server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import (
    FashionrecError,
    FilterError,
    ImageFetchError,
    ImageFetchTimeoutError,
    ImageTooLargeError,
    InvalidKError,
    NotAnImageError,
    QueryError,
    UnknownMetricError,
    UnknownProductError,
    URLNotAllowedError,
)

log = logging.getLogger(__name__)


class RequestError(QueryError):
    """A request the web layer itself cannot use: an unknown parameter, a form without its picture."""


class NoPictureError(FashionrecError):
    """A product of the index that has neither a picture file nor a link."""


ERROR_TABLE: dict[type[BaseException], tuple[int, str]] = {
    UnknownProductError: (404, "unknown_product"),
    NoPictureError: (404, "no_picture"),
    InvalidKError: (422, "invalid_parameter"),
    UnknownMetricError: (422, "invalid_parameter"),
    FilterError: (422, "invalid_parameter"),
    RequestError: (422, "invalid_parameter"),
    URLNotAllowedError: (422, "url_not_allowed"),
    ImageTooLargeError: (413, "too_large"),
    NotAnImageError: (415, "not_an_image"),
    ImageFetchTimeoutError: (504, "fetch_timeout"),
    ImageFetchError: (502, "fetch_failed"),
    # Any other mistake in a query (e.g. a filter no product matches).
    QueryError: (422, "invalid_parameter"),
}
"""Error type -> (HTTP status, error code). Looked up along the exception's MRO."""

HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "not_an_image",
    422: "invalid_parameter",
}
"""Codes of the errors Starlette raises itself (unknown route, wrong method...)."""

INTERNAL_MESSAGE = "internal server error; the server's log has the details"

JSON_PATH_PREFIXES: tuple[str, ...] = ("/api/", "/healthz", "/images/", "/openapi.json", "/static/")
"""Paths (and ``/api`` itself) whose errors are always JSON, never an HTML page."""


def status_and_code(exc: BaseException) -> tuple[int, str] | None:
    """The (status, code) of a known error type, or None for an unexpected exception."""
    for cls in type(exc).__mro__:
        entry = ERROR_TABLE.get(cls)
        if entry is not None:
            return entry
    return None


def error_body(code: str, message: str) -> dict[str, Any]:
    """The one error shape: ``{"error": {"code": code, "message": message}}``."""
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error response; a 413 also closes the connection (the rest of the upload is not read)."""
    headers = dict(headers or {})
    if status == 413:
        headers["Connection"] = "close"
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def wants_json(request: Request) -> bool:
    """True for the API's paths, whose errors are JSON whatever the client accepts."""
    path = request.url.path
    return path == "/api" or path.startswith(JSON_PATH_PREFIXES)


def _respond(request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    render: Callable[..., Response] | None = getattr(request.app.state, "render_error", None)
    if render is not None and not wants_json(request):
        response = render(request, status, code, message)
        if status == 413:
            response.headers["Connection"] = "close"
        return response
    return error_response(status, code, message, headers)


async def fashionrec_error(request: Request, exc: FashionrecError) -> Response:
    entry = status_and_code(exc)
    if entry is None:  # a configuration or environment problem of the server, not the request's
        log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
        return _respond(request, 500, "internal_error", INTERNAL_MESSAGE)
    status, code = entry
    return _respond(request, status, code, str(exc))


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    return _respond(request, 422, "invalid_parameter", describe_validation(exc.errors()))


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    code = HTTP_CODES.get(exc.status_code, "http_error")
    if exc.status_code == 404 and exc.detail in (None, "Not Found"):
        message = f"no such page or endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return _respond(request, exc.status_code, code, message, getattr(exc, "headers", None))


class UnexpectedErrorMiddleware:
    """ASGI middleware answering an unexpected exception with a 500 ``internal_error``, logged once with its traceback.

    It sits inside the security-headers and CORS middleware, so the 500 carries
    their headers too. An exception after the response started cannot be answered;
    it is logged and re-raised for the server to close the connection.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            request = Request(scope)
            log.error("%s %s failed with an unexpected error", request.method, request.url.path, exc_info=exc)
            if started:
                raise
            response = _respond(request, 500, "internal_error", INTERNAL_MESSAGE)
            await response(scope, receive, send)


def describe_validation(errors: Any) -> str:
    """One line from FastAPI's validation errors: ``query parameter k: ... (got 'abc')``."""
    parts = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ())]
        where = f"{loc[0]} parameter {'.'.join(loc[1:])}" if len(loc) > 1 else ".".join(loc) or "request"
        text = f"{where}: {error.get('msg', 'invalid value')}"
        if "input" in error and error.get("type") != "missing":
            text += f" (got {error['input']!r})"
        parts.append(text)
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` through :data:`ERROR_TABLE` in the one JSON shape.

    Call it before adding the CORS and security-headers middleware, so that they wrap the 500 answers too.
    """
    app.add_exception_handler(FashionrecError, fashionrec_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(UnexpectedErrorMiddleware)
