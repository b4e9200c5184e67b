"""Reading uploaded pictures from a request body, capped while it streams.

A request body is read chunk by chunk from ``request.stream()`` and refused
with :class:`~fashionrec.errors.ImageTooLargeError` (413) as soon as more than
the cap has arrived — or at once, when ``Content-Length`` already says so. A
body is never read whole first: a client sending gigabytes costs the server
at most the cap (plus a chunk) of memory. ``multipart/form-data`` is parsed by
python-multipart's streaming parser as the chunks come, so the cap holds for
the picture inside a form too.

Three kinds of body are accepted:

* ``multipart/form-data``: the picture is the file field (``image`` by default),
  the other fields are kept as text;
* ``image/*`` or ``application/octet-stream``: the body is the picture;
* ``application/x-www-form-urlencoded``: fields only (a form that gives an image
  URL instead of a file).

Anything else is :class:`~fashionrec.errors.NotAnImageError` (415). The bytes
are then decoded with :func:`fashionrec.images.decode_image`, which checks the
pixel count from the header before decoding.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import ClientDisconnect, Request

from ..errors import ImageTooLargeError, NotAnImageError
from .errors import RequestError

log = logging.getLogger(__name__)

FORM_OVERHEAD = 64 * 1024
"""Bytes a form may carry beyond its picture: boundaries, part headers and the other fields."""

UPLOAD_NAME = "upload"
"""The name of a picture sent without one (a raw body, or a file part without a file name)."""

RAW_TYPES = ("application/octet-stream",)
"""Content types, besides ``image/*``, accepted as a raw picture body."""


@dataclass
class UploadForm:
    """What a request body held.

    ``data`` is the picture's bytes (``b""`` when the body carried none, e.g. a form
    with an empty file input), ``filename`` the name it was sent under (only the
    last path component; ``"upload"`` when it had none), ``fields`` the form's
    other fields as ``(name, value)`` pairs in the order sent.
    """

    data: bytes = b""
    filename: str = UPLOAD_NAME
    fields: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of form field ``name``."""
        for key, value in self.fields:
            if key == name:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of form field ``name``, in the order sent."""
        return [value for key, value in self.fields if key == name]


async def read_upload(request: Request, max_bytes: int, *, file_field: str = "image") -> tuple[bytes, str]:
    """The uploaded picture of ``request``: ``(bytes, file name)``.

    The body is a multipart form with a file field ``file_field``, or the picture
    itself (``image/*`` or ``application/octet-stream``). Raises
    :class:`ImageTooLargeError` as soon as more than ``max_bytes`` arrived,
    :class:`NotAnImageError` for another content type, and
    :class:`~fashionrec.web.errors.RequestError` for a form without the picture.
    """
    form = await read_form(request, max_bytes, file_field=file_field)
    if not form.data:
        content_type = request.headers.get("content-type", "")
        if content_type.lower().startswith("multipart/"):
            raise RequestError(f"the form has no picture in its {file_field!r} file field; "
                               f"expected a multipart form with a file named {file_field!r}")
        raise NotAnImageError("the request body is empty; expected the bytes of a picture (jpg, png, webp, ...)")
    return form.data, form.filename


async def read_form(request: Request, max_bytes: int, *, file_field: str = "image") -> UploadForm:
    """Read ``request``'s body as an :class:`UploadForm`, refusing it past ``max_bytes`` while it streams.

    ``max_bytes`` caps the picture; a form may carry :data:`FORM_OVERHEAD` bytes
    more (boundaries and fields). Raises :class:`ImageTooLargeError`,
    :class:`NotAnImageError` (a content type that is not a form or a picture) or
    :class:`~fashionrec.web.errors.RequestError` (a malformed form).
    """
    content_type = request.headers.get("content-type", "")
    kind, params = parse_options_header(content_type)
    kind_text = kind.decode("latin-1").lower()
    if kind_text == "multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise RequestError("the multipart form has no boundary in its Content-Type; expected multipart/form-data; boundary=...")
        reader = _MultipartReader(boundary, max_bytes, file_field)
        await _stream(request, max_bytes + FORM_OVERHEAD, reader.feed, "the uploaded form",
                      accepted=f"a picture of at most {max_bytes} bytes ({_size(max_bytes)}) is accepted")
        return reader.finish()
    if kind_text.startswith("image/") or kind_text in RAW_TYPES:
        chunks: list[bytes] = []
        await _stream(request, max_bytes, chunks.append, "the uploaded picture")
        return UploadForm(data=b"".join(chunks))
    if kind_text == "application/x-www-form-urlencoded":
        chunks = []
        await _stream(request, FORM_OVERHEAD, chunks.append, "the form")
        text = b"".join(chunks).decode("utf-8", errors="replace")
        return UploadForm(fields=parse_qsl(text, keep_blank_values=True))
    received = repr(content_type) if content_type else "none"
    raise NotAnImageError(
        f"cannot read a picture from a body of content type {received}; expected multipart/form-data "
        f"with a file field {file_field!r}, or the picture itself as image/* or application/octet-stream"
    )


async def _stream(request: Request, limit: int, consume, what: str, *, accepted: str | None = None) -> None:
    """Feed the body's chunks to ``consume``; ImageTooLargeError once more than ``limit`` bytes arrived.

    ``accepted`` says in the error what the user may send (default: ``limit`` bytes).
    """
    accepted = accepted or f"at most {limit} ({_size(limit)}) are accepted"
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise ImageTooLargeError(f"{what} is too large: Content-Length says {int(declared)} bytes; {accepted}")
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                log.debug("refused %s after %d bytes (limit %d)", what, received, limit)
                raise ImageTooLargeError(f"{what} is too large: more than {limit} bytes received; {accepted}")
            if chunk:
                consume(chunk)
    except ClientDisconnect:
        raise RequestError(f"the client disconnected while sending {what}") from None


class _MultipartReader:
    """Collects one file field and the text fields of a multipart body, as python-multipart parses it."""

    def __init__(self, boundary: bytes, max_bytes: int, file_field: str):
        self.max_bytes = max_bytes
        self.file_field = file_field
        self.form = UploadForm()
        self._found_file = False
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._name: str | None = None
        self._filename: str | None = None
        self._is_picture = False
        self._buffer = bytearray()
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": lambda data, start, end: self._header_field.extend(data[start:end]),
                "on_header_value": lambda data, start, end: self._header_value.extend(data[start:end]),
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    def feed(self, chunk: bytes) -> None:
        try:
            self.parser.write(chunk)
        except (ImageTooLargeError, RequestError):
            raise
        except Exception as exc:  # python-multipart's parse errors
            raise RequestError(f"the request body is not a valid multipart form: {exc}") from None

    def finish(self) -> UploadForm:
        if self.parser.state != MultipartState.END:
            raise RequestError("the multipart form ended before its closing boundary; expected a complete form")
        return self.form

    def _part_begin(self) -> None:
        self._headers = {}
        self._name = self._filename = None
        self._is_picture = False
        self._buffer = bytearray()

    def _header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", b""))
        name = params.get(b"name")
        filename = params.get(b"filename")
        self._name = name.decode("utf-8", errors="replace") if name is not None else None
        self._filename = filename.decode("utf-8", errors="replace") if filename is not None else None
        self._is_picture = self._name == self.file_field and not self._found_file

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        self._buffer.extend(data[start:end])
        if self._is_picture and len(self._buffer) > self.max_bytes:
            name = _base_name(self._filename) or UPLOAD_NAME
            raise ImageTooLargeError(
                f"the uploaded file {name!r} is too large: more than {self.max_bytes} bytes received; "
                f"at most {self.max_bytes} ({_size(self.max_bytes)}) are accepted"
            )

    def _part_end(self) -> None:
        if self._is_picture:
            self._found_file = True
            self.form.data = bytes(self._buffer)
            self.form.filename = _base_name(self._filename) or UPLOAD_NAME
        elif self._name is not None and self._filename is None:
            self.form.fields.append((self._name, self._buffer.decode("utf-8", errors="replace")))
        self._buffer = bytearray()


def _base_name(filename: str | None) -> str:
    """The last component of a client's file name (some browsers send a whole path), at most 200 characters."""
    if not filename:
        return ""
    return filename.replace("\\", "/").rsplit("/", 1)[-1].strip()[:200]


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / 1024 / 1024:g} MiB"
    if n >= 1024:
        return f"{n / 1024:g} KiB"
    return f"{n} bytes"
