"""Loading pictures from a local file, an http(s) URL, uploaded bytes or memory.

:func:`open_image` is the one entry point every view and the image query use;
:func:`decode_image` decodes bytes received some other way (an upload).

Every picture is bounded before it costs memory: its pixel count is read from
the header (Pillow's ``Image.open`` reads only the header) and refused above
``max_pixels`` before the pixels are decoded, and Pillow's own
decompression-bomb guard stays on.

Downloads are bounded too: connect/read timeouts and an overall deadline
(held by a watchdog that cuts the connection, so a server trickling bytes
cannot stretch it; see :class:`_Watchdog`), a
size cap enforced from ``Content-Length`` and again while streaming, a limited
number of redirects (followed here, one hop at a time), an ``image/*`` (or
generic) content type.

Only public hosts are fetched unless the caller says otherwise
(``allow_private_urls=True``, the ``--allow-private-urls`` of the command
line, for intranet catalogs): every hop's host is resolved and refused
unless all its addresses are public (not private, loopback, link-local,
reserved, multicast or unspecified; IPv4-mapped, 6to4 and NAT64 IPv6
addresses are judged by the IPv4 address they carry), and the connection
itself goes only to an address that was checked, so a name that re-resolves
to a private address between the check and the connection (DNS rebinding)
is refused as well (through a proxy from the environment, the proxy connects).
Local files are a separate switch: ``allow_files=False`` refuses them (a
server taking sources from strangers), whatever the URL policy.

Each failure is one :class:`~fashionrec.errors.ImageError` subclass (all are
:class:`~fashionrec.errors.QueryError`) saying what was received and what was
expected:

* :class:`~fashionrec.errors.NotAnImageError` — undecodable data, or a URL
  whose content type declares something else;
* :class:`~fashionrec.errors.ImageTooLargeError` — over the byte cap, or more
  pixels than allowed (:class:`TooManyPixelsError`, which
  :func:`check_pixels` raises; the index build applies the same
  :data:`DEFAULT_MAX_PIXELS` to catalog pictures);
* :class:`~fashionrec.errors.ImageFetchTimeoutError` — a connect/read timeout
  or the overall deadline;
* :class:`~fashionrec.errors.ImageFetchError` — another network failure, an
  HTTP error status, too many redirects;
* :class:`~fashionrec.errors.URLNotAllowedError` — not an http(s) URL, an
  invalid one, a local file when files are not allowed, or (when private URLs
  are not allowed) a non-public host (:class:`PrivateHostError`, whose
  message says how to allow it);
* :class:`~fashionrec.errors.ImageError` — a missing or unreadable local file.
"""

from __future__ import annotations

import functools
import io
import ipaddress
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urljoin, urlsplit

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import (
    ImageError,
    ImageFetchError,
    ImageFetchTimeoutError,
    ImageTooLargeError,
    NotAnImageError,
    URLNotAllowedError,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 10.0)
"""(connect, read) timeouts in seconds for downloads."""
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
"""Largest download accepted (20 MiB)."""
DEFAULT_MAX_REDIRECTS = 5
"""Redirects followed before a URL is given up on."""
DEFAULT_MAX_PIXELS = 50_000_000
"""Largest picture decoded, in pixels (width x height), checked from the header before decoding.

50 megapixels is about 200 MB once decoded to RGBA; any photo of a product is far smaller."""
_CHUNK = 64 * 1024

_GENERIC_TYPES = ("", "application/octet-stream", "binary/octet-stream")
"""Content types that say nothing about the body; Pillow's decode decides."""
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_url(source: Any) -> bool:
    """True for an ``http://`` or ``https://`` URL with a host."""
    if not isinstance(source, str):
        return False
    parts = urlsplit(source.strip())
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def open_image(
    source: str | os.PathLike | Image.Image,
    *,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    session: Any = None,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    total_timeout: float | None = 60.0,
    allow_private_urls: bool = False,
    allow_files: bool = True,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Open a picture as an RGB :class:`PIL.Image.Image` of its own.

    Parameters
    ----------
    source:
        A local path, an ``http(s)`` URL or a PIL image (converted, never
        modified; its pixel count is not checked, it is already in memory).
    timeout:
        requests' ``(connect, read)`` timeouts in seconds (or one number for both).
    max_bytes:
        Largest download accepted, in bytes.
    session:
        Optional :class:`requests.Session` to fetch with; its ``max_redirects``
        then applies. Without one, a session is made for the call. With
        ``allow_private_urls=False`` a caller's session gets the per-hop host
        check, but its connections are its own (not pinned to checked addresses).
    max_redirects:
        Redirects followed (each hop checked like the first).
    total_timeout:
        Seconds a whole download may take, redirects included, whatever the
        server does (trickling headers or body a byte at a time, or saying
        nothing); None for no limit. Exceeding it raises
        :class:`~fashionrec.errors.ImageFetchTimeoutError` naming the URL and
        the limit. With a caller's ``session`` the deadline holds from the
        moment the response headers arrive; headers trickled slower than the
        read timeout (but steadily) can outlast it there.
    allow_private_urls:
        False (the default): only hosts whose addresses are all public are
        fetched, checked at every redirect hop, and a refused one raises
        :class:`PrivateHostError`. True (an intranet catalog): private,
        loopback, link-local and reserved addresses may be fetched too.
    allow_files:
        True (the default): a local path is read. False (a server taking
        sources from strangers): local paths are refused, only URLs are fetched.
    max_pixels:
        Most pixels (width x height) a picture may declare; checked from the
        header before decoding. None leaves only Pillow's own guard.

    Raises an :class:`~fashionrec.errors.ImageError` subclass; see the module docstring.
    """
    if isinstance(source, Image.Image):
        return _to_rgb(source, "the given image")
    if isinstance(source, str) and is_url(source):
        url = source.strip()
        data = _download(
            url,
            timeout=timeout,
            max_bytes=max_bytes,
            session=session,
            max_redirects=max_redirects,
            total_timeout=total_timeout,
            allow_private_urls=allow_private_urls,
        )
        return _decode(io.BytesIO(data), f"image at {url}", max_pixels)
    if isinstance(source, (str, os.PathLike)):
        if isinstance(source, str) and "://" in source:
            raise URLNotAllowedError(
                f"unsupported image URL {source!r}; expected an http:// or https:// URL or a local file"
            )
        if not allow_files:
            raise URLNotAllowedError(
                f"local file {str(source)!r} refused: expected an http:// or https:// URL"
            )
        path = Path(source).expanduser()
        if not path.exists():
            raise ImageError(f"image file {path} not found; expected an existing image file or an http(s) URL")
        if not path.is_file():
            raise ImageError(f"{path} is not a file; expected an image file (jpg, png, ...)")
        try:
            handle = open(path, "rb")
        except OSError as exc:
            raise ImageError(f"cannot read image file {path}: {exc.strerror or exc}") from None
        with handle:
            return _decode(handle, f"image file {path}", max_pixels)
    raise ImageError(
        f"cannot open an image from {type(source).__name__} {source!r}; expected a file path, an http(s) URL or a PIL image"
    )


def decode_image(
    data: bytes | bytearray | memoryview,
    *,
    what: str = "the uploaded file",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Decode a picture held in memory (an upload) into an RGB :class:`PIL.Image.Image`.

    ``what`` names the data in error messages ("cannot decode <what>: ...").
    The pixel count declared by the header is checked against ``max_pixels``
    before decoding (None: only Pillow's own guard). Raises
    :class:`~fashionrec.errors.NotAnImageError` for empty or undecodable data
    and :class:`~fashionrec.errors.ImageTooLargeError` for too many pixels.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"cannot decode {what}: got {type(data).__name__}, expected bytes")
    if not len(data):
        raise NotAnImageError(f"{what} is empty; expected a picture (jpg, png, webp, ...)")
    return _decode(io.BytesIO(data), what, max_pixels)


class TooManyPixelsError(ImageTooLargeError):
    """A picture whose header declares more than ``max_pixels`` pixels (width x height).

    ``width``, ``height`` and ``max_pixels`` are what was received and allowed;
    :attr:`detail` says it without naming the picture (an index's skip reason).
    """

    def __init__(self, what: str, width: int, height: int, max_pixels: int):
        self.width, self.height, self.max_pixels = width, height, max_pixels
        super().__init__(f"{what} is too large: {width} x {height} = {width * height:,} pixels, "
                         f"expected at most {max_pixels:,}")

    @property
    def detail(self) -> str:
        """``"W x H = N pixels, at most M"``."""
        return f"{self.width} x {self.height} = {self.width * self.height:,} pixels, at most {self.max_pixels:,}"


class PrivateHostError(URLNotAllowedError):
    """A URL, or one of its redirect hops, whose host resolves to a non-public address: refused unfetched.

    ``what`` names the URL or connection, ``host`` its host and ``addresses`` the
    non-public addresses it resolves to (empty when it resolves to none). The
    message ends with ``hint``, how to allow such hosts; :meth:`with_hint`
    gives the same error worded for another interface (the command line's
    option, or nothing a web client could act on).
    """

    DEFAULT_HINT = "pass allow_private_urls=True (--allow-private-urls on the command line) for intranet hosts"

    def __init__(self, what: str, host: str, addresses: list[str], hint: str = DEFAULT_HINT):
        self.what, self.host, self.addresses, self.hint = what, host, list(addresses), hint
        super().__init__(
            f"{what} refused: host {host!r} resolves to non-public address {', '.join(self.addresses) or 'none'} "
            f"(private, loopback, link-local and reserved addresses are not fetched by default); {hint}"
        )

    def with_hint(self, hint: str) -> PrivateHostError:
        """The same refusal, its message ending with ``hint`` instead."""
        return PrivateHostError(self.what, self.host, self.addresses, hint)


def check_pixels(size: tuple[int, int], max_pixels: int | None, what: str) -> None:
    """Refuse a picture of ``size`` (width, height, as its header declares) over ``max_pixels``.

    Raises :class:`TooManyPixelsError` (an :class:`~fashionrec.errors.ImageTooLargeError`)
    naming the picture as ``what``; ``max_pixels`` None allows any size.
    """
    width, height = size
    if max_pixels is not None and width * height > max_pixels:
        raise TooManyPixelsError(what, width, height, max_pixels)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; transparency is composited on white.

    Catalog pictures are products on white, so a transparent background must
    become white, not the black a plain ``convert("RGB")`` gives: indexing and
    photo queries both convert through here. An RGB image is returned as is.
    """
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
    elif image.mode in ("LA", "La", "PA", "RGBa"):
        image = image.convert("RGBA")
    elif image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(image, dtype=np.float64)
        hi = 65535.0 if image.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        image = Image.fromarray(np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if image.mode == "RGBA":
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def _own_rgb(image: Image.Image) -> Image.Image:
    """An RGB image of our own: never the caller's object, never one tied to a closed file."""
    rgb = to_rgb(image)
    return rgb.copy() if rgb is image else rgb


def _to_rgb(image: Image.Image, what: str) -> Image.Image:
    try:
        image.load()
        return _own_rgb(image)
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot use {what}: {exc}") from None


def _decode(stream: BinaryIO, what: str, max_pixels: int | None) -> Image.Image:
    """Check the declared size from the header, then decode fully (Pillow's bomb guard stays on)."""
    try:
        with Image.open(stream) as image:
            check_pixels(image.size, max_pixels, what)
            image.load()
            return _own_rgb(image)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{what} is too large to decode safely: {exc}") from None
    except UnidentifiedImageError:
        raise NotAnImageError(
            f"cannot decode {what}: not a picture format Pillow reads (jpg, png, webp, ...)"
        ) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated or corrupt data
        raise NotAnImageError(f"cannot decode {what}: {exc}") from None


# ---------------------------------------------------------------- which hosts may be fetched


def _resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (numeric text), as the connection would use them."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for *_, sockaddr in infos:
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    return addresses


def _address_allowed(address: str) -> bool:
    """True for a public unicast address; False for private, loopback, link-local, reserved,
    multicast and unspecified ones (and for text that is not an address)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            ip = embedded
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified
    )


def _resolve_within(host: str, port: int, timeout: float | None) -> list[str]:
    """:func:`_resolve` bounded by ``timeout`` seconds (a hanging DNS lookup is not covered by socket timeouts)."""
    if timeout is None:
        return _resolve(host, port)
    result: list[Any] = []

    def lookup() -> None:
        try:
            result.append(_resolve(host, port))
        except Exception as exc:  # noqa: BLE001 — handed to the caller's thread
            result.append(exc)

    thread = threading.Thread(target=lookup, name="fashionrec-resolve", daemon=True)
    thread.start()
    thread.join(timeout)
    if not result:
        raise ImageFetchTimeoutError(f"timed out resolving host {host!r} (more than {timeout} s)")
    if isinstance(result[0], Exception):
        raise result[0]
    return result[0]


def _public_addresses(host: str, port: int, what: str, timeout: float | None) -> list[str]:
    """The addresses of ``host``, all public; URLNotAllowedError when any is not, ImageFetchError when none resolve.

    ``what`` names the URL or connection in messages ("image URL http://...").
    """
    try:
        addresses = _resolve_within(host, port, timeout)
    except (socket.gaierror, UnicodeError) as exc:
        raise ImageFetchError(f"cannot fetch {what}: host {host!r} does not resolve ({exc})") from None
    except OSError as exc:
        raise ImageFetchError(f"cannot fetch {what}: resolving host {host!r} failed ({exc})") from None
    refused = [a for a in addresses if not _address_allowed(a)]
    if refused or not addresses:
        raise PrivateHostError(what, host, refused)
    return addresses


def _check_url(url: str, *, allow_private: bool, timeout: float | None, origin: str | None = None) -> None:
    """Refuse a URL (one hop) that is not http(s) or, unless ``allow_private``, whose host is not public.

    ``origin`` is the URL first asked for when ``url`` is a redirect hop: a refusal names both.
    """
    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    redirected = origin is not None and origin != url

    try:
        parts = parse_url(url)  # how requests/urllib3 will read it, so both agree on the host
    except LocationParseError as exc:
        raise URLNotAllowedError(f"invalid image URL {url!r}: {exc}") from None
    scheme = (parts.scheme or "").lower()
    if scheme not in ("http", "https") or not parts.host:
        where = f"{origin} redirected to {url!r}" if redirected else repr(url)
        raise URLNotAllowedError(f"image URL {where} refused: expected an http:// or https:// URL with a host")
    if allow_private:
        return
    host = parts.host.strip("[]")
    port = parts.port or (443 if scheme == "https" else 80)
    what = f"image URL {origin} redirected to {url}" if redirected else f"image URL {url}"
    _public_addresses(host, port, what, timeout)


def _connect_timeout(timeout: float | tuple[float, float]) -> float | None:
    return timeout[0] if isinstance(timeout, tuple) else timeout


def _own_session(public_only: bool):
    """A requests session for one download: its connections are watched (see :class:`_Watchdog`) and,
    when ``public_only``, go only to checked public addresses (see :func:`_adapter_class`)."""
    import requests

    session = requests.Session()
    adapter = _adapter_class(public_only)()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@functools.lru_cache(maxsize=None)
def _adapter_class(public_only: bool):
    """A requests adapter class whose connections register with the running download's watchdog.

    With ``public_only`` it also resolves each host itself, refuses it unless
    every address is public, and connects only to those checked addresses (TLS
    still verifies the host name). Made once per kind: requests and urllib3
    load on first use.
    """
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
    from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
    from urllib3.util import connection

    plain_new_conn = HTTPConnection._new_conn

    def public_new_conn(conn) -> socket.socket:
        what = f"connection to {conn.host}:{conn.port}"
        limit = conn.timeout if isinstance(conn.timeout, (int, float)) else None
        addresses = _public_addresses(conn._dns_host, conn.port, what, limit)
        error: OSError | None = None
        for address in addresses:
            try:
                return connection.create_connection(
                    (address, conn.port), conn.timeout,
                    source_address=conn.source_address, socket_options=conn.socket_options,
                )
            except socket.timeout as exc:
                raise ConnectTimeoutError(
                    conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
                ) from exc
            except OSError as exc:
                error = exc
        raise NewConnectionError(conn, f"Failed to establish a new connection: {error}") from error

    def new_conn(conn) -> socket.socket:
        sock = public_new_conn(conn) if public_only else plain_new_conn(conn)
        watchdog = getattr(_WATCHED, "watchdog", None)
        if watchdog is not None:
            watchdog.watch(conn, sock)
        return sock

    class WatchedHTTPConnection(HTTPConnection):
        _new_conn = new_conn

    class WatchedHTTPSConnection(HTTPSConnection):
        _new_conn = new_conn

    class WatchedHTTPPool(HTTPConnectionPool):
        ConnectionCls = WatchedHTTPConnection

    class WatchedHTTPSPool(HTTPSConnectionPool):
        ConnectionCls = WatchedHTTPSConnection

    class WatchedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": WatchedHTTPPool, "https": WatchedHTTPSPool}

    return WatchedAdapter


_WATCHED = threading.local()
"""``_WATCHED.watchdog``: the :class:`_Watchdog` of the download running in this thread, if any."""


class _CutHeadersFilter(logging.Filter):
    """Drops urllib3's "Failed to parse headers" warning (with its traceback) for headers this
    module's watchdog cut short at the deadline: the download ends in a timeout error that says
    so. The same warning from any other request is left alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        watchdog = getattr(_WATCHED, "watchdog", None)
        cut = watchdog is not None and watchdog.fired
        return not (cut and str(record.msg).startswith("Failed to parse headers"))


@functools.lru_cache(maxsize=None)
def _quiet_cut_headers() -> None:
    """Attach :class:`_CutHeadersFilter` to urllib3's connection logger, once per process."""
    logging.getLogger("urllib3.connection").addFilter(_CutHeadersFilter())


class _Watchdog:
    """Holds one download to its overall deadline, whatever the server does.

    A read timeout restarts with every byte received, so a server trickling a
    byte every few seconds (headers or body) never trips it. At the deadline a
    timer thread shuts down every watched connection (``shutdown(2)`` wakes a
    read blocked in another thread; closing would not), so the blocked read
    returns and the download ends with :attr:`fired` set. Connections opened by
    this module's sessions register themselves (:meth:`watch`); a caller's
    session's connection is watched from the moment its response arrives.
    """

    def __init__(self, total_timeout: float | None):
        self.fired = False
        self._lock = threading.Lock()
        self._watched: list[Any] = []
        self._done = False
        self._timer = None
        if total_timeout is not None:
            self._timer = threading.Timer(max(total_timeout, 0.0), self._fire)
            self._timer.daemon = True
            self._timer.name = "fashionrec-download-deadline"

    def __enter__(self) -> _Watchdog:
        _WATCHED.watchdog = self
        if self._timer is not None:
            self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        _WATCHED.watchdog = None
        with self._lock:
            self._done = True
            self._watched.clear()
        if self._timer is not None:
            self._timer.cancel()

    def watch(self, *things: Any) -> None:
        """Shut these down at the deadline: sockets, or objects holding one as ``.sock`` (a connection)."""
        with self._lock:
            if self._done:
                return
            self._watched.extend(t for t in things if t is not None)
            fired = self.fired
        if fired:  # too late already: cut this one now
            self._shut(things)

    def watch_response(self, response: Any) -> None:
        """Watch the connection a requests response reads its body from.

        urllib3 drops the connection's socket (``.sock`` None) when the server
        will close it after this response; the response's file still reads from
        it, so that socket is watched too.
        """
        raw = getattr(response, "raw", None)
        reader = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)  # http.client's socket file
        self.watch(getattr(raw, "connection", None), getattr(reader, "_sock", None))

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            watched = list(self._watched)
        self._shut(watched)

    @staticmethod
    def _shut(things) -> None:
        for thing in things:
            sock = getattr(thing, "sock", thing)
            try:
                fd = sock.fileno() if sock is not None else -1
            except (OSError, ValueError):
                continue
            if fd < 0:  # closed, or handed over to the TLS socket (watched through the connection)
                continue
            try:  # a duplicate descriptor: shutdown acts on the connection, not on the Python object
                with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as dup:
                    dup.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed or never connected
                pass


# ---------------------------------------------------------------- downloading


def _download(
    url: str,
    *,
    timeout: float | tuple[float, float],
    max_bytes: int,
    session: Any,
    max_redirects: int,
    total_timeout: float | None,
    allow_private_urls: bool,
) -> bytes:
    """The body of ``url``, following redirects here (each hop checked), within every bound."""
    _quiet_cut_headers()
    own = session is None
    if own:
        session = _own_session(public_only=not allow_private_urls)
    hops_allowed = getattr(session, "max_redirects", max_redirects) if not own else max_redirects
    start = time.monotonic()
    current = url
    try:
        with _Watchdog(total_timeout) as watchdog:
            try:
                for _ in range(hops_allowed + 1):
                    _check_deadline(url, start, total_timeout)
                    hop_timeout = _within_deadline(timeout, start, total_timeout)
                    _check_url(current, allow_private=allow_private_urls, timeout=_connect_timeout(hop_timeout),
                               origin=url)
                    response = _get(session, current, url, hop_timeout, hops_allowed)
                    watchdog.watch_response(response)
                    try:
                        if response.status_code in _REDIRECT_STATUSES and response.headers.get("Location"):
                            current = urljoin(response.url or current, _location(session, response))
                            log.debug("redirect from %s to %s", response.url, current)
                            continue
                        body = _read_body(response, url, timeout=timeout, max_bytes=max_bytes, start=start,
                                          total_timeout=total_timeout)
                    finally:
                        response.close()
                    if watchdog.fired:  # an unsized body "ends" when the watchdog cuts the connection
                        raise _deadline_error(url, total_timeout)
                    return body
                raise _too_many_redirects(url, hops_allowed)
            except ImageError as exc:
                # Whatever the cut connection looked like (or a timeout shortened to the time left),
                # the deadline is the cause.
                if watchdog.fired or (
                    isinstance(exc, ImageFetchTimeoutError) and _past_deadline(start, total_timeout)
                ):
                    raise _deadline_error(url, total_timeout) from None
                raise
    finally:
        if own:
            session.close()


def _within_deadline(timeout: float | tuple[float, float], start: float, total_timeout: float | None):
    """``timeout`` with each part shortened to the time left before the deadline (connect and DNS phases)."""
    if total_timeout is None:
        return timeout
    left = max(total_timeout - (time.monotonic() - start), 0.001)
    if isinstance(timeout, tuple):
        return tuple(min(part, left) if part is not None else left for part in timeout)
    return min(timeout, left) if timeout is not None else left


def _location(session: Any, response: Any) -> str:
    """The Location of a redirect, decoded as requests does (UTF-8 sent as Latin-1)."""
    if hasattr(session, "get_redirect_target"):
        return session.get_redirect_target(response) or response.headers["Location"]
    return response.headers["Location"]


def _too_many_redirects(url: str, hops_allowed: int) -> ImageFetchError:
    return ImageFetchError(
        f"too many redirects fetching {url}: more than {hops_allowed} (a redirect loop?); expected a direct image URL"
    )


def _get(session: Any, current: str, url: str, timeout: float | tuple[float, float], hops_allowed: int):
    """One request (no redirect followed), its failures as ImageError subclasses."""
    import requests

    where = url if current == url else f"{current} (redirected from {url})"
    try:
        return session.get(current, stream=True, timeout=timeout, allow_redirects=False)
    except requests.exceptions.TooManyRedirects:  # a session with max_redirects=0 refuses even to look at one
        raise _too_many_redirects(url, hops_allowed) from None
    except requests.exceptions.Timeout:
        raise ImageFetchTimeoutError(f"timed out fetching {where} (connect/read timeout {timeout} s)") from None
    except (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema) as exc:
        raise URLNotAllowedError(f"invalid image URL {current!r}: {exc}") from None
    except requests.exceptions.RequestException as exc:
        raise ImageFetchError(f"cannot fetch {where}: {_reason(exc)}") from None


def _read_body(response, url: str, *, timeout, max_bytes: int, start: float, total_timeout: float | None) -> bytes:
    """Check the status, type and declared length, then stream the body within the byte cap and the deadline."""
    import requests
    from urllib3.exceptions import ReadTimeoutError

    if response.status_code >= 400:
        raise ImageFetchError(
            f"HTTP {response.status_code} {response.reason or ''} fetching {url}; expected 200 with an image".replace(
                "  ", " "
            )
        )
    ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    # Many CDNs serve pictures as generic bytes (or say nothing): those are
    # let through to the decode check; a declared non-image type is refused.
    if not (ctype.startswith("image/") or ctype in _GENERIC_TYPES):
        raise NotAnImageError(f"{url} is not an image: content type {ctype!r}, expected image/*")
    limit_mb = max_bytes / 1024 / 1024
    length = response.headers.get("Content-Length")
    if length is not None and length.strip().isdigit() and int(length) > max_bytes:
        raise ImageTooLargeError(
            f"image at {url} is too large: Content-Length {int(length)} bytes, at most {max_bytes} ({limit_mb:.0f} MiB)"
        )
    buffer = bytearray()
    try:
        for chunk in response.iter_content(_CHUNK):
            buffer += chunk
            if len(buffer) > max_bytes:
                raise ImageTooLargeError(
                    f"image at {url} is too large: more than {max_bytes} bytes ({limit_mb:.0f} MiB) received"
                )
            _check_deadline(url, start, total_timeout)
    except requests.exceptions.ConnectionError as exc:
        if any(isinstance(a, ReadTimeoutError) for a in exc.args):
            raise ImageFetchTimeoutError(f"timed out fetching {url} (read timeout {timeout} s)") from None
        raise ImageFetchError(f"connection lost fetching {url}: {_reason(exc)}") from None
    except requests.exceptions.Timeout:
        raise ImageFetchTimeoutError(f"timed out fetching {url} (read timeout {timeout} s)") from None
    except requests.exceptions.RequestException as exc:
        raise ImageFetchError(f"cannot fetch {url}: {_reason(exc)}") from None
    log.debug("downloaded %d bytes from %s in %.2f s", len(buffer), url, time.monotonic() - start)
    return bytes(buffer)


def _check_deadline(url: str, start: float, total_timeout: float | None) -> None:
    if total_timeout is not None and time.monotonic() - start > total_timeout:
        raise _deadline_error(url, total_timeout)


def _past_deadline(start: float, total_timeout: float | None) -> bool:
    """True once the deadline is reached (within a timer's granularity)."""
    return total_timeout is not None and time.monotonic() - start >= total_timeout - 0.05


def _deadline_error(url: str, total_timeout: float | None) -> ImageFetchTimeoutError:
    return ImageFetchTimeoutError(
        f"timed out fetching {url}: download took over {total_timeout} s (the overall limit); "
        "expected a server that sends the whole picture in time"
    )


def _reason(exc: Exception) -> str:
    """A short, one-line reason from a requests / urllib3 / socket exception (no nested reprs)."""
    from .network import describe_network_error

    return describe_network_error(exc)
