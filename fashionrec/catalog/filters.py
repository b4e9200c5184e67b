"""Attribute filters: which products a selection or a search may return.

A :class:`Filter` says, for some attributes, which values are allowed: a
product matches when, for every attribute of the filter (AND), its value is one
of the allowed ones (OR). Values compare as text, case-insensitively
(``gender=women`` matches ``Women``; ``year=2012`` matches the integer 2012);
a missing value never matches.

The same object serves every consumer: :meth:`Catalog.select` and the exact
search engine apply it as a boolean mask (:meth:`Filter.mask`); an engine with
its own query language (a database server) translates :attr:`Filter.terms`
into it. On the command line a filter is written ``--where KEY=VALUE``
(:func:`parse_where`); in Python, as a mapping
``{"gender": "Women", "articleType": ["Heels", "Flats"]}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import FilterError


@dataclass(frozen=True)
class Filter:
    """Allowed values per attribute (AND across attributes, OR within one).

    ``terms`` is a tuple of ``(attribute, values)`` pairs in the order given,
    each ``values`` a tuple of distinct strings as given (first spelling kept).
    Equal filters compare and hash equal whatever the order or case of their
    values, so they can key caches.
    """

    terms: tuple[tuple[str, tuple[str, ...]], ...]

    def __post_init__(self) -> None:
        # The matching key: casefolded, sorted values per attribute.
        key = tuple(sorted((attr, tuple(sorted({v.casefold() for v in values}))) for attr, values in self.terms))
        object.__setattr__(self, "_key", key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Filter) and self._key == other._key  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._key)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"Filter({self.to_dict()!r})"

    @classmethod
    def from_where(cls, where: Mapping[str, Any] | Filter | None, columns: Sequence[str] | None = None) -> Filter | None:
        """A filter from a mapping ``{attribute: value or list of values}``; None for no filter.

        Values may be strings or numbers (compared as text). With ``columns``,
        each attribute must be one of them. Raises :class:`FilterError` naming
        what is wrong.
        """
        if where is None:
            return None
        if isinstance(where, Filter):
            if columns is not None:
                _check_attributes(where.attributes, columns)
            return where if where.terms else None
        if not isinstance(where, Mapping):
            raise FilterError(
                f"a filter must be a mapping of attribute to value(s), e.g. {{'gender': 'Women'}}; "
                f"got {type(where).__name__} {where!r}"
            )
        terms: dict[str, list[str]] = {}
        for key, value in where.items():
            if not isinstance(key, str) or not key.strip():
                raise FilterError(f"filter attribute names must be non-empty text, got {key!r}")
            values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
            if not values:
                raise FilterError(f"filter {key!r} allows no value; expected a value or a non-empty list")
            for v in values:
                if v is None or isinstance(v, (Mapping, list, tuple, set)):
                    raise FilterError(f"filter {key!r}: value {v!r} is not a text or a number")
            seen: dict[str, str] = {}
            for v in values:
                seen.setdefault(str(v).casefold(), str(v))
            terms[key] = list(seen.values())
        if columns is not None:
            _check_attributes(terms, columns)
        if not terms:
            return None
        return cls(tuple((key, tuple(values)) for key, values in terms.items()))

    @property
    def attributes(self) -> list[str]:
        """The attributes the filter constrains, in the order given."""
        return [attr for attr, _ in self.terms]

    def to_dict(self) -> dict[str, list[str]]:
        """``{attribute: [allowed values]}``, as given (first spelling of each value)."""
        return {attr: list(values) for attr, values in self.terms}

    def mask(self, products: pd.DataFrame) -> np.ndarray:
        """(N,) bool array: which rows of ``products`` match. Raises FilterError for a missing column."""
        _check_attributes(self.attributes, list(products.columns))
        mask = np.ones(len(products), dtype=bool)
        for attr, allowed in self._key:  # type: ignore[attr-defined]
            column = products[attr].astype("string").str.casefold()
            mask &= column.isin(allowed).fillna(False).to_numpy(dtype=bool)
        return mask


def _check_attributes(attributes: Iterable[str], columns: Sequence[str]) -> None:
    for attr in attributes:
        if attr not in columns:
            from .model import BOOKKEEPING_COLUMNS  # here, not at import: model imports this module

            known = ", ".join(c for c in columns if c not in BOOKKEEPING_COLUMNS and c != "image_signature")
            raise FilterError(f"unknown attribute {attr!r} in filter; known attributes: {known}")


def parse_where(items: Iterable[str] | None) -> dict[str, list[str]]:
    """Parse CLI filters ``KEY=VALUE`` into ``{KEY: [VALUE, ...]}``.

    Repeating a key allows several values (``--where articleType=Heels
    --where articleType=Flats``).
    """
    where: dict[str, list[str]] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FilterError(f"filter {item!r} is not KEY=VALUE (e.g. gender=Women)")
        where.setdefault(key.strip(), []).append(value.strip())
    return where


def normalize_where(where: Mapping[str, Any] | Filter | None, columns: Sequence[str]) -> dict[str, list[str]]:
    """Validate a filter against ``columns``; ``{attribute: [values as text]}`` ({} for no filter)."""
    flt = Filter.from_where(where, columns)
    return flt.to_dict() if flt is not None else {}


def where_mask(products: pd.DataFrame, where: Mapping[str, Any] | Filter | None) -> pd.Series:
    """Boolean Series (aligned with ``products``) of the rows matching ``where`` (all rows for no filter)."""
    flt = Filter.from_where(where, list(products.columns))
    if flt is None:
        return pd.Series(True, index=products.index)
    return pd.Series(flt.mask(products), index=products.index)
