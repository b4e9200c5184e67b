"""One place that checks the parameters every query takes: ``k``, the metric and the filter.

Each mistake has its own exception type (:mod:`fashionrec.errors`), raised with
what was received and what was expected, whichever layer — CLI, Python API,
search engine or evaluation — is called first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InvalidKError, UnknownMetricError

if TYPE_CHECKING:
    from .catalog.filters import Filter

METRICS: tuple[str, ...] = ("euclidean", "cosine")
"""Distances between feature vectors: ``euclidean`` is ``||q - x||`` (not squared),
``cosine`` is ``1 - cos(q, x)`` (a zero vector has cosine similarity 0 to everything)."""


def check_k(k: Any, *, name: str = "k") -> int:
    """``k`` as an int >= 1; accepts ints, NumPy integers and whole-number strings ("5").

    Raises :class:`~fashionrec.errors.InvalidKError` otherwise (booleans, floats, "five", 0).
    """
    if isinstance(k, (bool, np.bool_)):
        raise InvalidKError(f"{name} must be a whole number of results, got {k!r}")
    if isinstance(k, (int, np.integer)):
        value = int(k)
    else:
        try:
            value = int(str(k).strip())
        except ValueError:
            raise InvalidKError(f"{name} must be a whole number of results, got {k!r}") from None
    if value < 1:
        raise InvalidKError(f"{name} must be at least 1, got {value}")
    return value


def check_metric(metric: Any) -> str:
    """``metric`` if it is one of :data:`METRICS`, else :class:`~fashionrec.errors.UnknownMetricError`."""
    if metric not in METRICS:
        raise UnknownMetricError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    return metric


def check_filter(where: Mapping[str, Any] | Filter | None, columns: Sequence[str] | None = None) -> Filter | None:
    """A :class:`~fashionrec.catalog.filters.Filter` from a mapping (None when empty).

    With ``columns``, every attribute must be one of them. Raises
    :class:`~fashionrec.errors.FilterError`.
    """
    from .catalog.filters import Filter

    return Filter.from_where(where, columns)
