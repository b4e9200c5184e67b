"""Security headers on every response, and the Content-Security-Policy the pages are written to satisfy.

The pages load their script and style from ``/static`` only (no inline script
or style, no ``style=""`` or ``on*=""`` attributes), pictures from the server or
a catalog's image links, and post forms to the server; :data:`CSP` allows
exactly that. The interactive API docs (``/docs``, ``/redoc``) load Swagger UI
and ReDoc from their CDN with an inline bootstrap script, so those two paths
alone get :data:`DOCS_CSP`.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; img-src 'self' data: https: http:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
"""Content-Security-Policy of every response but the API docs."""

DOCS_CSP = (
    "default-src 'self'; img-src 'self' data: https:; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; font-src 'self' https://fonts.gstatic.com; "
    "worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
"""Content-Security-Policy of ``/docs`` and ``/redoc`` (Swagger UI and ReDoc come from cdn.jsdelivr.net)."""

DOCS_PATHS: frozenset[str] = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})

_COMMON: tuple[tuple[str, str], ...] = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
)


def security_headers(path: str) -> list[tuple[str, str]]:
    """The security headers of a response to ``path``: ``(name, value)`` pairs."""
    return [*_COMMON, ("Content-Security-Policy", DOCS_CSP if path in DOCS_PATHS else CSP)]


_ENCODED: dict[bool, list[tuple[bytes, bytes]]] = {
    docs: [(name.lower().encode("latin-1"), value.encode("latin-1"))
           for name, value in security_headers("/docs" if docs else "/")]
    for docs in (False, True)
}


class SecurityHeadersMiddleware:
    """ASGI middleware adding :func:`security_headers` to every HTTP response (headers already set are kept)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _ENCODED[scope.get("path", "") in DOCS_PATHS]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(pair for pair in extra if pair[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
