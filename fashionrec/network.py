"""A bounded network probe, so that offline machines fail fast with a useful message,
and one-line reasons for network failures (no library reprs, balanced quotes)."""

from __future__ import annotations

import re
import socket
import threading
from urllib.parse import urlsplit

PROBE_TIMEOUT_S = 5.0


def reachable(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    The connect runs on a daemon thread so that a hanging DNS lookup (which
    ``socket``'s own timeout does not cover) cannot hold the caller longer.
    """
    return probe(host, port, timeout) is None


def probe(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None when a TCP connection to ``host:port`` opens within ``timeout`` seconds, else why not (one line).

    The reason reads like ``host 'x.example' does not resolve (Name or service
    not known)``, ``connection to x.example:443 refused`` or ``no answer from
    x.example:443 within 5.0 s``. Bounded as :func:`reachable` is.
    """
    result: list[str | None] = []

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(None)
        except OSError as exc:
            result.append(describe_network_error(exc, host=host, port=port))

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    if not result:
        return f"no answer from {host}:{port} within {timeout} s"
    return result[0]


def describe_network_error(exc: BaseException, *, host: str | None = None, port: int | None = None) -> str:
    """A one-line reason for a failed connection, from a socket, urllib3 or requests exception.

    Looks through the exception's causes for the root: an unknown host gives
    ``host 'NAME' does not resolve (<resolver's words>)``, a refused connection
    ``connection to HOST:PORT refused``, a timeout ``no answer from HOST:PORT
    (timed out)``. Anything else is the exception's text on one line, without
    library object reprs (``<... object at 0x...>``). ``host`` and ``port``
    name the target when the exception does not (a plain socket error).
    """
    chain = _causes(exc)
    found_host, found_port = _target_of(exc, chain)
    host, port = host or found_host, port or found_port
    where = f"{host}:{port}" if host and port else (host or "the server")
    for cause in chain:
        if isinstance(cause, socket.gaierror):
            words = cause.strerror or str(cause)
            return f"host {host!r} does not resolve ({words})" if host else f"host name does not resolve ({words})"
    for cause in chain:
        if isinstance(cause, ConnectionRefusedError):
            return f"connection to {where} refused"
    for cause in chain:
        if isinstance(cause, (socket.timeout, TimeoutError)):
            return f"no answer from {where} (timed out)"
    text = re.sub(r"<[^<>]*? object at 0x[0-9a-fA-F]+>:?\s*", "", str(exc))
    return " ".join(text.split())[:300] or type(exc).__name__


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps (``__cause__``, ``__context__``, ``reason``, exception ``args``), outermost first."""
    found: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        todo.extend(a for a in getattr(current, "args", ()) if isinstance(a, BaseException))
        reason = getattr(current, "reason", None)
        todo.append(reason if isinstance(reason, BaseException) else None)
        todo.extend([current.__cause__, current.__context__])
    return found


def _target_of(exc: BaseException, chain: list[BaseException]) -> tuple[str | None, int | None]:
    """The ``(host, port)`` a requests/urllib3 exception was about, as far as it says."""
    request = getattr(exc, "request", None)
    url = getattr(request, "url", None)
    if isinstance(url, str) and urlsplit(url).hostname:
        parts = urlsplit(url)
        try:
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
        except ValueError:
            port = None
        return parts.hostname, port
    for cause in chain:
        match = re.search(r"(?:Failed to resolve|host=)\s*'([^']+)'(?:, port=(\d+))?", str(cause))
        if match:
            return match.group(1), int(match.group(2)) if match.group(2) else None
    return None, None
