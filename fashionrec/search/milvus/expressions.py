"""Filters as Milvus boolean expressions, with exactly the meaning a :class:`Filter` has everywhere else.

A :class:`~fashionrec.catalog.filters.Filter` compares values as text,
case-insensitively, and a missing value never matches. Milvus compares
strings exactly. So the collection stores each attribute as the catalog
spells it (VARCHAR; a missing value as :data:`MISSING`, the empty string,
since Milvus 2.3 has no nullable fields), and a filter value is translated into
every spelling of it the catalog holds: ``gender=women`` becomes
``gender in ["Women"]`` when the catalog writes "Women", and
``gender in ["Women", "WOMEN"]`` when it writes both. A value the catalog
never holds matches nothing, and the server is not asked.

Values are written as double-quoted string literals with backslashes,
quotes and control characters escaped (:func:`quote`): a product name such as
``Nike "Air" 9\\" Sneaker`` is matched, never breaks the expression, and never
injects one. A filter on an attribute the collection does not hold as a
field — or on the empty string in an attribute with missing values, which
the server could not tell apart — is translated into the ids of the products
it keeps (``id in [...]``), computed from the index folder's own products.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ...catalog.filters import Filter

MISSING = ""
"""What the collection stores for a missing attribute value (Milvus 2.3 fields cannot be null)."""

ID_FIELD = "id"
VECTOR_FIELD = "vector"
CHECKSUM_FIELD = "row_checksum"
RESERVED_FIELDS = (ID_FIELD, VECTOR_FIELD, CHECKSUM_FIELD)

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
_KEYWORDS = {"and", "or", "not", "in", "like", "true", "false", "exists", "is", "null", "between"}
"""Words of Milvus's expression language that a field cannot be named after here (they would read as operators)."""


def usable_field_name(name: object) -> bool:
    """True when an attribute column can be a Milvus field of that name, written bare in expressions."""
    return (isinstance(name, str) and _FIELD_NAME.fullmatch(name) is not None
            and name.lower() not in _KEYWORDS and name not in RESERVED_FIELDS)


def quote(text: str) -> str:
    """``text`` as a Milvus string literal: in double quotes, backslash, quote and control characters escaped.

    The escapes are JSON's (``\\\\``, ``\\"``, ``\\n``, ``\\uXXXX``), which Milvus's
    parser reads back to the same text.
    """
    return json.dumps(str(text), ensure_ascii=False)


def ids_expression(ids: Sequence[int] | np.ndarray) -> str:
    """``id in [...]`` for the given int64 ids."""
    return f"{ID_FIELD} in [{', '.join(str(int(i)) for i in ids)}]"


class FilterTranslator:
    """Translates filters into expressions over a collection's attribute fields (see the module docstring).

    Parameters
    ----------
    attributes:
        The N products' attributes, as the index folder holds them (the
        spellings a filter value may stand for are read from them).
    fields:
        The attribute columns the collection holds as VARCHAR fields.
    ids:
        The (N,) int64 vector ids of the products, in the same order.
    """

    def __init__(self, attributes: pd.DataFrame | None, fields: Sequence[str], ids: np.ndarray):
        self.attributes = attributes
        self.fields = tuple(fields)
        self.ids = np.asarray(ids, dtype=np.int64)
        self._spellings: dict[str, dict[str, list[str]]] = {}
        self._has_missing: dict[str, bool] = {}

    def expression(self, flt: Filter, mask: np.ndarray | None = None) -> str | None:
        """The expression selecting the products ``flt`` keeps; None when it keeps none.

        ``mask`` is the filter's (N,) bool mask when already computed (for the
        ``id in [...]`` form).
        """
        terms = []
        for attr, values in flt.terms:
            if attr not in self.fields:
                return self._by_ids(flt, mask)
            spellings = self._spellings_of(attr)
            wanted = sorted({spelling for value in values for spelling in spellings.get(value.casefold(), ())})
            if not wanted:
                return None  # no product holds any of these values: nothing matches
            if MISSING in wanted and self._has_missing[attr]:
                return self._by_ids(flt, mask)  # the server cannot tell "" from missing in this attribute
            terms.append(f"{attr} in [{', '.join(quote(s) for s in wanted)}]")
        return " and ".join(terms)

    def _by_ids(self, flt: Filter, mask: np.ndarray | None) -> str | None:
        if mask is None:
            mask = flt.mask(self.attributes)
        kept = self.ids[mask]
        return ids_expression(kept) if len(kept) else None

    def _spellings_of(self, attr: str) -> dict[str, list[str]]:
        """Casefolded value -> the spellings of it the attribute holds (made once per attribute)."""
        found = self._spellings.get(attr)
        if found is None:
            column = self.attributes[attr].astype("string")
            found = {}
            for value in column.dropna().unique().tolist():
                found.setdefault(value.casefold(), []).append(value)
            self._has_missing[attr] = bool(column.isna().any())
            self._spellings[attr] = found
        return found
