"""Reaching a Milvus server: where it is, its credentials, and its errors as one line each.

The server's address is a URI (``http://host:19530``, ``https://...`` for TLS);
credentials are a token (``user:password`` on a server with authentication, or
an API key) and are never written anywhere: not in the index folder, not in
the manifest, not in logs. Where they come from, first found first:

* the URI: ``uri=`` (``--uri``), else ``$FASHIONREC_MILVUS_URI``, else
  :data:`DEFAULT_URI`; a ``user:password@`` inside it is taken out of the URI
  and used as the token;
* the token: ``token=`` (``--token``), else ``user=`` and ``password=``
  (``--user`` / ``--password``; the password from ``$FASHIONREC_MILVUS_PASSWORD``
  when only the user is given), else ``$FASHIONREC_MILVUS_TOKEN``, else
  ``$FASHIONREC_MILVUS_USER`` and ``$FASHIONREC_MILVUS_PASSWORD``.

Every call to the server has a time limit, so a server that does not answer
is a :class:`MilvusError` after that many seconds, never a hang.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ...errors import FashionrecError

log = logging.getLogger(__name__)

DEFAULT_URI = "http://127.0.0.1:19530"
URI_ENV = "FASHIONREC_MILVUS_URI"
TOKEN_ENV = "FASHIONREC_MILVUS_TOKEN"
USER_ENV = "FASHIONREC_MILVUS_USER"
PASSWORD_ENV = "FASHIONREC_MILVUS_PASSWORD"
INSTALL_HINT = "pip install 'fashionrec[milvus]'"

T = TypeVar("T")


class MilvusError(FashionrecError):
    """A Milvus server that cannot be reached or refuses a request, or a collection that does not hold
    what the index folder says it holds. The message names the server, the collection and the fix."""


def import_pymilvus() -> Any:
    """The ``pymilvus`` module; a one-line :class:`MilvusError` naming the extra when it is not installed.

    pymilvus configures logging when first imported (handlers of its own that
    print errors with their tracebacks to stderr): that configuration is undone
    here, so its records go through the application's logging like any other
    library's, and what was set for its loggers before stays set.
    """
    if sys.modules.get("pymilvus") is not None:
        return sys.modules["pymilvus"]
    with _import_lock:
        if sys.modules.get("pymilvus") is not None:
            return sys.modules["pymilvus"]
        names = ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer")
        before = {name: _logger_state(logging.getLogger(name)) for name in names}
        try:
            import pymilvus
        except ImportError as exc:
            raise MilvusError(f"the milvus engine needs the pymilvus package ({exc}): {INSTALL_HINT}") from None
        finally:
            for name, state in before.items():
                _restore_logger(logging.getLogger(name), state)
        return pymilvus


_import_lock = threading.Lock()


def _logger_state(logger: logging.Logger) -> tuple[int, list[logging.Handler], bool]:
    return logger.level, list(logger.handlers), logger.propagate


def _restore_logger(logger: logging.Logger, state: tuple[int, list[logging.Handler], bool]) -> None:
    level, handlers, propagate = state
    logger.setLevel(level)
    for handler in list(logger.handlers):
        if handler not in handlers:
            logger.removeHandler(handler)
    logger.propagate = propagate


@dataclass(frozen=True)
class ServerAddress:
    """A server's URI without credentials (what may be recorded and shown) and the token to use (never shown)."""

    uri: str
    token: str = ""

    def __repr__(self) -> str:  # the token stays out of reprs and tracebacks
        return f"ServerAddress(uri={self.uri!r}, token={'***' if self.token else ''!r})"


def server_address(uri: str | None = None, *, token: str | None = None, user: str | None = None,
                   password: str | None = None) -> ServerAddress:
    """Where to connect and with which token (the order is in the module docstring)."""
    raw = uri or os.environ.get(URI_ENV) or DEFAULT_URI
    clean, embedded = split_credentials(raw)
    if token:
        chosen = token
    elif user or password:
        password = password or os.environ.get(PASSWORD_ENV)
        if not (user and password):
            raise MilvusError("give both --user and --password (or a --token) for a Milvus server with "
                              "authentication")
        chosen = f"{user}:{password}"
    elif embedded:
        chosen = embedded
    elif os.environ.get(TOKEN_ENV):
        chosen = os.environ[TOKEN_ENV]
    elif os.environ.get(USER_ENV) and os.environ.get(PASSWORD_ENV):
        chosen = f"{os.environ[USER_ENV]}:{os.environ[PASSWORD_ENV]}"
    else:
        chosen = ""
    return ServerAddress(clean, chosen)


def split_credentials(uri: str) -> tuple[str, str]:
    """``(uri without user:password@, "user:password" or "")``; MilvusError for a URI that is not http(s)/tcp."""
    if not isinstance(uri, str) or not uri.strip():
        raise MilvusError(f"Milvus URI {uri!r}: expected an address such as {DEFAULT_URI}")
    uri = uri.strip()
    parts = urlsplit(uri if "://" in uri else f"http://{uri}")
    if parts.scheme not in ("http", "https", "tcp", "grpc") or not parts.hostname:
        raise MilvusError(f"Milvus URI {uri!r}: expected http(s)://HOST:PORT, e.g. {DEFAULT_URI}")
    try:
        parts.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError:
        raise MilvusError(f"Milvus URI {uri!r}: the port is not a number; expected e.g. {DEFAULT_URI}") from None
    secret = ""
    if parts.username is not None or parts.password is not None:
        secret = f"{parts.username or ''}:{parts.password or ''}"
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), secret


def connect(address: ServerAddress, timeout: float) -> Any:
    """A ``pymilvus.MilvusClient`` connected to ``address`` within ``timeout`` seconds; MilvusError otherwise."""
    pymilvus = import_pymilvus()
    try:
        client = pymilvus.MilvusClient(uri=address.uri, token=address.token, timeout=timeout)
    except Exception as exc:  # pymilvus raises MilvusException, and grpc errors for odd addresses
        raise MilvusError(f"cannot reach the Milvus server at {address.uri} within {timeout:g} s "
                          f"({_message(exc)}); start it, or point --uri / ${URI_ENV} at a running one") from None
    return client


def call(what: str, where: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` (a pymilvus call): its errors become one-line MilvusErrors.

    ``what`` names the request ("searching", "creating the collection"),
    ``where`` the server and collection.
    """
    try:
        return function(*args, **kwargs)
    except MilvusError:
        raise
    except Exception as exc:
        if not _from_client(exc):
            raise  # a bug of ours, not the server's answer
        raise MilvusError(f"Milvus server {where}: {what} failed: {_message(exc)}") from None


def _from_client(exc: BaseException) -> bool:
    """True for errors pymilvus or grpc raise (the server's answer, or none), as opposed to bugs."""
    return type(exc).__module__.split(".")[0] in ("pymilvus", "grpc") or isinstance(exc, (ConnectionError,
                                                                                        TimeoutError))


def _message(exc: BaseException) -> str:
    """The one-line reason of a pymilvus or grpc error."""
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if callable(getattr(exc, "details", None)):  # a grpc.RpcError
        try:
            text = exc.details() or text
        except Exception:  # pragma: no cover - details() of an error without them
            pass
    text = " ".join(str(text).split())
    return text[:400]
