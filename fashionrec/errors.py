"""Exceptions raised by fashionrec.

Every error a user can cause derives from :class:`FashionrecError`. Its message
says what was received and what was expected; the CLI prints it as one line and
exits non-zero, never with a traceback.
"""

from __future__ import annotations


class FashionrecError(Exception):
    """Base class for errors caused by input, configuration or environment."""

    exit_code = 1


class CatalogError(FashionrecError):
    """A catalog folder or its CSV cannot be used (names the file and line)."""


class DownloadError(FashionrecError):
    """A dataset or weights download failed (e.g. no network)."""


class BackboneError(FashionrecError):
    """An unknown backbone, or weights that cannot be loaded."""


class IndexFolderError(FashionrecError):
    """An index folder is missing, corrupt or incompatible."""


class QueryError(FashionrecError):
    """A recommendation query names an unknown id, attribute or image."""


# One exception type per mistake in a query's parameters. Each is also a
# ValueError (it is one), so plain-Python callers may catch either.


class InvalidKError(QueryError, ValueError):
    """``k`` (a number of results) is not a whole number of at least 1."""


class UnknownMetricError(QueryError, ValueError):
    """A distance metric that is not one of :data:`fashionrec.validation.METRICS`."""


class FilterError(CatalogError, QueryError, ValueError):
    """A filter that is not ``KEY=VALUE``, not a mapping, or names an unknown attribute.

    Raised when selecting catalog products as well as when searching, so it is
    both a :class:`CatalogError` and a :class:`QueryError`.
    """


class UnknownEngineError(QueryError, ValueError):
    """A search engine name that is not registered."""


class UnknownProductError(QueryError):
    """A product id that is not in the index (or the catalog)."""


# Pictures a user hands in (a file, an upload, a URL) can fail in a few distinct
# ways; each has its own type so that an interface can answer each its own way
# (the web API: 413, 415, 422, 502, 504).


class ImageError(QueryError):
    """A picture that cannot be used as a query (base class of the kinds below)."""


class NotAnImageError(ImageError):
    """Data that is not a picture Pillow can decode (or a URL whose content type is not an image)."""


class ImageTooLargeError(ImageError):
    """A picture over the byte cap, or whose header declares more pixels than allowed."""


class ImageFetchError(ImageError):
    """A picture URL that cannot be fetched: unreachable host, HTTP error status, too many redirects."""


class ImageFetchTimeoutError(ImageFetchError):
    """A picture URL that did not answer (or finish) within its time limits."""


class URLNotAllowedError(ImageError):
    """A picture URL refused before fetching: not http(s), or a private, loopback, link-local or reserved address."""
