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
