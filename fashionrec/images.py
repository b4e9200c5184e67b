"""Loading product pictures from a local file, an http(s) URL or memory.

:func:`open_image` is the one entry point every view and the image query use.
Downloads are bounded: connect/read timeouts and an overall deadline, a size
cap enforced from ``Content-Length`` and again while streaming, a limited
number of redirects, an ``image/*`` content type, and a full decode by Pillow
with its decompression-bomb guard left on. Every failure is one
:class:`~fashionrec.errors.QueryError` saying what was received and what was
expected.
"""

from __future__ import annotations

import io
import logging
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import QueryError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT: tuple[float, float] = (3.05, 10.0)
"""(connect, read) timeouts in seconds for downloads."""
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
"""Largest download accepted (20 MiB)."""
DEFAULT_MAX_REDIRECTS = 5
_CHUNK = 64 * 1024


_GENERIC_TYPES = ("", "application/octet-stream", "binary/octet-stream")
"""Content types that say nothing about the body; Pillow's decode decides."""


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
) -> Image.Image:
    """Open a picture as an RGB :class:`PIL.Image.Image`.

    ``source`` is a local path, an ``http(s)`` URL or a PIL image (converted,
    never modified). ``timeout`` is requests' ``(connect, read)`` pair;
    ``total_timeout`` bounds a whole download (a server trickling bytes);
    ``max_bytes`` caps the download size; ``session`` is an optional
    :class:`requests.Session` (its own ``max_redirects`` then applies).

    Raises :class:`QueryError` for a missing file, a timeout, a body over
    ``max_bytes``, a non-image content type, undecodable data, too many
    redirects or an HTTP error status.
    """
    if isinstance(source, Image.Image):
        return _to_rgb(source, "the given image")
    if isinstance(source, str) and is_url(source):
        data = _download(
            source.strip(),
            timeout=timeout,
            max_bytes=max_bytes,
            session=session,
            max_redirects=max_redirects,
            total_timeout=total_timeout,
        )
        return _decode(io.BytesIO(data), f"image at {source}")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if isinstance(source, str) and "://" in source:
            raise QueryError(f"unsupported image URL {source!r}; expected an http:// or https:// URL or a local file")
        if not path.exists():
            raise QueryError(f"image file {path} not found; expected an existing image file or an http(s) URL")
        if not path.is_file():
            raise QueryError(f"{path} is not a file; expected an image file (jpg, png, ...)")
        try:
            handle = open(path, "rb")
        except OSError as exc:
            raise QueryError(f"cannot read image file {path}: {exc.strerror or exc}") from None
        with handle:
            return _decode(handle, f"image file {path}")
    raise QueryError(
        f"cannot open an image from {type(source).__name__} {source!r}; expected a file path, an http(s) URL or a PIL image"
    )


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
        raise QueryError(f"cannot use {what}: {exc}") from None


def _decode(stream, what: str) -> Image.Image:
    """Decode fully with Pillow (its decompression-bomb guard stays on)."""
    try:
        with Image.open(stream) as image:
            image.load()
            return _own_rgb(image)
    except Image.DecompressionBombError as exc:
        raise QueryError(f"{what} is too large to decode safely: {exc}") from None
    except UnidentifiedImageError:
        raise QueryError(f"cannot decode {what}: not a picture format Pillow reads (jpg, png, webp, ...)") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data
        raise QueryError(f"cannot decode {what}: {exc}") from None


def _download(
    url: str,
    *,
    timeout: float | tuple[float, float],
    max_bytes: int,
    session: Any,
    max_redirects: int,
    total_timeout: float | None,
) -> bytes:
    import requests
    from urllib3.exceptions import ReadTimeoutError

    own = session is None
    if own:
        session = requests.Session()
        session.max_redirects = max_redirects
    limit_mb = max_bytes / 1024 / 1024
    start = time.monotonic()
    response = None
    try:
        try:
            response = session.get(url, stream=True, timeout=timeout, allow_redirects=True)
        except requests.exceptions.TooManyRedirects:
            raise QueryError(
                f"too many redirects fetching {url}: more than {getattr(session, 'max_redirects', max_redirects)} "
                "(a redirect loop?); expected a direct image URL"
            ) from None
        except requests.exceptions.Timeout:
            raise QueryError(f"timed out fetching {url} (connect/read timeout {timeout} s)") from None
        except requests.exceptions.InvalidURL as exc:
            raise QueryError(f"invalid image URL {url!r}: {exc}") from None
        except requests.exceptions.RequestException as exc:
            raise QueryError(f"cannot fetch {url}: {_reason(exc)}") from None

        if response.status_code >= 400:
            raise QueryError(
                f"HTTP {response.status_code} {response.reason or ''} fetching {url}; expected 200 with an image".replace(
                    "  ", " "
                )
            )
        ctype = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        # Many CDNs serve pictures as generic bytes (or say nothing): those are
        # let through to the decode check; a declared non-image type is refused.
        if not (ctype.startswith("image/") or ctype in _GENERIC_TYPES):
            raise QueryError(f"{url} is not an image: content type {ctype!r}, expected image/*")
        length = response.headers.get("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > max_bytes:
            raise QueryError(
                f"image at {url} is too large: Content-Length {int(length)} bytes, at most {max_bytes} ({limit_mb:.0f} MiB)"
            )
        buffer = bytearray()
        try:
            for chunk in response.iter_content(_CHUNK):
                buffer += chunk
                if len(buffer) > max_bytes:
                    raise QueryError(
                        f"image at {url} is too large: more than {max_bytes} bytes ({limit_mb:.0f} MiB) received"
                    )
                if total_timeout is not None and time.monotonic() - start > total_timeout:
                    raise QueryError(f"timed out fetching {url}: download took over {total_timeout} s")
        except requests.exceptions.ConnectionError as exc:
            if any(isinstance(a, ReadTimeoutError) for a in exc.args):
                raise QueryError(f"timed out fetching {url} (read timeout {timeout} s)") from None
            raise QueryError(f"connection lost fetching {url}: {_reason(exc)}") from None
        except requests.exceptions.Timeout:
            raise QueryError(f"timed out fetching {url} (read timeout {timeout} s)") from None
        except requests.exceptions.RequestException as exc:
            raise QueryError(f"cannot fetch {url}: {_reason(exc)}") from None
        log.debug("downloaded %d bytes from %s in %.2f s", len(buffer), url, time.monotonic() - start)
        return bytes(buffer)
    finally:
        if response is not None:
            response.close()
        if own:
            session.close()


def _reason(exc: Exception) -> str:
    """A short reason from a requests exception (drop urllib3's long repr)."""
    text = str(exc)
    for marker in ("Failed to establish a new connection: ", "NameResolutionError"):
        if marker in text:
            return text.split(marker, 1)[1].rstrip(")'\"") or text
    return text[:300]
