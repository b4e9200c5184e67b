"""Browsing a catalog: the products matching a filter and a text, a page at a time, with facet counts.

:class:`CatalogBrowser` answers :meth:`Recommender.browse`. A product matches
when it passes the filter (the same rule as :class:`~fashionrec.catalog.filters.Filter`:
values compared as text, case-insensitively; a missing value never matches)
and every whitespace-separated word of the text occurs in its
``productDisplayName`` (case-insensitive substring: ``shirt`` finds
``Tshirts``). Facet counts are disjunctive: the counts of an attribute are
taken over the products that match the text and every filter term but that
attribute's own, so choosing ``gender=Women`` leaves the count of ``Men`` in
view.

Per-column work is done once, on first use, under a lock: each column is
factorised into integer codes (its distinct values as text), so a filter term
is one table lookup per product and a facet one ``bincount``; product names are
split into words with, per distinct word, the rows holding it, so a text word
is matched against the distinct words (a word of the query contains no
whitespace, so it occurs in a name exactly when it occurs in one of the name's
words) rather than against every name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..catalog.filters import Filter
from ..errors import FilterError
from ..output import plain_values
from .results import Product, ProductPage

FACETS: tuple[str, ...] = ("gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "usage")
"""Attributes whose values are counted for a browse page (those the index has)."""
NAME_COLUMN = "productDisplayName"
"""The column text searches look in."""
MAX_PER_PAGE = 200
"""Most products one page may hold."""


@dataclass(frozen=True)
class _Column:
    """One column factorised: ``codes[i]`` is row i's value as an index into ``values`` (-1: missing)."""

    codes: np.ndarray
    values: list[str]
    folded: list[str]

    @classmethod
    def of(cls, series: pd.Series) -> _Column:
        codes, uniques = pd.factorize(series.astype("string"), use_na_sentinel=True)
        values = [str(v) for v in uniques]
        return cls(np.asarray(codes, dtype=np.intp), values, [v.casefold() for v in values])

    def mask(self, allowed_folded: frozenset[str]) -> np.ndarray:
        """(N,) bool: rows whose value, casefolded, is one of ``allowed_folded``."""
        table = np.fromiter((v in allowed_folded for v in self.folded), dtype=bool, count=len(self.folded))
        return np.append(table, False)[self.codes]  # code -1 (missing) reads the trailing False

    def counts(self, rows: np.ndarray | None) -> dict[str, int]:
        """Value -> how many of ``rows`` (positions; None: all) hold it; by count descending, then value;
        zeros and missing values left out."""
        codes = self.codes if rows is None else self.codes.take(rows)  # a gather: faster than a boolean mask
        counts = np.bincount(codes + 1, minlength=len(self.values) + 1)[1:]
        present = np.flatnonzero(counts)
        pairs = sorted(((self.values[i], int(counts[i])) for i in present), key=lambda vc: (-vc[1], vc[0]))
        return dict(pairs)


class _Words:
    """The casefolded words of the product names, each with the rows whose name holds it."""

    def __init__(self, names: pd.Series):
        rows_of: dict[str, list[int]] = {}
        for row, name in enumerate(names.astype("string").str.casefold().tolist()):
            if name is pd.NA:
                continue
            for word in set(name.split()):
                rows_of.setdefault(word, []).append(row)
        self.n = len(names)
        self.words = list(rows_of)
        self.rows = [np.asarray(rows_of[w], dtype=np.intp) for w in self.words]

    def mask(self, word: str) -> np.ndarray:
        """(N,) bool: rows whose name contains ``word`` (casefolded, no whitespace)."""
        mask = np.zeros(self.n, dtype=bool)
        hits = [self.rows[i] for i, w in enumerate(self.words) if word in w]
        if hits:
            mask[np.concatenate(hits)] = True
        return mask


class CatalogBrowser:
    """Pages of the products of a DataFrame selected by a filter and a text, with facet counts.

    ``products`` is the index's product table (``id`` first); it is read,
    never modified. Safe to call from many threads: the per-column tables are
    made once under a lock, and the rest is read-only.
    """

    def __init__(
        self,
        products: pd.DataFrame,
        facets: Sequence[str] = FACETS,
        plain_columns: Callable[[], list[tuple[str, list[Any]]]] | None = None,
    ):
        self.products = products
        self.facets = tuple(f for f in facets if f in products.columns)
        # The product table as plain JSON values, ``[(column, values), ...]`` in index order: the
        # Recommender passes the lists its result records are built from, so the table is held once.
        self._plain_columns_of = plain_columns
        self._columns: dict[str, _Column] = {}
        self._words: _Words | None = None
        self._plain: list[tuple[str, list[Any]]] | None = None
        self._all_counts: dict[str, dict[str, int]] | None = None  # the facets of the whole catalog
        self._lock = threading.Lock()

    def page(self, flt: Filter | None, words: Sequence[str], page: int, per_page: int) -> ProductPage:
        """Page ``page`` (from 1) of ``per_page`` products matching ``flt`` and every one of ``words``.

        ``flt`` is validated against the columns already; ``words`` are the
        text's whitespace-separated words (any case). A page past the last one
        is empty.
        """
        n = len(self.products)
        text_mask = np.ones(n, dtype=bool)
        if words:
            index = self._name_words()
            for word in words:
                text_mask &= index.mask(word.casefold())
        term_masks: dict[str, np.ndarray] = {}
        for attribute, values in flt.terms if flt is not None else ():
            term_masks[attribute] = self._column(attribute).mask(frozenset(v.casefold() for v in values))
        selected = text_mask.copy()
        for mask in term_masks.values():
            selected &= mask

        rows = np.flatnonzero(selected)
        if not words and not term_masks:
            facets = self._catalog_counts()
        else:
            facets = {}
            for attribute in self.facets:
                if attribute in term_masks:  # disjunctive: this attribute's own term left out
                    within = text_mask.copy()
                    for other, mask in term_masks.items():
                        if other != attribute:
                            within &= mask
                    facets[attribute] = self._column(attribute).counts(np.flatnonzero(within))
                else:
                    facets[attribute] = self._column(attribute).counts(rows)
        total = len(rows)
        shown = rows[(page - 1) * per_page : page * per_page]
        return ProductPage(
            total=total,
            page=page,
            per_page=per_page,
            pages=-(-total // per_page),
            products=[Product(**record) for record in self._take(shown)],
            facets=facets,
        )

    def _catalog_counts(self) -> dict[str, dict[str, int]]:
        """The facets of the whole catalog (no text, no filter: the first page everyone opens), counted once."""
        if self._all_counts is None:
            counts = {attribute: self._column(attribute).counts(None) for attribute in self.facets}
            self._all_counts = counts  # one assignment: a racing thread computes the same dict
        return {attribute: dict(values) for attribute, values in self._all_counts.items()}

    def _take(self, rows: np.ndarray) -> list[dict[str, Any]]:
        """The rows at positions ``rows`` as ``{column: plain value}`` dicts, columns in index order."""
        columns = self._plain
        if columns is None:
            if self._plain_columns_of is not None:
                columns = self._plain_columns_of()
            else:
                columns = [(str(name), plain_values(self.products[name])) for name in self.products.columns]
            self._plain = columns  # one assignment: a racing thread builds the same lists
        return [{name: values[row] for name, values in columns} for row in rows.tolist()]

    def _column(self, name: str) -> _Column:
        column = self._columns.get(name)
        if column is None:
            with self._lock:
                column = self._columns.get(name)
                if column is None:
                    column = self._columns[name] = _Column.of(self.products[name])
        return column

    def _name_words(self) -> _Words:
        if self._words is None:
            if NAME_COLUMN not in self.products.columns:
                raise FilterError(
                    f"cannot search product names: this index has no {NAME_COLUMN} column "
                    f"(columns: {', '.join(map(str, self.products.columns))}); leave the text empty"
                )
            with self._lock:
                if self._words is None:
                    self._words = _Words(self.products[NAME_COLUMN])
        return self._words
